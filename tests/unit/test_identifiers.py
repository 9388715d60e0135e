"""Which identifiers a call names, normalised (shared/identity/identifiers.py)."""

from __future__ import annotations

import pytest

from shared.identity.identifiers import identifiers_of, normalise_email, user_traits
from shared.models.profile import Identifier


def test_an_email_is_trimmed_and_lower_cased() -> None:
    assert normalise_email("  Ada.Lovelace@Example.COM \n") == "ada.lovelace@example.com"


@pytest.mark.parametrize(
    "invalid",
    ["", "ada", "ada@", "@example.com", "ada@localhost", "ada lovelace@example.com", None, 42, ["a@b.c"]],
)
def test_something_that_is_not_an_email_is_rejected(invalid: object) -> None:
    assert normalise_email(invalid) is None


def test_user_id_and_anonymous_id_are_identifiers() -> None:
    found = identifiers_of({"userId": "u-1", "anonymousId": "a-1"})

    assert found == [Identifier(type="user_id", value="u-1"), Identifier(type="anonymous_id", value="a-1")]


def test_a_numeric_user_id_is_a_string_identifier() -> None:
    assert identifiers_of({"userId": 42}) == [Identifier(type="user_id", value="42")]


def test_an_email_in_identify_traits_is_an_identifier() -> None:
    found = identifiers_of({"type": "identify", "userId": "u-1", "traits": {"email": " Ada@Example.com"}})

    assert Identifier(type="email", value="ada@example.com") in found


def test_an_email_in_context_traits_is_an_identifier() -> None:
    found = identifiers_of({"anonymousId": "a-1", "context": {"traits": {"email": "ada@example.com"}}})

    assert found == [
        Identifier(type="anonymous_id", value="a-1"),
        Identifier(type="email", value="ada@example.com"),
    ]


def test_an_invalid_email_is_not_an_identifier() -> None:
    assert identifiers_of({"type": "identify", "userId": "u-1", "traits": {"email": "not-an-email"}}) == [
        Identifier(type="user_id", value="u-1")
    ]


def test_the_device_push_token_is_an_identifier() -> None:
    found = identifiers_of({"anonymousId": "a-1", "context": {"device": {"token": " tok-1 ", "id": "dev-1"}}})

    assert found[-1] == Identifier(type="device_token", value="tok-1")


@pytest.mark.parametrize("token", ["", "   ", None, 12345])
def test_a_blank_or_non_string_token_is_not_an_identifier(token: object) -> None:
    found = identifiers_of({"anonymousId": "a-1", "context": {"device": {"token": token}}})

    assert [i.type for i in found] == ["anonymous_id"]


def test_the_same_identifier_named_twice_counts_once() -> None:
    call = {
        "type": "identify",
        "userId": "u-1",
        "traits": {"email": "ada@example.com"},
        "context": {"traits": {"email": "ADA@example.com"}},
    }

    assert identifiers_of(call) == [
        Identifier(type="user_id", value="u-1"),
        Identifier(type="email", value="ada@example.com"),
    ]


def test_a_call_naming_nothing_has_no_identifiers() -> None:
    assert identifiers_of({"type": "track", "event": "Product Added", "context": {}}) == []


# -- whose traits ----------------------------------------------------------------------------------


def test_an_identifys_traits_are_the_users() -> None:
    assert user_traits({"type": "identify", "traits": {"plan": "pro"}}) == {"plan": "pro"}


@pytest.mark.parametrize("call_type", ["group", "track", "page", "screen", "alias", None])
def test_traits_of_other_calls_are_not_the_users(call_type: str | None) -> None:
    assert user_traits({"type": call_type, "traits": {"email": "billing@acme.com"}}) == {}


@pytest.mark.parametrize("traits", [None, "plan=pro", ["pro"]])
def test_identify_traits_that_are_not_an_object_are_none(traits: object) -> None:
    assert user_traits({"type": "identify", "traits": traits}) == {}


def test_a_groups_email_is_not_an_identifier_of_the_user() -> None:
    call = {"type": "group", "userId": "u-1", "groupId": "acme", "traits": {"email": "billing@acme.com"}}

    assert identifiers_of(call) == [Identifier(type="user_id", value="u-1")]


def test_the_users_email_in_a_groups_context_traits_is_an_identifier() -> None:
    call = {
        "type": "group",
        "userId": "u-1",
        "groupId": "acme",
        "traits": {"email": "billing@acme.com"},
        "context": {"traits": {"email": "ada@example.com"}},
    }

    assert identifiers_of(call)[1:] == [Identifier(type="email", value="ada@example.com")]


def test_an_alias_names_its_previous_id_as_an_anonymous_id() -> None:
    found = identifiers_of({"type": "alias", "previousId": "a-1", "userId": "u-1"})

    assert found == [Identifier(type="user_id", value="u-1"), Identifier(type="anonymous_id", value="a-1")]


def test_a_previous_id_outside_an_alias_is_not_an_identifier() -> None:
    assert identifiers_of({"type": "track", "previousId": "a-1", "userId": "u-1"}) == [
        Identifier(type="user_id", value="u-1")
    ]
