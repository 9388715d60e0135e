"""How big a profile may grow: its stored size is bounded, so that no event ever fails for good
because the profile is full (DynamoDB refuses an item over 400 KB, and the merge log keeps a copy of
a merged profile in one item).

What grows is what events bring: traits (and their times), the last time of each event name,
identifiers (already bounded by the identity rules' limits) and the ids of merged profiles. A write
that would pass `PROFILE_MAX_BYTES` keeps the profile as it was for the traits and event names that
this write added or enlarged, largest first, until it fits; the event itself is still resolved and
published. The sizes here are estimates that never undercount the stored item: UTF-8 bytes of every
name and value, trait values as the JSON text the store keeps, and a generous allowance per entry
for DynamoDB's per-element and per-attribute overhead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.models.profile import Identifier, Profile

# 400 KB is DynamoDB's item limit; the rest is margin for the estimate and the merge log's envelope.
PROFILE_MAX_BYTES = 256 * 1024
_ENTRY = 16  # per map or list element: DynamoDB counts 1 byte per element plus type overhead
# profileId, createdAt, updatedAt, version, latestEventAt, timezone (≤ 64), mergedInto, attribute names
_FIXED = 1024
_TIME = len("2024-05-01T09:00:00.000Z")


def _text(value: str) -> int:
    return len(value.encode("utf-8"))


def trait_text(value: Any) -> str:
    """A trait value as the store keeps it (JSON text: any JSON number fits)."""
    return json.dumps(value, separators=(",", ":"))


def trait_bytes(name: str, value: Any) -> int:
    # The name is stored twice (the value and its time).
    return 2 * (_text(name) + _ENTRY) + _text(trait_text(value)) + _TIME


def event_bytes(name: str) -> int:
    return _text(name) + _ENTRY + _TIME


def identifiers_bytes(identifiers: Iterable[Identifier]) -> int:
    return sum(_text(i.value) + _ENTRY for i in identifiers)


def profile_bytes(profile: Profile) -> int:
    return (
        _FIXED
        + sum(trait_bytes(name, value) for name, value in profile.traits.items())
        + sum(event_bytes(name) for name in profile.lastEvents)
        + identifiers_bytes(profile.identifiers)
        + sum(_text(p) + _ENTRY for p in profile.mergedFrom)
    )


def growth_bytes(traits: dict[str, Any], track_event: str | None, claims: Iterable[Identifier]) -> int:
    """At most how much a write setting these traits and this event and attaching these identifiers
    adds to a profile (each counted as new: what it replaces is not known without a read)."""
    return (
        sum(trait_bytes(name, value) for name, value in traits.items())
        + (event_bytes(track_event) if track_event else 0)
        + identifiers_bytes(claims)
    )


@dataclass
class Dropped:
    """What a write left out to keep its profile within the bound: counts and sizes, never values."""

    traits: int = 0
    events: int = 0
    bytes: int = 0

    def __bool__(self) -> bool:
        return bool(self.traits or self.events)


def bound(profile: Profile, before: Profile | None, limit: int = PROFILE_MAX_BYTES) -> Dropped:
    """Keep `profile` within `limit`: the traits and event names this write added or enlarged
    (compared with `before`, the profile as read; None: a new profile) go back to what they were,
    largest first, until it fits. A profile already past the limit before the write keeps what it
    had, but does not grow."""
    dropped = Dropped()
    size = profile_bytes(profile)
    if size <= limit:
        return dropped
    old_traits = before.traits if before else {}
    old_times = before.traitTimes if before else {}
    old_events = before.lastEvents if before else {}
    grown: list[tuple[int, str, str]] = []  # (bytes it grew by, "trait" / "event", name)
    for name, value in profile.traits.items():
        now = trait_bytes(name, value)
        was = trait_bytes(name, old_traits[name]) if name in old_traits else 0
        if now > was:
            grown.append((now - was, "trait", name))
    for name in profile.lastEvents:
        if name not in old_events:
            grown.append((event_bytes(name), "event", name))
    for growth, kind, name in sorted(grown, reverse=True):
        if size <= limit:
            break
        if kind == "trait":
            if name in old_traits:
                profile.traits[name] = old_traits[name]
                profile.traitTimes[name] = old_times.get(name, "")
            else:
                del profile.traits[name]
                profile.traitTimes.pop(name, None)
            dropped.traits += 1
        else:
            del profile.lastEvents[name]
            dropped.events += 1
        size -= growth
        dropped.bytes += growth
    return dropped
