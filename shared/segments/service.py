"""The segments function's work around the pure domain (shared/segments/engine.py): read a profile's
state, decide, write it back once (conditional on its version; a lost race re-reads and decides
again), then say what changed: `segment.entered` / `segment.exited` on the bus, one audience message
per changed segment, and the next time-only re-check.

Costs per resolved event: one read (the profile and its state, one BatchGetItem) and at most one write
(a PutItem; none when nothing changed), whatever the number of segments, when no other event of the
same profile races it. Each lost race costs one more read and one more write.

At least once: the state is written with its effects (`SegmentState.outbox`, keyed by the digest of
the cause), then the effects are carried out. If that fails after the write, the retried cause finds
its messageId in `seen` and decides nothing new, but the outbox still holds its effects under that
cause: they are carried out again (the audience messages keep their deduplication ids, the bus events
their `at`, so consumers see the same changes; the audiences function reconciles every message with
the current state, so an old one does no harm). The effects of the last OUTBOX_KEEP causes are kept,
so a retry that arrives after a few other events of the same profile still finds its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from shared import clock
from shared.identity.resolver import ConcurrentChangeError
from shared.models.events import DETAIL_SEGMENT_ENTERED, DETAIL_SEGMENT_EXITED, SOURCE_SEGMENTS, BusEvent
from shared.models.profile import Profile, TimelineEntry
from shared.models.segments import (
    OUTBOX_KEEP,
    OUTBOX_OLDER_BYTES,
    AudienceMessage,
    Outbox,
    SegmentChange,
    SegmentState,
)
from shared.segments.engine import Decision, audience_messages, message_digest

ATTEMPTS = 8  # lost races in a row before the event is failed (and retried by Lambda)


class StateStore(Protocol):
    def read(self, profile_id: str) -> tuple[Profile | None, SegmentState | None]: ...

    def put(self, state: SegmentState, expected_version: int) -> int: ...

    def states(self, profile_ids: Iterable[str]) -> list[SegmentState]: ...

    def fold(self, state: SegmentState, expected_version: int, merged: list[SegmentState]) -> int: ...

    def timeline_since(self, profile_ids: Iterable[str], since: str) -> list[TimelineEntry]: ...


class Publisher(Protocol):
    def publish(self, events: list[BusEvent]) -> None: ...


class Audiences(Protocol):
    def send(self, messages: list[tuple[AudienceMessage, str]]) -> None: ...


class Rechecks(Protocol):
    def schedule(self, profile_id: str, at: datetime) -> None: ...


@dataclass(frozen=True)
class Ports:
    store: StateStore
    bus: Publisher
    audiences: Audiences
    rechecks: Rechecks


@dataclass(frozen=True)
class Outcome:
    profile_id: str
    decision: Decision
    version: int  # the state's version after the decision (written, or as read)


Decide = Callable[[SegmentState | None, Profile], Decision]


def with_outbox(decision: Decision, cause: str) -> Decision:
    """The decision, its state carrying its effects under `cause`'s digest."""
    recheck = clock.iso(decision.recheck_at) if decision.recheck_at is not None else None
    outbox = Outbox(
        cause=message_digest(cause), changes=decision.changes, intents=decision.intents, recheckAt=recheck
    )
    kept = [o for o in decision.state.outbox if o.cause != outbox.cause][-(OUTBOX_KEEP - 1) :]
    while kept and sum(len(o.model_dump_json()) for o in kept) > OUTBOX_OLDER_BYTES:
        kept.pop(0)  # the state is one DynamoDB item: older effects give way to a bounded size
    return replace(decision, state=decision.state.model_copy(update={"outbox": [*kept, outbox]}))


def replayed(state: SegmentState | None, decision: Decision, cause: str) -> Decision:
    """A decision that writes nothing, for a cause whose effects the stored state still holds (it
    was written, and carrying them out may have failed): those effects again."""
    digest = message_digest(cause)
    outbox = next((o for o in (state.outbox if state is not None else []) if o.cause == digest), None)
    if decision.write or outbox is None:
        return decision
    recheck = clock.parse(outbox.recheckAt) if outbox.recheckAt else None
    return replace(decision, changes=outbox.changes, intents=outbox.intents, recheck_at=recheck)


def settle(profile_id: str, decide: Decide, store: StateStore, cause: str) -> Outcome | None:
    """Read, decide, write (once; again after a lost race). None when the profile is gone. `cause`
    names what is being applied (a messageId, a re-check): its effects are written with the state."""
    for _ in range(ATTEMPTS):
        profile, state = store.read(profile_id)
        if profile is None:
            return None
        decision = replayed(state, decide(state, profile), cause)
        version = state.version if state is not None else 0
        if decision.write:
            decision = with_outbox(decision, cause)
            try:
                version = store.put(decision.state, version)
            except ConcurrentChangeError:
                continue
        return Outcome(profile.profileId, decision, version)
    raise ConcurrentChangeError(f"segment state of {profile_id}: {ATTEMPTS} lost races in a row")


def settle_merge(
    survivor_id: str,
    merged_ids: list[str],
    decide: Callable[[SegmentState | None, list[SegmentState], Profile], Decision],
    store: StateStore,
    cause: str,
) -> Outcome | None:
    """Fold the merged profiles' states into the survivor's: the survivor's write and the merged
    states' deletion are one transaction (a retried merge finds nothing left to fold, never folds twice)."""
    for _ in range(ATTEMPTS):
        profile, state = store.read(survivor_id)
        if profile is None:
            return None
        merged = [s for s in store.states(merged_ids) if s.profileId != profile.profileId]
        decision = decide(state, merged, profile)
        if not merged:  # nothing left to fold: a retried merge, whose effects the state may hold
            decision = replayed(state, decision, cause)
        version = state.version if state is not None else 0
        if decision.write or merged:
            decision = with_outbox(decision, cause)
            try:
                version = store.fold(decision.state, version, merged)
            except ConcurrentChangeError:
                continue
        return Outcome(profile.profileId, decision, version)
    raise ConcurrentChangeError(f"segment state of {survivor_id}: {ATTEMPTS} lost races in a row")


def deduplication_id(profile_id: str, segment: str, version: str) -> str:
    """SQS FIFO deduplication id (≤ 128 characters): the same change sent twice is delivered once."""
    return hashlib.sha256(f"{profile_id}#{segment}#{version}".encode()).hexdigest()


def bus_events(changes: list[SegmentChange], correlation: str) -> list[BusEvent]:
    return [
        BusEvent.publishing(
            SOURCE_SEGMENTS,
            DETAIL_SEGMENT_ENTERED if change.entered else DETAIL_SEGMENT_EXITED,
            correlation,
            change.at,
            change,
        )
        for change in changes
    ]


def carry_out(outcome: Outcome, correlation: str, ports: Ports) -> None:
    """The effects of a decision: audience messages, bus events, the next re-check."""
    decision = outcome.decision
    # The deduplication id names the cause too: a version alone repeats (a merge's fold writes the
    # survivor's version while the exits are the merged profile's, whose own first state had that
    # version; an unmerge restarts a state at version 1), and SQS would silently drop the repeat.
    # A retried cause replays the same outbox, so its messages keep their ids.
    cause = message_digest(correlation)
    messages = [
        (message, deduplication_id(message.profileId, message.segment, f"v{outcome.version}#{cause}"))
        for message in audience_messages(decision)
    ]
    if messages:
        ports.audiences.send(messages)
    if decision.changes:
        ports.bus.publish(bus_events(decision.changes, correlation))
    if decision.recheck_at is not None:
        ports.rechecks.schedule(outcome.profile_id, decision.recheck_at)
