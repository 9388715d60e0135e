"""Property conditions and branch cases, evaluated: pure functions, no I/O.

Used by the journey router (trigger, exit_on, goal and wait_for conditions against an event) and the
journey-steps function (branch cases against the live profile). A `where` is a mapping of property
name (dotted for nested properties: `product.sku`) to a `Condition`; all must hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from shared import clock
from shared.models.journey import Condition, When, parse_instant

Outcome = Literal["sent", "dropped"]


def lookup(properties: Mapping[str, Any], name: str) -> Any:
    """The value at `name` (a literal key first, else a dotted path), or None when absent."""
    if name in properties:
        return properties[name]
    value: Any = properties
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equality that does not take true for 1 (JSON types differ)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _instant(value: Any, now: datetime) -> datetime | None:
    """A value as an aware date-time (UTC when none is given); None when it is not one."""
    if isinstance(value, datetime):
        parsed: datetime | date = value
    elif isinstance(value, date):
        parsed = value
    elif isinstance(value, str):
        if value == "now":
            return now
        try:
            parsed = parse_instant(value)
        except ValueError:
            return None
    else:
        return None
    if not isinstance(parsed, datetime):
        parsed = datetime(parsed.year, parsed.month, parsed.day)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _as_now(now: datetime | str) -> datetime:
    instant = clock.parse(now) if isinstance(now, str) else now
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def condition_holds(
    condition: Condition,
    value: Any,
    name: str,
    trigger_properties: Mapping[str, Any],
    now: datetime,
) -> bool:
    """Whether `value` (None: absent) of property `name` meets the condition."""
    op, operand = condition.op, condition.value
    if op == "equals":
        return value is None if operand is None else _same(value, operand)
    if op == "one_of":
        return any(_same(value, option) if option is not None else value is None for option in operand)
    if op == "exists":
        return (value is not None) is operand
    if op in ("gt", "gte", "lt", "lte"):
        if not _is_number(value):
            return False
        return {
            "gt": value > operand,
            "gte": value >= operand,
            "lt": value < operand,
            "lte": value <= operand,
        }[op]
    if op in ("before", "after"):
        instant, bound = _instant(value, now), _instant(operand, now)
        if instant is None or bound is None:
            return False
        return instant < bound if op == "before" else instant > bound
    if op == "same_as_trigger":
        other = lookup(trigger_properties, name if operand is True else operand)
        if value is None or other is None:
            return value is None and other is None  # both absent counts as equal
        return _same(value, other)
    raise AssertionError(f"unknown operator {op}")  # Condition admits no other


def property_conditions_hold(
    where: Mapping[str, Condition],
    properties: Mapping[str, Any],
    trigger_properties: Mapping[str, Any],
    now: datetime | str,
) -> bool:
    """Whether every condition holds for these properties (an empty `where` always holds)."""
    instant = _as_now(now)
    return all(
        condition_holds(condition, lookup(properties, name), name, trigger_properties, instant)
        for name, condition in where.items()
    )


def concrete(where: Mapping[str, Condition], trigger_properties: Mapping[str, Any]) -> dict[str, Condition]:
    """The conditions with `same_as_trigger` replaced by the trigger's value (`exists: false` when
    the trigger has none), so that they can be stored and checked without the trigger."""
    result: dict[str, Condition] = {}
    for name, condition in where.items():
        if condition.op == "same_as_trigger":
            other = lookup(trigger_properties, name if condition.value is True else condition.value)
            condition = (
                Condition(op="exists", value=False) if other is None else Condition(op="equals", value=other)
            )
        result[name] = condition
    return result


@dataclass(frozen=True)
class SegmentView:
    """What a branch reads of a profile's segment state: the segments it is a member of and its
    computed trait values (a profile without a state item: none of either)."""

    members: frozenset[str] = frozenset()
    computed: Mapping[str, Any] = field(default_factory=dict)


def case_holds(
    when: When,
    traits: Mapping[str, Any],
    trigger_properties: Mapping[str, Any],
    outcomes: Mapping[str, Outcome],
    now: datetime | str,
    segments: SegmentView | None = None,
) -> bool:
    """Whether a branch case's conditions all hold: on the profile's traits, the trigger's
    properties, what this run did (`outcomes`: step id → sent or dropped, for its sends), and the
    profile's segments and computed traits (`segments`; None: the profile has no segment state)."""
    if not property_conditions_hold(when.traits, traits, trigger_properties, now):
        return False
    if not property_conditions_hold(when.trigger, trigger_properties, trigger_properties, now):
        return False
    if when.reads_segment_state:
        view = segments or SegmentView()
        if any((segment in view.members) is not member for segment, member in when.segments.items()):
            return False
        if not property_conditions_hold(when.computed, view.computed, trigger_properties, now):
            return False
    journey = when.journey
    if journey is not None:
        if journey.sent is not None and outcomes.get(journey.sent) != "sent":
            return False
        if journey.dropped is not None and outcomes.get(journey.dropped) != "dropped":
            return False
    return True
