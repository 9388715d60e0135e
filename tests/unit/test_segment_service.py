"""The segments function's read → decide → write loop (shared/segments/service.py), in memory."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from shared import clock
from shared.identity.resolver import ConcurrentChangeError
from shared.models.profile import Profile, TimelineEntry
from shared.models.segments import OUTBOX_KEEP, SegmentChange, SegmentState
from shared.segments.engine import Decision, message_digest
from shared.segments.service import ATTEMPTS, settle, settle_merge

NOW = "2030-03-04T09:00:00.000Z"


class Store:
    """One profile and its state; `races` puts lose to a concurrent writer before one wins."""

    def __init__(self, races: int = 0, state: SegmentState | None = None):
        self.profile = Profile(profileId="p1", createdAt=NOW, updatedAt=NOW)
        self.state = state
        self.races = races
        self.reads = 0
        self.folds: list[tuple[int, list[str]]] = []

    def read(self, profile_id: str) -> tuple[Profile | None, SegmentState | None]:
        self.reads += 1
        return (self.profile, self.state) if profile_id == "p1" else (None, None)

    def put(self, state: SegmentState, expected_version: int) -> int:
        if self.races:
            self.races -= 1
            raise ConcurrentChangeError("lost")
        self.state = state.model_copy(update={"version": expected_version + 1})
        return expected_version + 1

    def states(self, profile_ids: Iterable[str]) -> list[SegmentState]:
        return [SegmentState(profileId=p, version=3) for p in profile_ids]

    def fold(self, state: SegmentState, expected_version: int, merged: list[SegmentState]) -> int:
        self.folds.append((expected_version, [m.profileId for m in merged]))
        return self.put(state, expected_version)

    def timeline_since(self, profile_ids: Iterable[str], since: str) -> list[TimelineEntry]:
        return []


def _counting(state: SegmentState | None, profile: Profile) -> Decision:
    base = state or SegmentState(profileId=profile.profileId)
    return Decision(base.model_copy(update={"seen": [*base.seen, "m"]}), True, [], [], None)


def _unchanged(state: SegmentState | None, profile: Profile) -> Decision:
    return Decision(state or SegmentState(profileId=profile.profileId), False, [], [], None)


def test_a_lost_race_reads_again_and_decides_again() -> None:
    store = Store(races=2)
    outcome = settle("p1", _counting, store, "m-1")
    assert outcome is not None and outcome.version == 1
    assert store.reads == 3


def test_too_many_lost_races_fail_the_event_for_a_retry() -> None:
    store = Store(races=ATTEMPTS)
    with pytest.raises(ConcurrentChangeError):
        settle("p1", _counting, store, "m-1")
    assert store.reads == ATTEMPTS


def test_nothing_to_write_writes_nothing_and_keeps_the_version() -> None:
    store = Store(state=SegmentState(profileId="p1", version=4))
    outcome = settle("p1", _unchanged, store, "m-1")
    assert outcome is not None and outcome.version == 4 and store.state is not None


def test_a_gone_profile_decides_nothing() -> None:
    assert settle("erased", _counting, Store(), "m-1") is None


def test_a_merge_writes_the_survivor_and_deletes_the_merged_states_in_one_fold() -> None:
    store = Store(state=SegmentState(profileId="p1", version=2))
    outcome = settle_merge("p1", ["p2", "p3"], lambda s, m, p: _counting(s, p), store, "m-1")
    assert outcome is not None and outcome.version == 3
    assert store.folds == [(2, ["p2", "p3"])]


ENTERED = SegmentChange(profileId="p1", segment="vip", entered=True, at=NOW, reason="event")


def _entering(state: SegmentState | None, profile: Profile) -> Decision:
    base = state or SegmentState(profileId=profile.profileId)
    new = base.model_copy(update={"segments": ["vip"], "seen": [*base.seen, message_digest("m-1")]})
    return Decision(new, True, [ENTERED], [], clock.parse("2030-03-11T09:00:00.000Z"))


def test_a_written_decision_keeps_its_effects_under_its_cause() -> None:
    store = Store()
    outcome = settle("p1", _entering, store, "m-1")
    assert outcome is not None and outcome.decision.changes == [ENTERED]
    assert store.state is not None
    [outbox] = store.state.outbox
    assert outbox.cause == message_digest("m-1")
    assert outbox.changes == [ENTERED]
    assert outbox.recheckAt == "2030-03-11T09:00:00.000Z"


def test_the_state_keeps_the_effects_of_its_last_few_causes() -> None:
    store = Store()
    for n in range(OUTBOX_KEEP + 2):
        settle("p1", _entering, store, f"m-{n}")
    assert store.state is not None
    assert [o.cause for o in store.state.outbox] == [
        message_digest(f"m-{n}") for n in range(2, OUTBOX_KEEP + 2)
    ]
    settle("p1", _entering, store, "m-3")  # the same cause again: kept once, as the newest
    assert [o.cause for o in store.state.outbox][-1] == message_digest("m-3")
    assert len(store.state.outbox) == OUTBOX_KEEP


def test_a_retried_cause_carries_out_again_the_effects_written_with_it() -> None:
    # The first delivery wrote the state, then failed before publishing; the retry is `seen` by the
    # domain (nothing to write), and the stored effects go out again.
    store = Store()
    settle("p1", _entering, store, "m-1")
    retried = settle("p1", _unchanged, store, "m-1")
    assert retried is not None
    assert retried.decision.changes == [ENTERED] and retried.decision.write is False
    assert retried.decision.recheck_at == clock.parse("2030-03-11T09:00:00.000Z")
    assert retried.version == 1  # nothing written again


def test_another_cause_that_changes_nothing_carries_out_nothing() -> None:
    store = Store()
    settle("p1", _entering, store, "m-1")
    other = settle("p1", _unchanged, store, "m-2")
    assert other is not None and other.decision.changes == [] and other.decision.recheck_at is None
