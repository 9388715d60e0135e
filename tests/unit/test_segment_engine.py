"""Segment evaluation in the event path (shared/segments/engine.py): membership, computed traits,
time-only changes, audiences, merges and erasure — and, over random histories, the incremental state
agrees with a computation from scratch over the full history."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import clock
from shared.identity.rules import IdentityRules
from shared.models.profile import Identifier, Profile, TimelineEntry
from shared.models.segments import ComputedTrait, SegmentDefinition, SegmentState
from shared.segments.catalogue import SegmentCatalogue, load_segments
from shared.segments.engine import (
    Decision,
    audience_messages,
    erasure_messages,
    evaluate,
    from_scratch,
    on_erasure,
    on_event,
    on_merge,
    on_rebuild,
    on_recheck,
    state_size_bound,
)
from shared.segments.hashing import hashed_identifiers

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MS = timedelta(milliseconds=1)
SHIPPED = load_segments(Path(__file__).resolve().parents[2] / "segments")
EMAIL = "ada@example.com"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _profile(
    profile_id: str = "p1", emails: Iterable[str] = (EMAIL,), phones: Iterable[str] = (), **traits: Any
) -> Profile:
    identifiers = [Identifier(type="email", value=e) for e in emails]
    identifiers += [Identifier(type="phone", value=p) for p in phones]
    return Profile(
        profileId=profile_id,
        identifiers=identifiers,
        traits=traits,
        createdAt=clock.iso(T0),
        updatedAt=clock.iso(T0),
    )


_ids = iter(range(10**9))


def _track(event: str, at: datetime, message_id: str | None = None, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "messageId": message_id or f"m{next(_ids)}",
        "timestamp": clock.iso(at),
        "properties": properties,
    }


def _identify(at: datetime, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "messageId": f"m{next(_ids)}", "timestamp": clock.iso(at), "traits": traits}


def _catalogue(*segments: dict[str, Any], computed: Iterable[dict[str, Any]] = ()) -> SegmentCatalogue:
    return SegmentCatalogue(
        segments=[SegmentDefinition.model_validate({"name": s["id"], **s}) for s in segments],
        computed=[ComputedTrait.model_validate(t) for t in computed],
    )


def _run(
    catalogue: SegmentCatalogue,
    calls: Iterable[tuple[dict[str, Any], datetime]],
    profile: Profile | None = None,
    state: SegmentState | None = None,
) -> SegmentState:
    profile = profile or _profile()
    for call, now in calls:
        state = on_event(state, profile, call, catalogue, now).state
    assert state is not None
    return state


def _members(
    catalogue: SegmentCatalogue, state: SegmentState | None, now: datetime, profile: Profile | None = None
) -> set[str]:
    return evaluate(state, profile or _profile(), catalogue, now)[0]


# -- node types ------------------------------------------------------------------------------------


def test_an_event_count_in_a_window_holds_until_the_window_passes_exactly() -> None:
    catalogue = _catalogue({"id": "adders", "when": {"event": "Product Added", "within": "7d"}})

    decision = on_event(None, _profile(), _track("Product Added", T0), catalogue, T0)

    assert decision.state.segments == ["adders"]
    assert decision.recheck_at == T0 + 7 * DAY
    assert _members(catalogue, decision.state, T0 + 7 * DAY - MS) == {"adders"}
    assert _members(catalogue, decision.state, T0 + 7 * DAY) == set()  # leaves at t + within exactly
    later = on_recheck(decision.state, _profile(), catalogue, T0 + 7 * DAY)
    assert [(c.segment, c.entered, c.reason) for c in later.changes] == [("adders", False, "time")]
    assert later.state.segments == [] and later.state.nextCheck is None


def test_at_least_counts_the_newest_times_and_expires_with_the_nth_newest() -> None:
    catalogue = _catalogue({"id": "twice", "when": {"event": "Viewed", "within": "1d", "at_least": 2}})
    profile = _profile()
    one = on_event(None, profile, _track("Viewed", T0), catalogue, T0)
    two = on_event(
        one.state,
        profile,
        _track("Viewed", T0 + 6 * timedelta(hours=1)),
        catalogue,
        T0 + 6 * timedelta(hours=1),
    )

    assert one.state.segments == [] and one.recheck_at is None
    assert two.state.segments == ["twice"]
    assert two.recheck_at == T0 + DAY  # the older of the two leaves first


def test_at_most_holds_again_when_the_extra_event_leaves_the_window() -> None:
    catalogue = _catalogue({"id": "quiet", "when": {"event": "Viewed", "within": "1h", "at_most": 1}})
    profile = _profile()
    state = _run(catalogue, [(_track("Viewed", T0), T0)], profile)
    decision = on_event(state, profile, _track("Viewed", T0 + 10 * MS), catalogue, T0 + 10 * MS)

    assert state.segments == ["quiet"]
    assert decision.state.segments == [] and decision.recheck_at == T0 + timedelta(hours=1)
    assert _members(catalogue, decision.state, T0 + timedelta(hours=1)) == {"quiet"}


def test_an_all_time_count_with_property_conditions() -> None:
    catalogue = _catalogue(
        {
            "id": "big_orders",
            "when": {"event": "Order Completed", "where": {"total": {"gte": 100}}, "at_least": 2},
        }
    )

    state = _run(
        catalogue,
        [(_track("Order Completed", T0, total=150), T0), (_track("Order Completed", T0, total=20), T0)],
    )
    assert state.segments == [] and state.nextCheck is None
    state = _run(
        catalogue, [(_track("Order Completed", T0 + 400 * DAY, total=100), T0 + 400 * DAY)], state=state
    )
    assert state.segments == ["big_orders"]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], True),  # neither ever happened
        ([("Order Completed", 0)], False),  # no add ever, but an order
        ([("Product Added", 0)], True),
        ([("Product Added", 0), ("Order Completed", 1)], False),
        ([("Order Completed", 0), ("Product Added", 1)], True),
        ([("Product Added", 0), ("Order Completed", 0)], False),  # same instant counts as since
        ([("Order Completed", 0), ("Product Added", 0)], False),  # whatever order they came in
        ([("Product Added", 5), ("Order Completed", 1)], True),  # a late old order is before the add
    ],
)
def test_no_event_since(events: list[tuple[str, int]], expected: bool) -> None:
    catalogue = _catalogue(
        {"id": "open", "when": {"no_event_since": {"event": "Order Completed", "since": "Product Added"}}}
    )
    now = T0 + DAY
    calls = [(_track(name, T0 + minutes * timedelta(minutes=1)), now) for name, minutes in events]

    state = _run(catalogue, calls) if calls else None

    assert (_members(catalogue, state, now) == {"open"}) is expected


def test_traits_conditions_are_checked_as_journey_branches_check_them() -> None:
    catalogue = _catalogue({"id": "pros", "when": {"traits": {"plan": "pro", "age": {"gte": 18}}}})

    decision = on_event(None, _profile(plan="pro", age=30), _identify(T0, plan="pro"), catalogue, T0)
    out = on_event(decision.state, _profile(plan="free", age=30), _identify(T0, plan="free"), catalogue, T0)

    assert decision.state.segments == ["pros"]
    assert [(c.segment, c.entered) for c in out.changes] == [("pros", False)]


def test_a_before_now_trait_condition_is_rechecked_when_it_comes_true() -> None:
    catalogue = _catalogue({"id": "lapsed", "when": {"traits": {"trial_ends": {"before": "now"}}}})
    ends = T0 + 3 * DAY
    profile = _profile(trial_ends=clock.iso(ends))

    decision = on_event(None, profile, _identify(T0, trial_ends=clock.iso(ends)), catalogue, T0)

    assert decision.state.segments == [] and decision.recheck_at == ends + MS
    assert on_recheck(decision.state, profile, catalogue, ends + MS).state.segments == ["lapsed"]


def test_all_any_not_combine_and_the_shipped_vip_segment_reads_a_computed_trait() -> None:
    catalogue = _catalogue(
        {
            "id": "mixed",
            "when": {
                "all": [
                    {"any": [{"traits": {"plan": "pro"}}, {"computed": {"orders": {"gte": 2}}}]},
                    {"not": {"traits": {"country": "FR"}}},
                ]
            },
        },
        computed=[{"id": "orders", "event": "Order Completed", "aggregate": "count"}],
    )
    orders = [(_track("Order Completed", T0), T0), (_track("Order Completed", T0), T0)]

    assert _run(catalogue, [(_identify(T0), T0)], _profile(plan="pro")).segments == ["mixed"]
    assert _run(catalogue, orders, _profile(plan="free")).segments == ["mixed"]
    assert _run(catalogue, orders, _profile(plan="free", country="FR")).segments == []
    vip = _run(
        SHIPPED,
        [(_track("Order Completed", T0, revenue=499.5), T0), (_track("Order Completed", T0, total=0.5), T0)],
    )
    assert vip.segments == ["vip"] and vip.computed == {"orders_count": 2, "lifetime_revenue": 500}


# -- computed traits -------------------------------------------------------------------------------


def test_computed_traits_of_every_kind() -> None:
    catalogue = _catalogue(
        computed=[
            {"id": "n", "event": "Order Completed", "aggregate": "count"},
            {"id": "spend", "event": "Order Completed", "aggregate": "sum", "property": ["revenue", "total"]},
            {"id": "smallest", "event": "Order Completed", "aggregate": "min", "property": "total"},
            {"id": "largest", "event": "Order Completed", "aggregate": "max", "property": "total"},
            {"id": "first_sku", "event": "Order Completed", "aggregate": "first", "property": "sku"},
            {"id": "last_order_at", "event": "Order Completed", "aggregate": "last"},
        ]
    )
    later = T0 + DAY
    state = _run(
        catalogue,
        [
            (_track("Order Completed", later, revenue=0.1, total=99, sku="b"), later),
            (_track("Order Completed", T0, revenue="lots", total=0.2, sku="a"), later),  # older, arrives late
            (_track("Order Completed", later, total=float("nan")), later),  # not a number: left out of sums
            (_track("Order Completed", later, total=10**16), later),  # no plausible amount: left out
        ],
    )

    assert state.computed == {
        "n": 4,
        "spend": 0.1 + 0.2,  # revenue, else total (a non-numeric revenue falls back to total)
        "smallest": 0.2,
        "largest": 99,
        "first_sku": "a",
        "last_order_at": clock.iso(later),
    }


def test_a_windowed_computed_trait_counts_whole_utc_days_and_changes_at_midnight() -> None:
    catalogue = _catalogue(
        {"id": "frequent", "when": {"computed": {"orders_2d": {"gte": 2}}}},
        computed=[{"id": "orders_2d", "event": "Order Completed", "aggregate": "count", "within": "2d"}],
    )
    yesterday_late = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
    today = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    state = _run(
        catalogue,
        [(_track("Order Completed", yesterday_late), today), (_track("Order Completed", today), today)],
    )

    assert state.computed == {"orders_2d": 2} and state.segments == ["frequent"]
    assert state.nextCheck == "2026-03-03T00:00:00.000Z"  # the 1st leaves the 2-day window at midnight
    after = on_recheck(state, _profile(), catalogue, datetime(2026, 3, 3, tzinfo=UTC))
    assert after.state.computed == {"orders_2d": 1} and after.state.segments == []
    assert list(after.state.traits["orders_2d"].days) == ["2026-03-02"]  # the old day is gone from the state


def test_ties_at_the_same_instant_are_counted_and_broken_the_same_way_in_any_order() -> None:
    catalogue = _catalogue(
        {"id": "double", "when": {"event": "Viewed", "within": "1h", "at_least": 2}},
        computed=[{"id": "last_sku", "event": "Viewed", "aggregate": "last", "property": "sku"}],
    )
    one, two = _track("Viewed", T0, "a", sku="x"), _track("Viewed", T0, "b", sku="y")

    forward, backward = _run(catalogue, [(one, T0), (two, T0)]), _run(catalogue, [(two, T0), (one, T0)])

    assert forward.segments == backward.segments == ["double"]
    assert forward.computed == backward.computed


# -- event time ------------------------------------------------------------------------------------


def test_a_device_clock_years_ahead_counts_at_the_time_of_processing() -> None:
    catalogue = load_segments(Path(__file__).resolve().parents[2] / "segments")
    ahead = T0.replace(year=2031)

    decision = on_event(None, _profile(), _track("Product Added", ahead), catalogue, T0)

    assert decision.state.segments == ["cart_abandoners"]
    assert decision.state.events["Product Added"].last == clock.iso(T0)
    assert decision.recheck_at == T0 + 7 * DAY  # not in 2031
    assert _members(catalogue, decision.state, T0 + 7 * DAY) == set()


def test_an_old_event_counts_where_it_falls() -> None:
    catalogue = _catalogue({"id": "recent", "when": {"event": "Viewed", "within": "7d"}})

    decision = on_event(None, _profile(), _track("Viewed", T0 - 8 * DAY), catalogue, T0)

    assert decision.state.segments == [] and decision.recheck_at is None


# -- writes, retries, dedupe -----------------------------------------------------------------------


def test_nothing_changes_nothing_is_written() -> None:
    state = _run(SHIPPED, [(_track("Order Completed", T0, revenue=10), T0)])

    unrelated = on_event(state, _profile(), _track("Page Viewed", T0), SHIPPED, T0)
    identify = on_event(state, _profile(), _identify(T0, name="Ada"), SHIPPED, T0)

    assert not unrelated.write and unrelated.state == state and unrelated.changes == unrelated.intents == []
    assert not identify.write
    assert not on_event(None, _profile(), _track("Product Added", T0), SegmentCatalogue(), T0).write


def test_a_recheck_with_nothing_due_writes_nothing() -> None:
    state = _run(SHIPPED, [(_track("Product Added", T0), T0), (_track("Order Completed", T0, revenue=5), T0)])

    decision = on_recheck(state, _profile(), SHIPPED, T0 + DAY)

    assert not decision.write and decision.changes == decision.intents == [] and decision.recheck_at is None


def test_an_event_on_the_state_of_a_profile_merged_meanwhile_moves_it_to_the_survivor() -> None:
    state = _run(SHIPPED, [(_track("Product Added", T0), T0)], _profile("old"))

    decision = on_event(state, _profile("survivor"), _track("Page Viewed", T0), SHIPPED, T0)

    assert decision.write and decision.state.profileId == "survivor"
    assert decision.state.segments == ["cart_abandoners"]


def test_a_retried_event_is_not_counted_twice() -> None:
    order = _track("Order Completed", T0, revenue=300)
    first = on_event(None, _profile(), order, SHIPPED, T0)

    retry = on_event(first.state, _profile(), order, SHIPPED, T0 + MS)

    assert first.state.computed == {"orders_count": 1, "lifetime_revenue": 300}
    assert not retry.write and retry.state.computed == first.state.computed


def test_only_the_last_messages_are_remembered() -> None:
    calls = [(_track("Order Completed", T0, revenue=1), T0) for _ in range(100)]

    state = _run(SHIPPED, calls)

    assert len(state.seen) == 64 and state.computed["orders_count"] == 100


# -- audiences -------------------------------------------------------------------------------------


def _intents(decision: Decision) -> list[tuple[str, str, list[str]]]:
    return [(i.platform, i.action, [h.sha256 for h in i.identifiers]) for i in decision.intents]


def test_entering_adds_the_hashed_email_to_both_audiences_and_buying_removes_it_at_once() -> None:
    profile = _profile(emails=[EMAIL])
    added = on_event(None, profile, _track("Product Added", T0), SHIPPED, T0)
    bought = on_event(added.state, profile, _track("Order Completed", T0 + MS, total=20), SHIPPED, T0 + MS)

    assert _intents(added) == [("meta", "add", [_sha(EMAIL)]), ("google", "add", [_sha(EMAIL)])]
    assert _intents(bought) == [("meta", "remove", [_sha(EMAIL)]), ("google", "remove", [_sha(EMAIL)])]
    assert {i.at for i in bought.intents} == {clock.iso(T0 + MS)}
    assert bought.state.synced == {}
    (message,) = audience_messages(bought)
    assert (message.segment, message.entered, len(message.intents)) == ("cart_abandoners", False, 2)


def test_phones_are_hashed_as_each_platform_documents() -> None:
    profile = _profile(emails=["  Ada@Example.COM "], phones=["+14155552671"])

    meta, google = hashed_identifiers(profile, "meta"), hashed_identifiers(profile, "google")

    assert [(h.kind, h.sha256) for h in meta] == [("email", _sha(EMAIL)), ("phone", _sha("14155552671"))]
    assert [(h.kind, h.sha256) for h in google] == [("email", _sha(EMAIL)), ("phone", _sha("+14155552671"))]


def test_opting_out_removes_from_every_audience_and_opting_back_in_adds_again() -> None:
    state = _run(SHIPPED, [(_track("Product Added", T0), T0)])

    out = on_event(state, _profile(unsubscribed=True), _identify(T0, unsubscribed=True), SHIPPED, T0)
    back = on_event(out.state, _profile(unsubscribed=False), _identify(T0, unsubscribed=False), SHIPPED, T0)

    assert [(p, a) for p, a, _ in _intents(out)] == [("meta", "remove"), ("google", "remove")]
    assert out.changes == [] and out.state.segments == ["cart_abandoners"]  # still in the segment
    assert [(p, a) for p, a, _ in _intents(back)] == [("meta", "add"), ("google", "add")]


def test_a_changed_email_removes_the_old_hash_and_adds_the_new() -> None:
    state = _run(SHIPPED, [(_track("Product Added", T0), T0)], _profile(emails=["old@example.com"]))

    decision = on_event(
        state, _profile(emails=["new@example.com"]), _identify(T0, email="new@example.com"), SHIPPED, T0
    )

    assert _intents(decision)[:2] == [
        ("meta", "remove", [_sha("old@example.com")]),
        ("meta", "add", [_sha("new@example.com")]),
    ]
    assert decision.state.synced["meta:cart-abandoners:cart_abandoners"] == {
        "email": [_sha("new@example.com")]
    }


def test_erasure_removes_every_synced_hash_and_every_membership() -> None:
    profile = _profile(emails=[EMAIL], phones=["+14155552671"])
    state = _run(
        SHIPPED,
        [(_track("Product Added", T0), T0), (_track("Order Completed", T0, revenue=900), T0)],
        profile,
    )
    state = _run(SHIPPED, [(_track("Product Added", T0 + MS), T0 + MS)], profile, state)
    assert state.segments == ["cart_abandoners", "vip"]

    intents = on_erasure([state], T0 + DAY)
    messages = erasure_messages([state], T0 + DAY)

    assert sorted((i.platform, i.action, len(i.identifiers)) for i in intents) == [
        ("google", "remove", 2),
        ("meta", "remove", 2),
    ]
    assert [(m.segment, m.entered, len(m.intents)) for m in messages] == [
        ("cart_abandoners", False, 2),
        ("vip", False, 0),
    ]


# -- merges and rebuilds ---------------------------------------------------------------------------


def test_a_merge_combines_aggregates_and_a_purchase_on_another_device_removes_from_audiences() -> None:
    phone = _run(SHIPPED, [(_track("Product Added", T0), T0)], _profile("phone"))
    laptop = _run(
        SHIPPED, [(_track("Order Completed", T0 + MS, revenue=40), T0 + MS)], _profile("laptop", emails=[])
    )
    merged_profile = _profile("laptop")  # the laptop's profile survives, with the email

    decision = on_merge(laptop, [phone], merged_profile, SHIPPED, T0 + MS)

    assert decision.state.profileId == "laptop" and decision.state.segments == []
    assert decision.state.events["Product Added"].count == 1
    # The phone's exit (segment-members) and the laptop's: the journey router moved the phone's runs
    # under the laptop, where only the survivor's exit can end them.
    assert [(c.profileId, c.segment, c.entered, c.reason) for c in decision.changes] == [
        ("laptop", "cart_abandoners", False, "merge"),
        ("phone", "cart_abandoners", False, "merge"),
    ]
    assert [(p, a) for p, a, _ in _intents(decision)] == [("meta", "remove"), ("google", "remove")]
    assert decision.state.synced == {}


def test_a_merge_that_takes_merged_profiles_out_exits_the_survivor_once_and_keeps_distinct_messages() -> None:
    from shared.journeys.router import segment_event
    from shared.segments.service import deduplication_id

    tablet = _run(SHIPPED, [(_track("Product Added", T0), T0)], _profile("tablet"))
    phone = _run(SHIPPED, [(_track("Product Added", T0), T0)], _profile("phone"))
    laptop = _run(
        SHIPPED, [(_track("Order Completed", T0 + MS, revenue=40), T0 + MS)], _profile("laptop", emails=[])
    )

    decision = on_merge(laptop, [phone, tablet], _profile("laptop"), SHIPPED, T0 + MS)

    assert decision.state.segments == []
    assert [(c.profileId, c.segment, c.entered) for c in decision.changes] == [
        ("laptop", "cart_abandoners", False),  # once, however many merged profiles were in
        ("phone", "cart_abandoners", False),
        ("tablet", "cart_abandoners", False),
    ]
    # The survivor's exit names the merged profiles that were in: the router exits their runs where
    # they still are if it routes this before the merge has moved them.
    assert decision.changes[0].merged == ["phone", "tablet"]
    # One audience message per (profile, segment): the survivor's carries the removals (its hashes
    # leave the audiences), the merged ones only delete their segment-members items; each has its
    # own FIFO deduplication id and journey messageId, so neither hides another.
    messages = audience_messages(decision)
    assert [(m.profileId, m.entered, len(m.intents)) for m in messages] == [
        ("laptop", False, 2),
        ("phone", False, 0),
        ("tablet", False, 0),
    ]
    assert len({deduplication_id(m.profileId, m.segment, "v2#cause") for m in messages}) == 3
    events = [segment_event(c.profileId, c.segment, c.entered, c.at) for c in decision.changes]
    assert len({e.event["messageId"] for e in events}) == 3


def test_a_merge_exits_the_survivor_only_when_it_is_out_of_the_segment_and_was_not_already() -> None:
    phone = _run(SHIPPED, [(_track("Product Added", T0), T0)], _profile("phone"))
    # The survivor is in the segment after the merge: its run goes on, no exit for it.
    carted = _run(SHIPPED, [(_track("Product Added", T0), T0)], _profile("laptop", emails=[]))
    stays = on_merge(carted, [phone], _profile("laptop"), SHIPPED, T0 + MS)
    assert stays.state.segments == ["cart_abandoners"]
    assert [(c.profileId, c.entered) for c in stays.changes] == [("phone", False)]
    # The survivor was in and leaves by the merge: its own exit, not a second one.
    bought = _run(
        SHIPPED,
        [(_track("Product Added", T0), T0)],
        _profile("laptop", emails=[]),
    )
    buyer = _run(SHIPPED, [(_track("Order Completed", T0 + MS), T0 + MS)], _profile("phone"))
    leaves = on_merge(bought, [buyer], _profile("laptop"), SHIPPED, T0 + 2 * MS)
    assert leaves.state.segments == []
    assert [(c.profileId, c.entered, c.reason) for c in leaves.changes] == [("laptop", False, "merge")]


def test_an_unmerge_rebuilds_from_the_timeline() -> None:
    entry = TimelineEntry(
        profileId="p1", type="track", name="Product Added", timestamp=clock.iso(T0), messageId="a"
    )
    merged = _run(SHIPPED, [(_track("Product Added", T0), T0), (_track("Order Completed", T0 + MS), T0 + MS)])

    decision = on_rebuild(_profile(), [entry], merged, SHIPPED, T0 + DAY)

    assert decision.state.segments == ["cart_abandoners"]
    assert [(c.segment, c.entered, c.reason) for c in decision.changes] == [
        ("cart_abandoners", True, "unmerge")
    ]
    assert decision.recheck_at == T0 + 7 * DAY


# -- the state stays one DynamoDB item -------------------------------------------------------------


def _fifty_segments() -> SegmentCatalogue:
    events = [f"Event {i}" for i in range(10)]
    segments: list[dict[str, Any]] = []
    for i in range(50):
        name = events[i % 10]
        kind = i % 5
        when: dict[str, Any]
        if kind == 0:
            when = {"event": name, "within": f"{1 + i}d", "at_least": 1 + i % 7}
        elif kind == 1:
            when = {
                "all": [
                    {"event": name, "within": "30d"},
                    {"no_event_since": {"event": events[(i + 1) % 10], "since": name}},
                ]
            }
        elif kind == 2:
            when = {"computed": {f"sum_{i % 4}": {"gte": i}}}
        elif kind == 3:
            when = {
                "any": [{"traits": {"plan": "pro"}}, {"event": name, "where": {"sku": f"s{i}"}, "at_most": 3}]
            }
        else:
            when = {"not": {"event": name, "within": "90d", "at_least": 20}}
        audiences = (
            [{"platform": "meta", "audience": f"seg-{i}"}, {"platform": "google", "audience": f"seg-{i}"}]
            if i % 3 == 0
            else []
        )
        segments.append({"id": f"segment_{i}", "when": when, "audiences": audiences})
    computed = [
        {"id": f"sum_{j}", "event": events[j], "aggregate": "sum", "property": ["revenue", "total"]}
        for j in range(4)
    ] + [
        {"id": "orders_90d", "event": events[0], "aggregate": "count", "within": "90d"},
        {"id": "last_sku", "event": events[1], "aggregate": "last", "property": "sku"},
    ]
    return _catalogue(*segments, computed=computed)


def test_the_state_for_fifty_segments_stays_far_inside_a_dynamodb_item() -> None:
    catalogue = _fifty_segments()
    rules = IdentityRules()
    emails, phones = rules.limit("email"), rules.limit("phone")
    bound = state_size_bound(catalogue, emails, phones)
    profile = _profile(
        emails=[f"someone.with.a.long.address.{i}@example.com" for i in range(emails)],
        phones=[f"+1415555{i:04d}" for i in range(phones)],
        plan="pro",
    )
    state: SegmentState | None = None
    now = T0
    for n in range(3000):  # ~3 events an hour for 40 days, each name in turn, odd amounts and long values
        now += timedelta(minutes=19, milliseconds=n)
        call = _track(
            f"Event {n % 10}",
            now,
            "x" * 200 + str(n),
            revenue=1 / (n + 3),
            sku="s" * 250 if n % 2 else f"s{n % 50}",
        )
        state = on_event(state, profile, call, catalogue, now).state
    assert state is not None

    size = len(state.model_dump_json().encode())

    assert size <= bound < 200_000  # DynamoDB's item limit is 400 KB: half of it is the ceiling here
    assert size < 60_000


# -- the property: incremental == from scratch ------------------------------------------------------

PROPERTY_CATALOGUE = _catalogue(
    {
        "id": "abandoners",
        "when": {"all": [{"event": "A", "within": "2d"}, {"no_event_since": {"event": "O", "since": "A"}}]},
    },
    {"id": "busy", "when": {"event": "A", "within": "1d", "at_least": 3}},
    {"id": "calm", "when": {"event": "B", "within": "12h", "at_most": 1}},
    {"id": "ever_b", "when": {"event": "B", "where": {"kind": "x"}, "at_least": 2}},
    {
        "id": "vip",
        "when": {"computed": {"spend": {"gte": 100}}},
        "audiences": [{"platform": "meta", "audience": "vip"}],
    },
    {"id": "recent_buyer", "when": {"computed": {"orders_3d": {"gte": 1}}}},
    {
        "id": "pro_or_never",
        "when": {"any": [{"traits": {"plan": "pro"}}, {"not": {"event": "O", "at_least": 1}}]},
        "audiences": [{"platform": "google", "audience": "pros"}],
    },
    computed=[
        {"id": "spend", "event": "O", "aggregate": "sum", "property": ["revenue", "total"]},
        {"id": "orders", "event": "O", "aggregate": "count"},
        {"id": "orders_3d", "event": "O", "aggregate": "count", "within": "3d"},
        {"id": "biggest", "event": "O", "aggregate": "max", "property": "revenue"},
        {"id": "smallest_3d", "event": "O", "aggregate": "min", "property": "revenue", "within": "3d"},
        {"id": "first_kind", "event": "B", "aggregate": "first", "property": "kind"},
        {"id": "last_a", "event": "A", "aggregate": "last"},
        {"id": "last_kind_2d", "event": "B", "aggregate": "last", "property": "kind", "within": "2d"},
    ],
)

_revenue = st.one_of(
    st.none(),
    st.integers(min_value=-5, max_value=200),
    st.floats(min_value=-50, max_value=200, allow_nan=False),
    st.sampled_from(["12", "abc", True, float("nan"), float("inf")]),
)
_step = st.tuples(
    st.sampled_from(["A", "B", "O", "X", "identify"]),
    st.integers(min_value=0, max_value=6 * 3600),  # seconds the clock moves on before this call
    st.integers(min_value=-4 * 86400, max_value=86400 * 400),  # timestamp offset from now (ahead too)
    _revenue,
    _revenue,
    st.sampled_from(["x", "y", None]),
    st.sampled_from(["pro", "free"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(_step, max_size=25),
    tail=st.integers(min_value=0, max_value=5 * 86400),
    split=st.lists(st.integers(min_value=0, max_value=2), max_size=25),
    equal_times=st.booleans(),
)
def test_incremental_membership_equals_membership_from_scratch(
    steps: list[tuple[str, int, int, Any, Any, str | None, str]],
    tail: int,
    split: list[int],
    equal_times: bool,
) -> None:
    catalogue = PROPERTY_CATALOGUE
    now = T0
    traits: dict[str, Any] = {}
    history: list[TimelineEntry] = []
    single: SegmentState | None = None
    parts: list[SegmentState | None] = [None, None, None]  # the same events spread over three profiles
    for index, (name, advance, offset, revenue, total, kind, plan) in enumerate(steps):
        now += timedelta(seconds=advance)
        # equal_times: many events at one instant (the clock does not move, timestamps coincide)
        stamp = now if equal_times else now + timedelta(seconds=offset)
        message_id = f"m{index}"
        if name == "identify":
            traits = {**traits, "plan": plan}
            call: dict[str, Any] = {
                "type": "identify",
                "messageId": message_id,
                "timestamp": clock.iso(stamp),
                "traits": {"plan": plan},
            }
        else:
            properties = {
                k: v for k, v in (("revenue", revenue), ("total", total), ("kind", kind)) if v is not None
            }
            call = {
                "type": "track",
                "event": name,
                "messageId": message_id,
                "timestamp": clock.iso(stamp),
                "properties": properties,
            }
            # The timeline keeps the time the event counted at (min(timestamp, now)).
            history.append(
                TimelineEntry(
                    profileId="p",
                    type="track",
                    name=name,
                    timestamp=clock.iso(min(stamp, now)),
                    messageId=message_id,
                    data=properties,
                )
            )
        profile = _profile("p", **traits)
        single = on_event(single, profile, call, catalogue, now).state
        target = split[index] if index < len(split) else 0
        part_profile = _profile(f"p{target}", **traits)
        parts[target] = on_event(parts[target], part_profile, call, catalogue, now).state
        if index % 7 == 3:  # a time-only re-check now and then, as the scheduler would run it
            single = on_recheck(single, profile, catalogue, now).state
    at = now + timedelta(seconds=tail)
    profile = _profile("p", **traits)

    expected_members, expected_computed = from_scratch(profile, history, catalogue, at)

    members, computed, _ = evaluate(single, profile, catalogue, at)
    assert (members, computed) == (expected_members, expected_computed)
    rechecked = on_recheck(single, profile, catalogue, at).state
    assert (set(rechecked.segments), rechecked.computed) == (expected_members, expected_computed)
    merged = on_merge(
        parts[0], [p for p in parts[1:] if p is not None], _profile("p0", **traits), catalogue, now
    ).state
    members, computed, _ = evaluate(merged, profile, catalogue, at)
    assert (members, computed) == (expected_members, expected_computed)


def test_the_next_check_is_never_later_than_a_change_by_time_alone() -> None:
    # Walk a history hour by hour: whenever membership or a computed value changes without an event,
    # a check was due at or before that moment.
    catalogue = PROPERTY_CATALOGUE
    profile = _profile("p")
    state = _run(
        catalogue,
        [
            (_track("A", T0), T0),
            (_track("O", T0 + timedelta(hours=1), revenue=150), T0 + timedelta(hours=1)),
            (_track("A", T0 + timedelta(hours=2)), T0 + timedelta(hours=2)),
            (_track("B", T0 + timedelta(hours=3), kind="x"), T0 + timedelta(hours=3)),
            (_track("B", T0 + timedelta(hours=4), kind="y"), T0 + timedelta(hours=4)),
        ],
        profile,
    )
    moment = T0 + timedelta(hours=4)
    before = evaluate(state, profile, catalogue, moment)[:2]
    changes = 0
    while moment < T0 + 10 * DAY:
        moment += timedelta(minutes=30)
        now_values = evaluate(state, profile, catalogue, moment)[:2]
        if now_values != before:
            changes += 1
            assert state.nextCheck is not None and clock.parse(state.nextCheck) <= moment
            state = on_recheck(state, profile, catalogue, moment).state
            before = now_values
    assert changes >= 3 and state.nextCheck is None


def test_the_shipped_catalogue_round_trips_through_json() -> None:
    assert SegmentCatalogue.model_validate_json(json.dumps(SHIPPED.model_dump(mode="json"))) == SHIPPED
