"""Which journeys a resolved event starts or ends (shared/journeys/router.py)."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any

import pytest

from infra.topology import TOPOLOGY
from shared import clock
from shared.config import JourneyRef
from shared.journeys.router import START_GRACE, execution_name, follow_merge, route
from shared.models.events import ProfilesMerged, ResolvedEvent
from tests.unit.fakes import FakeExecutions, FakeRunStore

MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:cart_abandonment"
NOW = "2024-05-01T12:00:00.000Z"
PROFILE = "7d0c6f7e-2b7a-4c47-9a3e-5c1f0b6f2a11"
MERGED = "0b8e1c55-93f4-4c61-8f0e-2a7d4e9b6c33"
SFN_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")

CART = JourneyRef(
    id="cart_abandonment", trigger="Product Added", goal="Order Completed", stateMachineArn=MACHINE
)
WELCOME = JourneyRef(
    id="welcome",
    trigger="Signed Up",
    goal=None,
    stateMachineArn=MACHINE.replace("cart_abandonment", "welcome"),
)


def _resolved(event: str = "Product Added", message_id: str = "m-1", **fields: Any) -> ResolvedEvent:
    call = {
        "type": "track",
        "event": event,
        "messageId": message_id,
        "timestamp": "2024-05-01T10:00:00.000Z",
        "properties": {"name": "Red shoes"},
        "anonymousId": "a-1",
    }
    return ResolvedEvent(profileId=fields.pop("profileId", PROFILE), event={**call, **fields})


@pytest.fixture
def journal() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def runs(journal: list[tuple[str, str]]) -> FakeRunStore:
    return FakeRunStore(journal)


@pytest.fixture
def executions(journal: list[tuple[str, str]]) -> FakeExecutions:
    return FakeExecutions(journal)


def _route(event: ResolvedEvent, runs: FakeRunStore, executions: FakeExecutions) -> Any:
    return route(event, [CART, WELCOME], runs, executions, NOW)


# -- execution names -------------------------------------------------------------------------------


def test_an_execution_name_is_the_same_for_the_same_profile_and_event() -> None:
    assert execution_name(PROFILE, "m-1") == execution_name(PROFILE, "m-1")


def test_an_execution_name_differs_per_event_and_per_profile() -> None:
    names = {execution_name(PROFILE, "m-1"), execution_name(PROFILE, "m-2"), execution_name(MERGED, "m-1")}

    assert len(names) == 3


@pytest.mark.parametrize(
    "message_id", ["m-1", "ajs-next-1714557600000-3e1f8b", "x" * 256, "ünïcødé / spaces: ok?"]
)
def test_an_execution_name_is_a_valid_step_functions_name(message_id: str) -> None:
    longest_profile_id = "p" * 64

    for profile_id in (PROFILE, longest_profile_id):
        assert SFN_NAME.match(execution_name(profile_id, message_id))


# -- triggers --------------------------------------------------------------------------------------


def test_a_trigger_starts_one_execution_of_its_journey(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    routing = _route(_resolved(), runs, executions)

    name = execution_name(PROFILE, "m-1")
    assert routing.started == [FakeExecutions.arn_of(MACHINE, name)]
    assert list(executions.status) == routing.started
    assert routing.exited == []


def test_a_started_execution_gets_the_profile_entry_time_and_trigger(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    routing = _route(_resolved(), runs, executions)

    assert executions.payloads[routing.started[0]] == {
        "profileId": PROFILE,
        "enteredAt": "2024-05-01T10:00:00.000Z",
        "trigger": {
            "event": "Product Added",
            "properties": {"name": "Red shoes"},
            "messageId": "m-1",
            "timestamp": "2024-05-01T10:00:00.000Z",
        },
    }


def test_the_run_is_recorded_before_the_execution_starts(
    runs: FakeRunStore, executions: FakeExecutions, journal: list[tuple[str, str]]
) -> None:
    _route(_resolved(), runs, executions)

    name = execution_name(PROFILE, "m-1")
    assert [entry for entry in journal if entry[0] in ("add", "start")] == [("add", name), ("start", name)]
    [run] = runs.active(PROFILE, "cart_abandonment")
    assert run["runKey"] == f"cart_abandonment#{name}"
    assert run["executionArn"] == FakeExecutions.arn_of(MACHINE, name)
    assert run["enteredAt"] == "2024-05-01T10:00:00.000Z"


def test_the_same_event_twice_starts_nothing_new(runs: FakeRunStore, executions: FakeExecutions) -> None:
    _route(_resolved(), runs, executions)

    again = _route(_resolved(), runs, executions)

    assert again.started == []
    assert len(executions.status) == 1


def test_another_trigger_while_in_the_journey_starts_nothing_new(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    _route(_resolved(message_id="m-1"), runs, executions)

    again = _route(_resolved(message_id="m-2"), runs, executions)

    assert again.started == []
    assert len(runs.active(PROFILE, "cart_abandonment")) == 1


def test_a_finished_run_is_closed_and_does_not_block_re_entry(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    first = _route(_resolved(message_id="m-1"), runs, executions).started[0]
    executions.finish(first)

    again = _route(_resolved(message_id="m-2"), runs, executions)

    assert len(again.started) == 1 and again.started != [first]
    assert runs.status_of(first) == ["completed"]


def test_a_trigger_of_another_journey_starts_that_journey_only(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    routing = _route(_resolved(event="Signed Up"), runs, executions)

    assert len(routing.started) == 1
    assert ":execution:welcome:" in routing.started[0]
    assert runs.active(PROFILE, "cart_abandonment") == []


# -- goals -----------------------------------------------------------------------------------------


def test_a_goal_stops_the_active_run_and_closes_it(runs: FakeRunStore, executions: FakeExecutions) -> None:
    started = _route(_resolved(), runs, executions).started[0]

    routing = _route(_resolved(event="Order Completed", message_id="m-2"), runs, executions)

    assert routing.exited == [started]
    assert executions.status[started] == "ABORTED"
    assert "Order Completed" in executions.stopped[started]
    assert runs.status_of(started) == ["goal_reached"]


def test_a_goal_stops_only_the_runs_of_its_own_profile(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    other = _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions).started

    routing = _route(_resolved(event="Order Completed", message_id="m-2"), runs, executions)

    assert routing.exited == []
    assert executions.is_running(other[0])


def test_a_goal_without_active_runs_stops_nothing(runs: FakeRunStore, executions: FakeExecutions) -> None:
    routing = _route(_resolved(event="Order Completed"), runs, executions)

    assert routing.exited == [] and routing.started == []
    assert executions.stopped == {}


def test_after_the_goal_the_next_trigger_starts_again(runs: FakeRunStore, executions: FakeExecutions) -> None:
    _route(_resolved(message_id="m-1"), runs, executions)
    _route(_resolved(event="Order Completed", message_id="m-2"), runs, executions)

    routing = _route(_resolved(message_id="m-3"), runs, executions)

    assert len(routing.started) == 1


# -- everything else -------------------------------------------------------------------------------


def test_an_identify_event_routes_nothing(
    runs: FakeRunStore, executions: FakeExecutions, journal: list[tuple[str, str]]
) -> None:
    event = ResolvedEvent(
        profileId=PROFILE,
        userId="u-1",
        event={"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"plan": "pro"}},
    )

    routing = _route(event, runs, executions)

    assert (routing.started, routing.exited) == ([], [])
    assert journal == []


def test_an_event_neither_trigger_nor_goal_routes_nothing(
    runs: FakeRunStore, executions: FakeExecutions, journal: list[tuple[str, str]]
) -> None:
    routing = _route(_resolved(event="Page Viewed"), runs, executions)

    assert (routing.started, routing.exited) == ([], [])
    assert journal == []


# -- merges ----------------------------------------------------------------------------------------

OTHER = "5f1a7c20-6d1e-4e0b-9b77-0f3c2d8e4a55"


def _merge(*merged: str) -> ProfilesMerged:
    return ProfilesMerged(survivor=PROFILE, merged=list(merged))


def test_a_merged_profiles_active_run_moves_under_the_survivor(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    # Given a run of the cart journey under the profile that is then merged
    [arn] = _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions).started

    # When the merge is followed
    moved = follow_merge(_merge(MERGED), [CART, WELCOME], runs, executions, NOW)

    # Then the same execution is active under the survivor, and closed as merged under the old id
    assert moved == [arn]
    [run] = runs.active(PROFILE, "cart_abandonment")
    name = execution_name(MERGED, "m-0")
    assert run == {
        "profileId": PROFILE,
        "runKey": f"cart_abandonment#{name}",
        "executionArn": arn,
        "status": "active",
        "enteredAt": "2024-05-01T10:00:00.000Z",
    }
    assert runs.active(MERGED, "cart_abandonment") == []
    closed = runs.items[(MERGED, f"cart_abandonment#{name}")]
    assert (closed["status"], closed["closedAt"]) == ("merged", NOW)
    assert executions.is_running(arn)


def test_after_a_merge_the_survivors_goal_exits_the_moved_run(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    [arn] = _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions).started
    follow_merge(_merge(MERGED), [CART, WELCOME], runs, executions, NOW)

    routing = _route(_resolved(event="Order Completed", message_id="m-2"), runs, executions)

    assert routing.exited == [arn]
    assert executions.status[arn] == "ABORTED"
    assert runs.status_of(arn) == ["merged", "goal_reached"]


def test_after_a_merge_a_trigger_does_not_start_the_journey_again(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions)
    follow_merge(_merge(MERGED), [CART, WELCOME], runs, executions, NOW)

    again = _route(_resolved(message_id="m-1"), runs, executions)

    assert again.started == []


def test_every_merged_profile_and_journey_is_followed(runs: FakeRunStore, executions: FakeExecutions) -> None:
    cart = _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions).started
    welcome = _route(
        _resolved(event="Signed Up", profileId=OTHER, message_id="m-1"), runs, executions
    ).started

    moved = follow_merge(_merge(MERGED, OTHER), [CART, WELCOME], runs, executions, NOW)

    assert moved == cart + welcome
    assert [r["executionArn"] for r in runs.active(PROFILE, "cart_abandonment")] == cart
    assert [r["executionArn"] for r in runs.active(PROFILE, "welcome")] == welcome


def test_closed_runs_and_runs_of_unlisted_journeys_stay_where_they_are(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    [finished] = _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions).started
    runs.close(MERGED, f"cart_abandonment#{execution_name(MERGED, 'm-0')}", "completed", NOW)
    [welcome] = _route(
        _resolved(event="Signed Up", profileId=MERGED, message_id="m-1"), runs, executions
    ).started

    moved = follow_merge(_merge(MERGED), [CART], runs, executions, NOW)

    assert moved == []
    assert runs.status_of(finished) == ["completed"]
    assert [r["executionArn"] for r in runs.active(MERGED, "welcome")] == [welcome]


def test_following_the_same_merge_twice_moves_nothing_more(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions)
    follow_merge(_merge(MERGED), [CART, WELCOME], runs, executions, NOW)

    again = follow_merge(_merge(MERGED), [CART, WELCOME], runs, executions, NOW)

    assert again == []
    assert len(runs.active(PROFILE, "cart_abandonment")) == 1


def test_a_merge_without_runs_moves_nothing(
    runs: FakeRunStore, executions: FakeExecutions, journal: list[tuple[str, str]]
) -> None:
    assert follow_merge(_merge(MERGED), [CART, WELCOME], runs, executions, NOW) == []
    assert journal == []


def test_after_a_merge_the_survivor_is_in_each_journey_at_most_once(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    # Given both profiles in the cart journey when they merge
    _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions)
    _route(_resolved(message_id="m-1"), runs, executions)

    # When the merge is followed
    follow_merge(_merge(MERGED), [CART, WELCOME], runs, executions, NOW)

    # Then the survivor is in the journey once, and only one execution keeps running
    assert len(runs.active(PROFILE, "cart_abandonment")) == 1
    assert sum(executions.is_running(arn) for arn in executions.status) == 1


# -- concurrency: one run per profile and journey --------------------------------------------------


def _in_parallel(calls: list[Any]) -> list[Any]:
    """Run each call on its own thread at once; their results (a thread's exception is raised)."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [f.result() for f in [pool.submit(call) for call in calls]]


def test_concurrent_triggers_for_the_same_customers_start_one_run_per_customer(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    # Given eight `Product Added` (different messageIds) for each of three customers, routed at once,
    # every router reading "not in the journey" before any of them writes
    customers, per_customer = [PROFILE, MERGED, OTHER], 8
    runs.rendezvous = threading.Barrier(len(customers) * per_customer, timeout=30)
    calls = [
        partial(_route, _resolved(profileId=customer, message_id=f"m-{customer}-{i}"), runs, executions)
        for customer in customers
        for i in range(per_customer)
    ]

    # When they all run
    routings = _in_parallel(calls)
    runs.rendezvous = None

    # Then each customer has exactly one execution, and one active run
    started = [arn for routing in routings for arn in routing.started]
    assert len(started) == len(customers)
    for customer in customers:
        [run] = runs.active(customer, "cart_abandonment")
        assert executions.running().count(run["executionArn"]) == 1
        assert [arn for arn in executions.running() if f":{customer[:40]}-" in arn] == [run["executionArn"]]


def test_a_trigger_racing_a_merge_leaves_the_survivor_in_the_journey_once(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    # Given a run under the profile being merged, and a trigger for the survivor routed during the merge
    _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions)
    runs.rendezvous = threading.Barrier(2, timeout=30)

    _in_parallel(
        [
            partial(follow_merge, _merge(MERGED), [CART], runs, executions, NOW),
            partial(_route, _resolved(message_id="m-1"), runs, executions),
        ]
    )
    runs.rendezvous = None

    # Then one execution runs, and it is the survivor's one active run
    [running] = executions.running()
    assert [r["executionArn"] for r in runs.active(PROFILE, "cart_abandonment")] == [running]


# -- the slot --------------------------------------------------------------------------------------


def test_a_crash_between_claiming_the_slot_and_starting_is_healed_by_the_retry_of_the_same_event(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    executions.crash_next_start = TimeoutError("the router timed out")
    with pytest.raises(TimeoutError):
        _route(_resolved(message_id="m-1"), runs, executions)

    retried = _route(_resolved(message_id="m-1"), runs, executions)

    assert retried.started == [FakeExecutions.arn_of(MACHINE, execution_name(PROFILE, "m-1"))]


def test_a_slot_being_started_by_its_event_is_not_taken_by_another(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    # Given the slot claimed for m-1 whose execution is not started yet (its router crashed, say)
    executions.crash_next_start = TimeoutError("the router timed out")
    with pytest.raises(TimeoutError):
        _route(_resolved(message_id="m-1"), runs, executions)

    # When another trigger arrives within the grace
    other = _route(_resolved(message_id="m-2"), runs, executions)

    # Then it starts nothing: m-1's retry will
    assert other.started == []
    assert executions.running() == []


def test_a_slot_whose_execution_never_started_is_taken_after_the_grace(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    executions.crash_next_start = TimeoutError("the router timed out")
    with pytest.raises(TimeoutError):
        _route(_resolved(message_id="m-1"), runs, executions)
    later = clock.iso(clock.parse(NOW) + START_GRACE + timedelta(seconds=1))

    other = route(_resolved(message_id="m-2"), [CART], runs, executions, later)

    name = execution_name(PROFILE, "m-2")
    assert other.started == [FakeExecutions.arn_of(MACHINE, name)]
    assert runs.status_of(FakeExecutions.arn_of(MACHINE, execution_name(PROFILE, "m-1"))) == ["never_started"]


def test_the_router_gives_the_slot_grace_far_beyond_its_own_timeout() -> None:
    # The claimer starts the execution within one invocation; the grace must outlast it.
    router = TOPOLOGY.function("journey-router")

    assert START_GRACE.total_seconds() >= 10 * router.timeout_seconds


def test_a_goal_frees_the_slot(runs: FakeRunStore, executions: FakeExecutions) -> None:
    _route(_resolved(), runs, executions)

    _route(_resolved(event="Order Completed", message_id="m-2"), runs, executions)

    assert runs.slot(PROFILE, "cart_abandonment") is None


def test_a_moved_run_holds_the_survivors_slot_and_frees_the_merged_profiles(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    [arn] = _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions).started

    follow_merge(_merge(MERGED), [CART], runs, executions, NOW)

    held = runs.slot(PROFILE, "cart_abandonment")
    assert held is not None and held.execution_arn == arn
    assert runs.slot(MERGED, "cart_abandonment") is None


def test_a_survivor_run_recorded_before_slots_existed_still_counts(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    # Given a running run of the survivor written without a slot (before this version)
    legacy = FakeExecutions.arn_of(MACHINE, "legacy")
    executions.status[legacy] = "RUNNING"
    runs.add(PROFILE, "cart_abandonment", "legacy", legacy, NOW)

    # When a trigger arrives
    routing = _route(_resolved(message_id="m-1"), runs, executions)

    # Then the survivor stays in its one run
    assert routing.started == []
