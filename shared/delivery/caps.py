"""Frequency caps: how many sends a rule still allows, and when it allows the next one.

Each rule counts, per profile (and per channel when `per_channel`), the sends still inside its
window. The counted sends are kept on one item per (profile, rule[, channel]) (shared/store/caps.py)
with a version: a send is committed together with every cap item it counts on, each conditional on
the version read (shared/store/messages.py), so two concurrent sends cannot both take the last slot,
and a retried step never counts twice (its message key is in the sends already).

A send made at `at` leaves a window at `leaves(at)`: `at + window` for a rolling window, the next
local midnight for `calendar_day` (in the recipient's zone; unknown and no default: UTC). It counts
while `leaves(at) > now`, so a deferred send re-run at the moment the cap allows it goes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared import clock
from shared.journeys.steps import wall_time_utc
from shared.models.policy import CapRule, Policy


@dataclass(frozen=True)
class CountedSend:
    at: str  # ISO-8601 UTC
    key: str  # the message key


@dataclass(frozen=True)
class CapCheck:
    """What the gate read for one rule: the live profile's item (its version: 0 when absent), and
    the sends counted across the profile and the profiles merged into it."""

    rule: CapRule
    sort_key: str
    version: int
    sends: tuple[CountedSend, ...]


@dataclass(frozen=True)
class CapWrite:
    """The live profile's cap item after this send: written only if its version is still `version`."""

    sort_key: str
    version: int
    sends: tuple[CountedSend, ...]


@dataclass(frozen=True)
class Allowed:
    writes: tuple[CapWrite, ...]


@dataclass(frozen=True)
class Capped:
    rule: CapRule
    until: datetime  # when the rule allows the send
    drop: bool  # the rule drops (or the deferral would outlast max_deferral)


def cap_sort_key(rule: CapRule, channel: str) -> str:
    return f"cap#{rule.id}#{channel}" if rule.per_channel else f"cap#{rule.id}"


def applicable(policy: Policy, topic: str, channel: str) -> list[CapRule]:
    return [rule for rule in policy.caps if rule.applies(topic, channel)]


def leaves(rule: CapRule, at: datetime, zone: ZoneInfo | None) -> datetime:
    """When a send made at `at` stops counting on `rule`."""
    if rule.window == "calendar_day":
        local = at.astimezone(zone or UTC)
        next_midnight = datetime.combine(local.date() + timedelta(days=1), time())
        return wall_time_utc(next_midnight, zone or ZoneInfo("UTC"))
    assert isinstance(rule.window, int)
    return at + timedelta(seconds=rule.window)


def counted(
    rule: CapRule, sends: Sequence[CountedSend], now: datetime, zone: ZoneInfo | None
) -> list[CountedSend]:
    """The sends still inside the window at `now`, oldest first, one per message key."""
    unique = {send.key: send for send in sends}.values()
    inside = [send for send in unique if leaves(rule, clock.parse(send.at), zone) > now]
    return sorted(inside, key=lambda send: send.at)


def allowed_at(
    rule: CapRule, sends: Sequence[CountedSend], now: datetime, zone: ZoneInfo | None
) -> datetime | None:
    """None when the rule allows one more send now; else when it will."""
    inside = counted(rule, sends, now, zone)
    if len(inside) < rule.limit:
        return None
    # The oldest sends must leave until only limit - 1 remain.
    return leaves(rule, clock.parse(inside[len(inside) - rule.limit].at), zone)


def check_caps(
    checks: Sequence[CapCheck],
    message_key: str,
    now: datetime,
    zone: ZoneInfo | None,
    first_deferred_at: datetime | None,
) -> Allowed | Capped:
    """Allowed (with the cap items to write) when every rule allows the send; else the rule that
    caps it: a drop rule wins, else the latest moment all rules allow it. A deferral that would end
    past `first_deferred_at (or now) + max_deferral` is a drop."""
    capped: list[tuple[CapRule, datetime]] = []
    writes = []
    for check in checks:
        if any(send.key == message_key for send in check.sends):
            # Counted already (the step ran before): never count it twice.
            writes.append(
                CapWrite(check.sort_key, check.version, tuple(counted(check.rule, check.sends, now, zone)))
            )
            continue
        until = allowed_at(check.rule, check.sends, now, zone)
        if until is not None:
            capped.append((check.rule, until))
            continue
        kept = counted(check.rule, check.sends, now, zone)
        writes.append(
            CapWrite(check.sort_key, check.version, (*kept, CountedSend(at=clock.iso(now), key=message_key)))
        )
    if not capped:
        return Allowed(tuple(writes))
    droppers = [rule for rule, _ in capped if rule.on_cap == "drop"]
    if droppers:
        return Capped(droppers[0], max(until for _, until in capped), drop=True)
    rule, until = max(capped, key=lambda pair: pair[1])
    started = first_deferred_at or now
    limit = started + timedelta(seconds=min(r.max_deferral for r, _ in capped))
    return Capped(rule, until, drop=until > limit)
