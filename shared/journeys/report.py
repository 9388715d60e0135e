"""What the Journeys API shows of a journey: its definition's outline and its counters (journey-stats).

Counters are those named in shared/store/journey_stats.py. `active` is derived, not stored: entered
minus every exit, so a run counts as active exactly from the write that added it to the one that
closed it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EXITED = "exited#"


def _number(counters: Mapping[str, float], name: str) -> float:
    return counters.get(name, 0)


def _by_reason(counters: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {name[len(prefix) :]: value for name, value in sorted(counters.items()) if name.startswith(prefix)}


def summary(definition: Any, counters: Mapping[str, float]) -> dict[str, Any]:
    """One journey in the list: `{id, name, trigger, entered, active}`."""
    entered = _number(counters, "entered")
    return {
        "id": definition.id,
        "name": definition.name,
        "trigger": definition.trigger.model_dump(mode="json", exclude_none=True),
        "entered": entered,
        "active": max(entered - sum(_by_reason(counters, EXITED).values()), 0),
    }


def detail(definition: Any, counters: Mapping[str, float]) -> dict[str, Any]:
    """One journey with every counter, and each of its steps (depth first, as written)."""
    steps = []
    for step in definition.walk():
        prefix = f"step#{step.id}#"
        steps.append(
            {
                "id": step.id,
                "type": step.type,
                "sent": _number(counters, f"{prefix}sent"),
                "dropped": _by_reason(counters, f"{prefix}dropped#"),
                # Messages the send gate deferred (quiet hours, a cap), once each, by reason.
                "deferred": _by_reason(counters, f"{prefix}deferred#"),
                "conversions": _number(counters, f"{prefix}conversions"),
                "revenue": _number(counters, f"{prefix}revenue"),
            }
        )
    return {
        **summary(definition, counters),
        "exited": _by_reason(counters, EXITED),
        "heldOut": _number(counters, "heldOut"),
        "conversions": _number(counters, "conversions"),
        "revenue": _number(counters, "revenue"),
        "heldOutConversions": _number(counters, "heldOutConversions"),
        "heldOutRevenue": _number(counters, "heldOutRevenue"),
        "steps": steps,
    }
