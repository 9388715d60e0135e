"""Property conditions, in their JSON form (shared/journeys/conditions.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.journeys.conditions import matches

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("where", "properties", "expected"),
    [
        ({"plan": "pro"}, {"plan": "pro"}, True),
        ({"plan": "pro"}, {"plan": "free"}, False),
        ({"plan": "pro"}, {}, False),
        ({"plan": {"equals": "pro"}}, {"plan": "pro"}, True),
        ({"plan": {"one_of": ["pro", "team"]}}, {"plan": "team"}, True),
        ({"plan": {"one_of": ["pro", "team"]}}, {"plan": "free"}, False),
        ({"plan": {"exists": True}}, {"plan": "free"}, True),
        ({"plan": {"exists": False}}, {}, True),
        ({"plan": {"exists": False}}, {"plan": "free"}, False),
        ({"price": {"gt": 10}}, {"price": 11}, True),
        ({"price": {"gt": 10}}, {"price": 10}, False),
        ({"price": {"gte": 10}}, {"price": 10}, True),
        ({"price": {"lt": 10}}, {"price": "9"}, False),  # not a number never matches
        ({"price": {"lte": 10}}, {"price": True}, False),
        ({"product.sku": "A-1"}, {"product": {"sku": "A-1"}}, True),
        ({"product.sku": "A-1"}, {"product": "A-1"}, False),
        ({"ends": {"before": "2024-06-01"}}, {"ends": "2024-05-31T23:00:00Z"}, True),
        ({"ends": {"after": "now"}}, {"ends": "2024-05-01T11:00:00Z"}, False),
        ({"ends": {"after": "now"}}, {"ends": "2024-05-02"}, True),
        ({"ends": {"before": "now"}}, {"ends": "not a date"}, False),
        ({"a": 1, "b": 2}, {"a": 1, "b": 3}, False),
        ({}, {"a": 1}, True),
        ({"plan": {"equals": None}}, {"plan": None}, True),
        ({"plan": {"equals": None}}, {}, False),
    ],
)
def test_a_condition_holds_as_its_operator_says(
    where: dict[str, Any], properties: dict[str, Any], expected: bool
) -> None:
    assert matches(where, properties, now=NOW) is expected


@pytest.mark.parametrize(
    ("condition", "properties", "trigger", "expected"),
    [
        (True, {"cart_id": "c-1"}, {"cart_id": "c-1"}, True),
        (True, {"cart_id": "c-2"}, {"cart_id": "c-1"}, False),
        (True, {}, {}, True),  # both absent counts as equal
        (True, {"cart_id": "c-1"}, {}, False),
        ("basket", {"cart_id": "c-1"}, {"basket": "c-1"}, True),
    ],
)
def test_same_as_trigger_compares_with_the_triggers_property(
    condition: Any, properties: dict[str, Any], trigger: dict[str, Any], expected: bool
) -> None:
    assert matches({"cart_id": {"same_as_trigger": condition}}, properties, trigger) is expected


def test_an_unknown_operator_is_an_error_not_a_silent_match() -> None:
    with pytest.raises(ValueError, match="unknown condition operator"):
        matches({"plan": {"like": "p%"}}, {"plan": "pro"})
