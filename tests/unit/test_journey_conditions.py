"""Property conditions and branch cases, evaluated (shared/journeys/conditions.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.journeys.conditions import case_holds, concrete, lookup, property_conditions_hold
from shared.models.journey import Condition, When

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _holds(
    written: object, properties: dict[str, Any], trigger: dict[str, Any] | None = None, name: str = "x"
) -> bool:
    return property_conditions_hold({name: Condition.model_validate(written)}, properties, trigger or {}, NOW)


@pytest.mark.parametrize(
    ("written", "value", "expected"),
    [
        ("pro", "pro", True),
        ("pro", "free", False),
        ("pro", None, False),
        (1, True, False),  # JSON true is not 1
        (True, True, True),
        (3, 3.0, True),
        ({"equals": None}, None, True),
        ({"one_of": ["gold", "silver"]}, "silver", True),
        ({"one_of": ["gold", "silver"]}, "bronze", False),
        ({"one_of": [1, 2]}, "1", False),
        ({"exists": True}, 0, True),
        ({"exists": True}, None, False),
        ({"exists": False}, None, True),
        ({"exists": False}, "", False),
        ({"gt": 10}, 10.5, True),
        ({"gt": 10}, 10, False),
        ({"gte": 10}, 10, True),
        ({"lt": 10}, 9, True),
        ({"lt": 10}, 10, False),
        ({"lte": 10}, 10, True),
        ({"gt": 10}, "11", False),  # non-numbers never match
        ({"lt": 10}, True, False),
        ({"gte": 0}, None, False),
        ({"before": "2024-06-01"}, "2024-05-31T23:59:59Z", True),
        ({"before": "2024-06-01"}, "2024-06-01T00:00:00Z", False),
        ({"after": "2024-01-01T00:00:00+02:00"}, "2023-12-31T23:00:00Z", True),
        ({"before": "now"}, "2024-05-01T11:59:00Z", True),
        ({"after": "now"}, "2024-05-01T11:59:00Z", False),
        ({"after": "now"}, "2024-05-02", True),
        ({"before": "now"}, "not a date", False),
        ({"before": "now"}, 1714564740, False),
        ({"after": "2024-01-01"}, None, False),
    ],
)
def test_each_operator(written: object, value: Any, expected: bool) -> None:
    properties = {} if value is None and written != {"equals": None} else {"x": value}

    assert _holds(written, properties) is expected


def test_an_empty_where_always_holds() -> None:
    assert property_conditions_hold({}, {}, {}, NOW) is True


def test_every_condition_must_hold() -> None:
    where = {"plan": Condition.model_validate("pro"), "seats": Condition.model_validate({"gte": 5})}

    assert property_conditions_hold(where, {"plan": "pro", "seats": 5}, {}, NOW) is True
    assert property_conditions_hold(where, {"plan": "pro", "seats": 4}, {}, NOW) is False


def test_same_as_trigger_compares_with_the_triggers_property_of_the_same_name() -> None:
    condition = {"same_as_trigger": True}

    assert _holds(condition, {"cart_id": "c1"}, {"cart_id": "c1"}, name="cart_id") is True
    assert _holds(condition, {"cart_id": "c2"}, {"cart_id": "c1"}, name="cart_id") is False
    assert _holds(condition, {}, {"cart_id": "c1"}, name="cart_id") is False
    assert _holds(condition, {"cart_id": "c1"}, {}, name="cart_id") is False


def test_same_as_trigger_counts_both_absent_as_equal() -> None:
    assert _holds({"same_as_trigger": True}, {"other": 1}, {"other": 2}, name="cart_id") is True


def test_same_as_trigger_may_name_another_trigger_property() -> None:
    assert _holds({"same_as_trigger": "id"}, {"cart_id": "c1"}, {"id": "c1"}, name="cart_id") is True


def test_dotted_names_reach_nested_properties() -> None:
    properties = {"product": {"sku": "sku-42", "price": 12}}

    assert _holds("sku-42", properties, name="product.sku") is True
    assert _holds({"gt": 10}, properties, name="product.price") is True
    assert _holds({"exists": True}, properties, name="product.colour") is False
    assert _holds({"same_as_trigger": True}, properties, {"product": {"sku": "sku-42"}}, name="product.sku")


def test_a_literal_dotted_key_wins_over_the_nested_path() -> None:
    assert lookup({"a.b": 1, "a": {"b": 2}}, "a.b") == 1
    assert lookup({"a": [1]}, "a.0") is None


def test_now_may_be_an_iso_string() -> None:
    where = {"at": Condition.model_validate({"before": "now"})}

    assert property_conditions_hold(where, {"at": "2024-05-01T11:00:00Z"}, {}, "2024-05-01T12:00:00.000Z")


def test_concrete_replaces_same_as_trigger_by_the_triggers_value() -> None:
    where = {
        "cart_id": Condition.model_validate({"same_as_trigger": True}),
        "store": Condition.model_validate({"same_as_trigger": "shop"}),
        "coupon": Condition.model_validate({"same_as_trigger": True}),
        "total": Condition.model_validate({"gt": 5}),
    }

    result = concrete(where, {"cart_id": "c1", "shop": "berlin"})

    assert {name: c.model_dump(mode="json") for name, c in result.items()} == {
        "cart_id": {"equals": "c1"},
        "store": {"equals": "berlin"},
        "coupon": {"exists": False},  # both absent counts as equal
        "total": {"gt": 5},
    }
    assert property_conditions_hold(result, {"cart_id": "c1", "store": "berlin", "total": 6}, {}, NOW)
    assert not property_conditions_hold(
        result, {"cart_id": "c1", "store": "berlin", "coupon": "X", "total": 6}, {}, NOW
    )


def _when(**written: Any) -> When:
    return When.model_validate(written)


def test_a_case_checks_traits_trigger_and_what_the_run_did() -> None:
    when = _when(
        traits={"plan": "pro"}, trigger={"price": {"gt": 50}}, journey={"sent": "email", "dropped": "push"}
    )
    outcomes = {"email": "sent", "push": "dropped"}

    assert case_holds(when, {"plan": "pro"}, {"price": 60}, outcomes, NOW) is True  # type: ignore[arg-type]
    assert case_holds(when, {"plan": "free"}, {"price": 60}, outcomes, NOW) is False  # type: ignore[arg-type]
    assert case_holds(when, {"plan": "pro"}, {"price": 40}, outcomes, NOW) is False  # type: ignore[arg-type]
    assert (
        case_holds(when, {"plan": "pro"}, {"price": 60}, {"email": "dropped", "push": "dropped"}, NOW)
        is False
    )
    assert case_holds(when, {"plan": "pro"}, {"price": 60}, {"email": "sent"}, NOW) is False


def test_a_trait_condition_may_compare_with_the_trigger() -> None:
    when = _when(traits={"favourite_store": {"same_as_trigger": "store"}})

    assert case_holds(when, {"favourite_store": "berlin"}, {"store": "berlin"}, {}, NOW) is True
    assert case_holds(when, {"favourite_store": "paris"}, {"store": "berlin"}, {}, NOW) is False
