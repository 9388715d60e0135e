"""Segment evaluation: pure, no I/O (contract first; bodies follow)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.models.profile import Profile, TimelineEntry
from shared.models.segments import AudienceIntent, AudienceMessage, SegmentChange, SegmentState
from shared.segments.catalogue import SegmentCatalogue


@dataclass(frozen=True)
class Decision:
    state: SegmentState  # the state to write (version unchanged; the store bumps it)
    write: bool  # False when nothing changed (no write at all)
    changes: list[SegmentChange]  # entered / exited, in catalogue order
    intents: list[AudienceIntent]  # ad-platform requests to make
    recheck_at: datetime | None  # when to schedule a time-only re-check (None: none / already scheduled)


def on_event(
    state: SegmentState | None,
    profile: Profile,
    call: dict[str, Any],
    catalogue: SegmentCatalogue,
    now: datetime,
) -> Decision:
    raise NotImplementedError


def on_recheck(
    state: SegmentState | None, profile: Profile, catalogue: SegmentCatalogue, now: datetime
) -> Decision:
    raise NotImplementedError


def on_merge(
    survivor: SegmentState | None,
    merged: list[SegmentState],
    profile: Profile,
    catalogue: SegmentCatalogue,
    now: datetime,
) -> Decision:
    raise NotImplementedError


def on_rebuild(
    profile: Profile,
    history: Iterable[TimelineEntry],
    previous: SegmentState | None,
    catalogue: SegmentCatalogue,
    now: datetime,
) -> Decision:
    raise NotImplementedError


def on_erasure(states: list[SegmentState], now: datetime) -> list[AudienceIntent]:
    raise NotImplementedError


def from_scratch(
    profile: Profile, history: Iterable[TimelineEntry], catalogue: SegmentCatalogue, now: datetime
) -> tuple[set[str], dict[str, Any]]:
    raise NotImplementedError


def evaluate(
    state: SegmentState | None, profile: Profile, catalogue: SegmentCatalogue, now: datetime
) -> tuple[set[str], dict[str, Any], datetime | None]:
    raise NotImplementedError


def audience_messages(decision: Decision) -> list[AudienceMessage]:
    """One message per segment that changed (membership, intents or both), in catalogue order."""
    raise NotImplementedError
