"""Which identifiers a call names, normalised (shared/identity/identifiers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.identity.identifiers import identifiers_of, normalise_email, normalise_phone, user_traits
from shared.identity.rules import CustomIdentifier, IdentityRules
from shared.models.profile import Identifier
from tests.identifiers import anon, email, phone, user

RULES = IdentityRules()
LOYALTY = CustomIdentifier(type="loyalty_id", trait="loyaltyId", external_id_type="loyalty")


def found(call: dict[str, Any], rules: IdentityRules = RULES) -> list[Identifier]:
    identifiers, _ = identifiers_of(call, rules)
    return identifiers


def warnings_of(call: dict[str, Any], rules: IdentityRules = RULES) -> list[str]:
    _, warned = identifiers_of(call, rules)
    return warned


# -- user id and anonymous id ------------------------------------------------------------------------


def test_user_id_and_anonymous_id_are_identifiers() -> None:
    assert identifiers_of({"userId": "u-1", "anonymousId": "a-1"}, RULES) == ([user("u-1"), anon("a-1")], [])


def test_a_numeric_user_id_is_a_string_identifier() -> None:
    assert found({"userId": 42}) == [user("42")]


def test_an_id_is_trimmed() -> None:
    assert found({"userId": "  u-1 \n"}) == [user("u-1")]


@pytest.mark.parametrize("value", [True, ["u-1"], {"id": "u-1"}, "   "])
def test_an_id_that_is_not_a_plain_value_is_left_out_with_a_warning(value: object) -> None:
    identifiers, warned = identifiers_of({"userId": value, "anonymousId": "a-1"}, RULES)

    assert identifiers == [anon("a-1")]
    assert warned == ["user_id left out of matching: not a valid user_id"]


@pytest.mark.parametrize("absent", [None, ""])
def test_an_absent_id_is_no_identifier_and_no_warning(absent: object) -> None:
    assert identifiers_of({"userId": absent, "anonymousId": "a-1"}, RULES) == ([anon("a-1")], [])


@pytest.mark.parametrize(
    ("traits", "value"),
    [
        ({"email": "ada.lovelace-at-example.com"}, "ada.lovelace"),
        ({"phone": "+1 555 0100 ada"}, "0100"),
        ({"email": "noreply@example.com"}, "noreply"),
    ],
)
def test_a_warning_names_the_type_and_the_reason_never_the_value(traits: dict[str, str], value: str) -> None:
    # Warnings are logged: an address or a number in them would be personal data in the logs.
    rules = IdentityRules(blocked=["noreply@example.com"])
    warned = identifiers_of({"type": "identify", "userId": "u-1", "traits": traits}, rules)[1]

    assert len(warned) == 1
    assert value not in warned[0]
    assert warned[0].startswith(f"{next(iter(traits))} left out of matching: ")


def test_an_alias_names_its_previous_id_as_an_anonymous_id() -> None:
    assert found({"type": "alias", "previousId": "a-1", "userId": "u-1"}) == [user("u-1"), anon("a-1")]


def test_a_previous_id_outside_an_alias_is_not_an_identifier() -> None:
    assert found({"type": "track", "previousId": "a-1", "userId": "u-1"}) == [user("u-1")]


def test_a_call_naming_nothing_has_no_identifiers() -> None:
    assert identifiers_of({"type": "track", "event": "Product Added", "context": {}}, RULES) == ([], [])


# -- email -------------------------------------------------------------------------------------------


def test_an_email_is_trimmed_and_lower_cased() -> None:
    assert normalise_email("  Ada.Lovelace@Example.COM \n") == "ada.lovelace@example.com"


@pytest.mark.parametrize(
    "invalid",
    ["", "ada", "ada@", "@example.com", "ada@localhost", "ada lovelace@example.com", "a@b@c.com", None, 42],
)
def test_something_that_is_not_an_email_is_rejected(invalid: object) -> None:
    assert normalise_email(invalid) is None


def test_an_email_in_identify_traits_is_an_identifier() -> None:
    assert found({"type": "identify", "userId": "u-1", "traits": {"email": " Ada@Example.com"}}) == [
        user("u-1"),
        email("ada@example.com"),
    ]


def test_an_email_in_context_traits_is_an_identifier() -> None:
    call = {"anonymousId": "a-1", "context": {"traits": {"email": "ada@example.com"}}}

    assert found(call) == [anon("a-1"), email("ada@example.com")]


def test_an_invalid_email_is_left_out_with_a_warning() -> None:
    call = {"type": "identify", "userId": "u-1", "traits": {"email": "not-an-email"}}

    assert identifiers_of(call, RULES) == ([user("u-1")], ["email left out of matching: not a valid email"])


# -- phone -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+1 415-555-2671", "US", "+14155552671"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        (4155552671, "US", "+14155552671"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "US", "+442079460958"),  # a + overrides the default region
    ],
)
def test_a_phone_becomes_e164(raw: object, region: str, e164: str) -> None:
    rules = IdentityRules(phone_region=region)

    assert identifiers_of({"type": "identify", "traits": {"phone": raw}}, rules) == ([phone(e164)], [])


def test_a_phone_without_a_plus_is_read_in_the_default_region() -> None:
    call = {"type": "identify", "traits": {"phone": "020 7946 0958"}}

    assert found(call, IdentityRules(phone_region="GB")) == [phone("+442079460958")]
    assert found(call, IdentityRules(phone_region="US")) == []


@pytest.mark.parametrize("invalid", ["12", "not a phone", "+1 555", True, ["+14155552671"]])
def test_something_that_is_not_a_phone_is_left_out_with_a_warning(invalid: object) -> None:
    identifiers, warned = identifiers_of(
        {"anonymousId": "a-1", "context": {"traits": {"phone": invalid}}}, RULES
    )

    assert identifiers == [anon("a-1")]
    assert warned == ["phone left out of matching: not a valid phone"]


def test_normalise_phone_answers_none_for_an_unparseable_value() -> None:
    assert normalise_phone("+", "US") is None
    assert normalise_phone(None, "US") is None


# -- devices -----------------------------------------------------------------------------------------


def test_the_device_push_token_and_device_id_are_identifiers() -> None:
    call = {"anonymousId": "a-1", "context": {"device": {"token": " tok-1 ", "id": "dev-1"}}}

    assert found(call)[1:] == [
        Identifier(type="device_token", value="tok-1"),
        Identifier(type="device_id", value="dev-1"),
    ]


@pytest.mark.parametrize("device", [None, "dev-1", ["dev-1"], {}])
def test_a_device_that_is_not_an_object_names_nothing(device: object) -> None:
    assert found({"anonymousId": "a-1", "context": {"device": device}}) == [anon("a-1")]


# -- custom identifier types ----------------------------------------------------------------------


def test_a_custom_type_is_read_from_its_trait() -> None:
    rules = IdentityRules(custom=[LOYALTY])

    assert found({"type": "identify", "userId": "u-1", "traits": {"loyaltyId": "L-1"}}, rules) == [
        user("u-1"),
        Identifier(type="loyalty_id", value="L-1"),
    ]


def test_a_custom_type_is_read_from_context_external_ids() -> None:
    rules = IdentityRules(custom=[LOYALTY])
    call = {
        "anonymousId": "a-1",
        "context": {
            "externalIds": [
                {"id": "L-7", "type": "loyalty", "collection": "users", "encoding": "none"},
                {"id": "zz", "type": "crm_id", "collection": "users", "encoding": "none"},
                "not an object",
            ]
        },
    }

    assert found(call, rules) == [anon("a-1"), Identifier(type="loyalty_id", value="L-7")]


def test_an_undeclared_trait_or_external_id_is_no_identifier() -> None:
    call = {
        "type": "identify",
        "userId": "u-1",
        "traits": {"loyaltyId": "L-1"},
        "context": {"externalIds": [{"id": "L-7", "type": "loyalty"}]},
    }

    assert found(call) == [user("u-1")]


@pytest.mark.parametrize("external_ids", [None, "L-7", {"type": "loyalty", "id": "L-7"}])
def test_external_ids_that_are_not_a_list_name_nothing(external_ids: object) -> None:
    rules = IdentityRules(custom=[LOYALTY])

    assert found({"anonymousId": "a-1", "context": {"externalIds": external_ids}}, rules) == [anon("a-1")]


def test_a_custom_type_may_name_several_values() -> None:
    rules = IdentityRules(custom=[LOYALTY])
    call = {
        "type": "identify",
        "traits": {"loyaltyId": "L-1"},
        "context": {"externalIds": [{"id": "L-2", "type": "loyalty"}, {"id": "L-1", "type": "loyalty"}]},
    }

    assert [i.value for i in found(call, rules)] == ["L-1", "L-2"]


# -- blocked values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "blocked",
    ["anonymous", "Anonymous", "null", "undefined", "n/a", "-", "0", "00000000-0000-0000-0000-000000000000"],
)
def test_a_blocked_anonymous_id_is_left_out_with_a_warning(blocked: str) -> None:
    assert identifiers_of({"userId": "u-1", "anonymousId": blocked}, RULES) == (
        [user("u-1")],
        ["anonymous_id left out of matching: a blocked placeholder value"],
    )


def test_a_value_is_blocked_once_normalised() -> None:
    rules = IdentityRules(blocked=["noreply@example.com"])
    call = {"type": "identify", "userId": "u-1", "traits": {"email": "  NoReply@Example.COM "}}

    assert identifiers_of(call, rules) == (
        [user("u-1")],
        ["email left out of matching: a blocked placeholder value"],
    )


def test_a_blocked_list_of_your_own_replaces_the_default_list() -> None:
    rules = IdentityRules(blocked=["guest"])

    assert found({"userId": "GUEST", "anonymousId": "anonymous"}, rules) == [anon("anonymous")]


def test_all_zero_ids_are_blocked_whatever_the_list() -> None:
    rules = IdentityRules(blocked=["guest"])
    call = {"userId": 0, "anonymousId": "a-1", "context": {"device": {"id": "0000-0000", "token": "000"}}}

    identifiers, warned = identifiers_of(call, rules)

    assert identifiers == [anon("a-1")]
    assert [w.split()[0] for w in warned] == ["user_id", "device_token", "device_id"]


# -- dedupe ------------------------------------------------------------------------------------------


def test_the_same_identifier_named_twice_counts_once() -> None:
    call = {
        "type": "identify",
        "userId": "u-1",
        "traits": {"email": "ada@example.com"},
        "context": {"traits": {"email": "ADA@example.com"}},
    }

    assert found(call) == [user("u-1"), email("ada@example.com")]


def test_an_alias_whose_previous_id_is_its_anonymous_id_names_it_once() -> None:
    call = {"type": "alias", "userId": "u-1", "anonymousId": "a-1", "previousId": "a-1"}

    assert found(call) == [user("u-1"), anon("a-1")]


def test_the_same_value_as_two_types_is_two_identifiers() -> None:
    assert found({"userId": "x-1", "anonymousId": "x-1"}) == [user("x-1"), anon("x-1")]


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

    assert identifiers_of(call, RULES) == ([user("u-1")], [])


def test_the_users_email_in_a_groups_context_traits_is_an_identifier() -> None:
    call = {
        "type": "group",
        "userId": "u-1",
        "groupId": "acme",
        "traits": {"email": "billing@acme.com"},
        "context": {"traits": {"email": "ada@example.com"}},
    }

    assert found(call) == [user("u-1"), email("ada@example.com")]
