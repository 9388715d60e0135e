"""Property conditions (`where` of a trigger, exit_on, goal or wait_for; see DESIGN / the README).

A `where` is a mapping `name → condition`, all of which must hold. A condition is a scalar (equals)
or a mapping with one operator: equals, one_of, exists, gt/gte/lt/lte, before/after, same_as_trigger.
This evaluates the JSON form (what `model_dump(mode="json")` gives, and what a journey-waits item
stores), so the router, the journey-steps function and a stored wait all judge alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from shared import clock

_ABSENT = object()


def lookup(properties: Mapping[str, Any] | None, name: str) -> Any:
    """The value at a dotted name (`product.sku`), or `_ABSENT`."""
    value: Any = properties if properties is not None else {}
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _ABSENT
        value = value[part]
    return value


def matches(
    where: Mapping[str, Any] | None,
    properties: Mapping[str, Any] | None,
    trigger: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Whether every condition of `where` holds for `properties`; `trigger` is the run's trigger
    properties (for same_as_trigger), `now` the moment the literal `now` stands for."""
    return all(
        _holds(condition, lookup(properties, name), name, trigger, now)
        for name, condition in (where or {}).items()
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _moment(value: Any, now: datetime | None) -> datetime | None:
    if not isinstance(value, str):
        return None
    if value == "now":
        return now or clock.now()
    try:
        return clock.parse(value)
    except ValueError:
        return None


def _compare(
    value: Any, bound: Any, test: Callable[[Any, Any], bool], now: datetime | None, dates: bool
) -> bool:
    if dates:
        left, right = _moment(value, now), _moment(bound, now)
    else:
        left, right = _number(value), _number(bound)
    return left is not None and right is not None and test(left, right)


def _holds(
    condition: Any, value: Any, name: str, trigger: Mapping[str, Any] | None, now: datetime | None
) -> bool:
    if not isinstance(condition, Mapping):
        return value is not _ABSENT and value == condition
    for op, arg in condition.items():
        match op:
            case "equals":
                ok = value is not _ABSENT and value == arg
            case "one_of":
                ok = value is not _ABSENT and value in list(arg)
            case "exists":
                ok = (value is not _ABSENT and value is not None) == bool(arg)
            case "gt" | "gte" | "lt" | "lte":
                tests: dict[str, Callable[[Any, Any], bool]] = {
                    "gt": lambda a, b: a > b,
                    "gte": lambda a, b: a >= b,
                    "lt": lambda a, b: a < b,
                    "lte": lambda a, b: a <= b,
                }
                ok = _compare(value, arg, tests[op], now, dates=False)
            case "before":
                ok = _compare(value, arg, lambda a, b: a < b, now, dates=True)
            case "after":
                ok = _compare(value, arg, lambda a, b: a > b, now, dates=True)
            case "same_as_trigger":
                if arg is False:
                    continue
                other = lookup(trigger, name if arg is True else str(arg))
                ok = value == other  # both absent counts as equal
            case _:
                raise ValueError(f"unknown condition operator {op!r} for {name!r}")
        if not ok:
            return False
    return True
