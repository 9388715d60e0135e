"""Identity resolution rules: defaults, validation, ranking, loading (shared/identity/rules.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from shared.identity.rules import BUILT_IN_TYPES, CustomIdentifier, IdentityRules, load_rules

LOYALTY = {"type": "loyalty_id", "trait": "loyaltyId", "external_id_type": "loyalty"}


@pytest.fixture
def fresh_rules(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """`load_rules` reads IDENTITY_RULES anew, and forgets what it read afterwards."""
    monkeypatch.delenv("IDENTITY_RULES", raising=False)
    load_rules.cache_clear()
    yield monkeypatch
    load_rules.cache_clear()


# -- defaults --------------------------------------------------------------------------------------


def test_a_profile_has_at_most_one_user_id_and_five_of_anything_else_by_default() -> None:
    rules = IdentityRules()

    assert [rules.limit(t) for t in BUILT_IN_TYPES] == [1, 5, 5, 5, 5, 5]


def test_the_default_priority_is_user_id_email_phone_then_devices_then_anonymous_id() -> None:
    rules = IdentityRules()

    assert sorted(rules.types, key=rules.rank) == [
        "user_id",
        "email",
        "phone",
        "device_token",
        "device_id",
        "anonymous_id",
    ]


def test_placeholder_values_and_all_zero_ids_are_blocked_by_default() -> None:
    rules = IdentityRules()

    for value in ("", "null", "undefined", "none", "nil", "nan", "anonymous", "unknown", "n/a", "-"):
        assert rules.is_blocked(value), value
    for value in ("0", "000000", "00000000-0000-0000-0000-000000000000"):
        assert rules.is_blocked(value), value


@pytest.mark.parametrize("value", ["NULL", " Anonymous ", "N/A", "Undefined"])
def test_blocked_values_match_whatever_their_case_and_surrounding_spaces(value: str) -> None:
    assert IdentityRules().is_blocked(value)


@pytest.mark.parametrize("value", ["a-0", "u-1", "100", "0x0", "anonymous-1", "nullable"])
def test_ordinary_values_are_not_blocked(value: str) -> None:
    assert not IdentityRules().is_blocked(value)


def test_phones_without_a_plus_are_read_as_us_numbers_by_default() -> None:
    assert IdentityRules().phone_region == "US"


def test_no_custom_types_by_default() -> None:
    assert IdentityRules().types == list(BUILT_IN_TYPES)


# -- limits --------------------------------------------------------------------------------------


def test_a_limit_of_your_own_applies_to_its_type_only() -> None:
    rules = IdentityRules(limits={"email": 2}, default_limit=3)

    assert (rules.limit("email"), rules.limit("phone"), rules.limit("user_id")) == (2, 3, 1)


@pytest.mark.parametrize("limit", [0, 2, 5])
def test_a_user_id_limit_other_than_one_is_refused(limit: int) -> None:
    with pytest.raises(ValidationError, match="at most one user_id"):
        IdentityRules(limits={"user_id": limit})


def test_a_user_id_limit_of_one_may_be_spelled_out() -> None:
    assert IdentityRules(limits={"user_id": 1, "email": 3}).limits == {"user_id": 1, "email": 3}


@pytest.mark.parametrize("limits", [{"email": 0}, {"phone": -1}])
def test_a_limit_below_one_is_refused(limits: dict[str, int]) -> None:
    with pytest.raises(ValidationError, match="at least 1"):
        IdentityRules(limits=limits)


def test_a_default_limit_below_one_is_refused() -> None:
    with pytest.raises(ValidationError):
        IdentityRules(default_limit=0)


# -- custom types --------------------------------------------------------------------------------


def test_a_custom_type_is_an_identifier_type_with_the_default_limit() -> None:
    rules = IdentityRules.model_validate({"custom": [LOYALTY]})

    assert rules.types == [*BUILT_IN_TYPES, "loyalty_id"]
    assert rules.limit("loyalty_id") == 5


@pytest.mark.parametrize("source", [{"trait": "loyaltyId"}, {"external_id_type": "loyalty"}])
def test_a_custom_type_needs_one_source_or_the_other(source: dict[str, str]) -> None:
    assert CustomIdentifier.model_validate({"type": "loyalty_id", **source}).type == "loyalty_id"


def test_a_custom_type_without_a_source_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs a trait or an external_id_type"):
        IdentityRules.model_validate({"custom": [{"type": "loyalty_id"}]})


@pytest.mark.parametrize("built_in", BUILT_IN_TYPES)
def test_a_custom_type_named_like_a_built_in_one_is_refused(built_in: str) -> None:
    with pytest.raises(ValidationError, match="is a built-in identifier type"):
        IdentityRules.model_validate({"custom": [{"type": built_in, "trait": "x"}]})


@pytest.mark.parametrize("name", ["Loyalty", "1st", "loyalty-id", "x" * 32, ""])
def test_a_custom_type_name_must_be_lower_snake_case(name: str) -> None:
    with pytest.raises(ValidationError):
        CustomIdentifier(type=name, trait="x")


# -- ranking ---------------------------------------------------------------------------------------


def test_a_lower_rank_is_stronger() -> None:
    rules = IdentityRules()

    assert rules.rank("user_id") < rules.rank("email") < rules.rank("phone") < rules.rank("anonymous_id")


def test_custom_types_rank_after_devices_and_before_the_anonymous_id() -> None:
    rules = IdentityRules.model_validate({"custom": [LOYALTY, {"type": "crm_id", "trait": "crmId"}]})

    assert sorted(rules.types, key=rules.rank) == [
        "user_id",
        "email",
        "phone",
        "device_token",
        "device_id",
        "loyalty_id",
        "crm_id",
        "anonymous_id",
    ]


def test_a_priority_of_your_own_comes_first_and_the_rest_follow_in_the_default_order() -> None:
    rules = IdentityRules.model_validate(
        {"priority": ["loyalty_id", "user_id", "email", "phone"], "custom": [LOYALTY]}
    )

    assert sorted(rules.types, key=rules.rank) == [
        "loyalty_id",
        "user_id",
        "email",
        "phone",
        "device_token",
        "device_id",
        "anonymous_id",
    ]


def test_an_unknown_type_ranks_last() -> None:
    rules = IdentityRules()

    assert rules.rank("fax") > max(rules.rank(t) for t in rules.types)


def test_built_in_types_left_out_of_a_priority_still_outrank_the_anonymous_id() -> None:
    rules = IdentityRules(priority=["email"])

    assert rules.rank("user_id") < rules.rank("anonymous_id")
    assert rules.rank("phone") < rules.rank("anonymous_id")


# -- loading -------------------------------------------------------------------------------------


def test_without_identity_rules_in_the_environment_the_defaults_apply(
    fresh_rules: pytest.MonkeyPatch,
) -> None:
    assert load_rules() == IdentityRules()


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_identity_rules_are_the_defaults(fresh_rules: pytest.MonkeyPatch, blank: str) -> None:
    fresh_rules.setenv("IDENTITY_RULES", blank)

    assert load_rules() == IdentityRules()


def test_identity_rules_are_read_from_the_environment_as_json(fresh_rules: pytest.MonkeyPatch) -> None:
    fresh_rules.setenv(
        "IDENTITY_RULES",
        json.dumps({"limits": {"email": 2}, "custom": [LOYALTY], "phone_region": "GB", "blocked": ["guest"]}),
    )

    rules = load_rules()

    assert (rules.limit("email"), rules.limit("phone"), rules.phone_region) == (2, 5, "GB")
    assert rules.types[-1] == "loyalty_id"
    assert rules.is_blocked("Guest") and not rules.is_blocked("anonymous")


def test_what_the_environment_leaves_out_keeps_its_default(fresh_rules: pytest.MonkeyPatch) -> None:
    fresh_rules.setenv("IDENTITY_RULES", "{}")

    assert load_rules() == IdentityRules()


def test_identity_rules_are_read_once(fresh_rules: pytest.MonkeyPatch) -> None:
    fresh_rules.setenv("IDENTITY_RULES", '{"default_limit": 3}')
    first = load_rules()

    fresh_rules.setenv("IDENTITY_RULES", '{"default_limit": 4}')

    assert load_rules() is first


@pytest.mark.parametrize(
    "raw",
    ['{"limits": {"user_id": 2}}', '{"phone_region": "gb"}', "{not json", '{"custom": [{"type": "x"}]}'],
)
def test_invalid_identity_rules_fail_loudly(fresh_rules: pytest.MonkeyPatch, raw: str) -> None:
    fresh_rules.setenv("IDENTITY_RULES", raw)

    with pytest.raises(ValueError):  # pydantic's ValidationError and json's JSONDecodeError are ValueErrors
        load_rules()


def test_a_misspelt_rule_fails_loudly(fresh_rules: pytest.MonkeyPatch) -> None:
    fresh_rules.setenv("IDENTITY_RULES", '{"limit": {"email": 2}}')

    with pytest.raises(ValueError):
        load_rules()
