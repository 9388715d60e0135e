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
from shared.journeys.router import (
    START_GRACE,
    GoalRule,
    Ports,
    ReEntryRule,
    RoutedJourney,
    Rule,
    close_execution,
    execution_arn,
    execution_name,
    follow_merge,
    held_out,
    route,
    route_segment_change,
    segment_event,
)
from shared.journeys.steps import JourneyWait
from shared.models.events import ProfilesMerged, ResolvedEvent
from shared.models.journey import Condition, JourneyDefinition
from shared.models.message import MessageLogEntry
from shared.models.segments import SegmentChange
from tests.unit.fakes import FakeExecutions, FakeJourneyWaits, FakeMessageLog, FakeRunStore, FakeStats

MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:cart_abandonment"
NOW = "2024-05-01T12:00:00.000Z"
PROFILE = "7d0c6f7e-2b7a-4c47-9a3e-5c1f0b6f2a11"
MERGED = "0b8e1c55-93f4-4c61-8f0e-2a7d4e9b6c33"
SFN_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")

CART = RoutedJourney(
    id="cart_abandonment",
    start_arn=MACHINE,
    trigger=Rule("Product Added"),
    exit_on=(Rule("Order Completed"),),
    goal=GoalRule("Order Completed", within=timedelta(days=7)),
    send_steps=("send-email-cart-reminder", "checkout.on_timeout.send-push-cart-reminder"),
)
WELCOME = RoutedJourney(
    id="welcome",
    start_arn=MACHINE.replace("cart_abandonment", "welcome"),
    trigger=Rule("Signed Up"),
)


def _where(written: dict[str, Any]) -> dict[str, Condition]:
    return {name: Condition.model_validate(condition) for name, condition in written.items()}


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


@pytest.fixture
def waits() -> FakeJourneyWaits:
    return FakeJourneyWaits()


@pytest.fixture
def stats() -> FakeStats:
    return FakeStats()


@pytest.fixture
def messages() -> FakeMessageLog:
    return FakeMessageLog()


@pytest.fixture
def ports(
    runs: FakeRunStore,
    executions: FakeExecutions,
    waits: FakeJourneyWaits,
    stats: FakeStats,
    messages: FakeMessageLog,
) -> Ports:
    return Ports(runs=runs, executions=executions, waits=waits, stats=stats, messages=messages)


def _ports(runs: FakeRunStore, executions: FakeExecutions) -> Ports:
    return Ports(
        runs=runs,
        executions=executions,
        waits=FakeJourneyWaits(),
        stats=FakeStats(),
        messages=FakeMessageLog(),
    )


def _route(event: ResolvedEvent, runs: FakeRunStore, executions: FakeExecutions) -> Any:
    return route(event, [CART, WELCOME], _ports(runs, executions), NOW)


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
        "journey": "cart_abandonment",
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
    assert runs.status_of(started) == ["exited"]
    assert runs.by_execution(started)[0]["closedReason"] == "goal"


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
    moved = follow_merge(_merge(MERGED), _ports(runs, executions), NOW)

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
        "trigger": '{"name":"Red shoes"}',
    }
    assert runs.active(MERGED, "cart_abandonment") == []
    closed = runs.items[(MERGED, f"cart_abandonment#{name}")]
    assert (closed["status"], closed["closedAt"]) == ("merged", NOW)
    assert executions.is_running(arn)


def test_after_a_merge_the_survivors_goal_exits_the_moved_run(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    [arn] = _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions).started
    follow_merge(_merge(MERGED), _ports(runs, executions), NOW)

    routing = _route(_resolved(event="Order Completed", message_id="m-2"), runs, executions)

    assert routing.exited == [arn]
    assert executions.status[arn] == "ABORTED"
    assert runs.status_of(arn) == ["merged", "exited"]


def test_after_a_merge_a_trigger_does_not_start_the_journey_again(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions)
    follow_merge(_merge(MERGED), _ports(runs, executions), NOW)

    again = _route(_resolved(message_id="m-1"), runs, executions)

    assert again.started == []


def test_every_merged_profile_and_journey_is_followed(runs: FakeRunStore, executions: FakeExecutions) -> None:
    cart = _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions).started
    welcome = _route(
        _resolved(event="Signed Up", profileId=OTHER, message_id="m-1"), runs, executions
    ).started

    moved = follow_merge(_merge(MERGED, OTHER), _ports(runs, executions), NOW)

    assert moved == cart + welcome
    assert [r["executionArn"] for r in runs.active(PROFILE, "cart_abandonment")] == cart
    assert [r["executionArn"] for r in runs.active(PROFILE, "welcome")] == welcome


def test_closed_runs_stay_where_they_are_and_active_runs_of_every_journey_move(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    # The catalogue no longer lists welcome (removed): its run continues, on the survivor, whose
    # events resume it (its wait is keyed by its execution).
    [finished] = _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions).started
    runs.close(MERGED, f"cart_abandonment#{execution_name(MERGED, 'm-0')}", "completed", NOW)
    [welcome] = _route(
        _resolved(event="Signed Up", profileId=MERGED, message_id="m-1"), runs, executions
    ).started

    moved = follow_merge(_merge(MERGED), _ports(runs, executions), NOW)

    assert moved == [welcome]
    assert runs.status_of(finished) == ["completed"]
    assert runs.active(MERGED, "welcome") == []
    assert [r["executionArn"] for r in runs.active(PROFILE, "welcome")] == [welcome]


def test_following_the_same_merge_twice_moves_nothing_more(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions)
    follow_merge(_merge(MERGED), _ports(runs, executions), NOW)

    again = follow_merge(_merge(MERGED), _ports(runs, executions), NOW)

    assert again == []
    assert len(runs.active(PROFILE, "cart_abandonment")) == 1


def test_a_merge_without_runs_moves_nothing(
    runs: FakeRunStore, executions: FakeExecutions, journal: list[tuple[str, str]]
) -> None:
    assert follow_merge(_merge(MERGED), _ports(runs, executions), NOW) == []
    assert journal == []


def test_after_a_merge_the_survivor_is_in_each_journey_at_most_once(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    # Given both profiles in the cart journey when they merge
    _route(_resolved(profileId=MERGED, message_id="m-0"), runs, executions)
    _route(_resolved(message_id="m-1"), runs, executions)

    # When the merge is followed
    follow_merge(_merge(MERGED), _ports(runs, executions), NOW)

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
            partial(follow_merge, _merge(MERGED), _ports(runs, executions), NOW),
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

    other = route(_resolved(message_id="m-2"), [CART], _ports(runs, executions), later)

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

    follow_merge(_merge(MERGED), _ports(runs, executions), NOW)

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


# -- the execution ARN -----------------------------------------------------------------------------


@pytest.mark.parametrize("qualifier", ["", ":live", ":3"])
def test_an_execution_arn_drops_the_alias_or_version_of_the_state_machine_started(qualifier: str) -> None:
    assert (
        execution_arn(MACHINE + qualifier, "run-1")
        == "arn:aws:states:eu-west-1:123456789012:execution:cart_abandonment:run-1"
    )


def test_a_journey_started_through_its_alias_records_the_executions_own_arn(ports: Ports) -> None:
    live = RoutedJourney(id="cart_abandonment", start_arn=f"{MACHINE}:live", trigger=Rule("Product Added"))

    routing = route(_resolved(), [live], ports, NOW)

    [run] = ports.runs.active(PROFILE, "cart_abandonment")
    assert run["executionArn"] == f"{MACHINE.replace(':stateMachine:', ':execution:')}:{run['runKey'][17:]}"
    assert routing.started == [run["executionArn"]]


# -- property conditions on the trigger and on exits -----------------------------------------------

CARTS = RoutedJourney(
    id="cart_abandonment",
    start_arn=MACHINE,
    trigger=Rule("Product Added", _where({"price": {"gte": 10}})),
    exit_on=(Rule("Order Completed", _where({"cart_id": {"same_as_trigger": True}})),),
)


def _with(
    event: str, message_id: str, timestamp: str = "2024-05-01T10:00:00.000Z", **properties: Any
) -> ResolvedEvent:
    return _resolved(event=event, message_id=message_id, properties=properties, timestamp=timestamp)


def test_a_trigger_whose_conditions_fail_starts_nothing(ports: Ports) -> None:
    routing = route(_with("Product Added", "m-1", price=5, cart_id="c-1"), [CARTS], ports, NOW)

    assert routing.started == []
    assert ports.runs.runs(PROFILE, "cart_abandonment") == []


def test_an_exit_for_the_same_cart_as_the_trigger_exits_the_run(ports: Ports, stats: FakeStats) -> None:
    [arn] = route(_with("Product Added", "m-1", price=20, cart_id="c-1"), [CARTS], ports, NOW).started

    routing = route(_with("Order Completed", "m-2", cart_id="c-1"), [CARTS], ports, NOW)

    assert routing.exited == [arn]
    assert ports.runs.by_execution(arn)[0]["closedReason"] == "exit_event"
    assert stats.get("cart_abandonment") == {"entered": 1, "exited#exit_event": 1}


def test_an_exit_for_another_cart_leaves_the_run_running(ports: Ports, executions: FakeExecutions) -> None:
    [arn] = route(_with("Product Added", "m-1", price=20, cart_id="c-1"), [CARTS], ports, NOW).started

    routing = route(_with("Order Completed", "m-2", cart_id="c-2"), [CARTS], ports, NOW)

    assert routing.exited == []
    assert executions.is_running(arn)


def test_an_exit_without_the_property_matches_a_trigger_without_it_too(ports: Ports) -> None:
    [arn] = route(_with("Product Added", "m-1", price=20), [CARTS], ports, NOW).started

    assert route(_with("Order Completed", "m-2"), [CARTS], ports, NOW).exited == [arn]


def test_an_exit_is_counted_once_when_the_event_is_retried(ports: Ports, stats: FakeStats) -> None:
    route(_with("Product Added", "m-1", price=20, cart_id="c-1"), [CARTS], ports, NOW)

    for _ in range(2):
        route(_with("Order Completed", "m-2", cart_id="c-1"), [CARTS], ports, NOW)

    assert stats.get("cart_abandonment")["exited#exit_event"] == 1


# -- exits come before triggers --------------------------------------------------------------------

WIN_BACK = RoutedJourney(
    id="win_back",
    start_arn=MACHINE.replace("cart_abandonment", "win_back"),
    trigger=Rule("Order Completed"),
    exit_on=(Rule("Order Completed"),),
    goal=GoalRule("Order Completed", within=timedelta(days=40)),
    send_steps=("send-email-win-back",),
)


def test_an_event_that_exits_and_triggers_a_journey_restarts_its_run(ports: Ports, stats: FakeStats) -> None:
    [first] = route(_with("Order Completed", "m-1"), [WIN_BACK], ports, NOW).started

    routing = route(_with("Order Completed", "m-2", "2024-05-21T10:00:00.000Z"), [WIN_BACK], ports, NOW)

    assert routing.exited == [first]
    [second] = routing.started
    assert second != first
    assert [r["executionArn"] for r in ports.runs.active(PROFILE, "win_back")] == [second]
    assert stats.get("win_back")["entered"] == 2


def test_a_retried_trigger_does_not_exit_the_run_it_started(ports: Ports, executions: FakeExecutions) -> None:
    [arn] = route(_with("Order Completed", "m-1"), [WIN_BACK], ports, NOW).started

    again = route(_with("Order Completed", "m-1"), [WIN_BACK], ports, NOW)

    assert again.exited == [] and again.converted == []
    assert executions.is_running(arn)


# -- goals -----------------------------------------------------------------------------------------


def _sent(messages: FakeMessageLog, execution: str, step: str, at: str, status: str = "sent") -> None:
    messages.record(
        MessageLogEntry(
            messageKey=f"{execution}#{step}",
            status=status,  # type: ignore[arg-type]
            reason="consent" if status == "dropped" else None,
            channel="email",
            journey="cart_abandonment",
            step=step,
            template="cart-reminder",
            profileId=PROFILE,
            createdAt=at,
        )
    )


def test_a_goal_within_its_window_records_a_conversion_with_its_revenue(
    ports: Ports, stats: FakeStats
) -> None:
    route(_resolved(), [CART], ports, NOW)

    routing = route(
        _with("Order Completed", "m-2", "2024-05-07T10:00:00.000Z", revenue=42.5, total=50),
        [CART],
        ports,
        NOW,
    )

    assert len(routing.converted) == 1
    counters = stats.get("cart_abandonment")
    assert (counters["conversions"], counters["revenue"]) == (1, 42.5)
    [run] = ports.runs.runs(PROFILE, "cart_abandonment")
    assert run["convertedAt"] == "2024-05-07T10:00:00.000Z"


def test_a_goal_without_revenue_counts_the_total(ports: Ports, stats: FakeStats) -> None:
    route(_resolved(), [CART], ports, NOW)

    route(_with("Order Completed", "m-2", "2024-05-02T10:00:00.000Z", total=30), [CART], ports, NOW)

    assert stats.get("cart_abandonment")["revenue"] == 30


def test_a_goal_after_its_window_is_no_conversion(ports: Ports, stats: FakeStats) -> None:
    route(_resolved(), [CART], ports, NOW)

    routing = route(_with("Order Completed", "m-2", "2024-05-08T10:00:01.000Z", total=30), [CART], ports, NOW)

    assert routing.converted == []
    assert "conversions" not in stats.get("cart_abandonment")


def test_a_conversion_is_credited_to_the_last_step_that_sent(
    ports: Ports, stats: FakeStats, messages: FakeMessageLog
) -> None:
    [arn] = route(_resolved(), [CART], ports, NOW).started
    _sent(messages, arn, "send-email-cart-reminder", "2024-05-01T11:00:00.000Z")
    _sent(messages, arn, "checkout.on_timeout.send-push-cart-reminder", "2024-05-02T10:00:00.000Z")

    route(_with("Order Completed", "m-2", "2024-05-03T10:00:00.000Z", revenue=80), [CART], ports, NOW)

    counters = stats.get("cart_abandonment")
    assert counters["step#checkout.on_timeout.send-push-cart-reminder#conversions"] == 1
    assert counters["step#checkout.on_timeout.send-push-cart-reminder#revenue"] == 80
    assert "step#send-email-cart-reminder#conversions" not in counters


def test_a_dropped_message_is_not_credited_with_the_conversion(
    ports: Ports, stats: FakeStats, messages: FakeMessageLog
) -> None:
    [arn] = route(_resolved(), [CART], ports, NOW).started
    _sent(messages, arn, "send-email-cart-reminder", "2024-05-01T11:00:00.000Z")
    _sent(messages, arn, "checkout.on_timeout.send-push-cart-reminder", "2024-05-02T10:00:00.000Z", "dropped")

    route(_with("Order Completed", "m-2", "2024-05-03T10:00:00.000Z", revenue=80), [CART], ports, NOW)

    counters = stats.get("cart_abandonment")
    assert counters["step#send-email-cart-reminder#conversions"] == 1
    assert "step#checkout.on_timeout.send-push-cart-reminder#conversions" not in counters


def test_a_goal_converts_a_run_that_already_completed(
    ports: Ports, stats: FakeStats, executions: FakeExecutions
) -> None:
    [arn] = route(_resolved(), [CART], ports, NOW).started
    executions.finish(arn)
    close_execution(arn, "SUCCEEDED", "{}", ports, NOW)

    route(_with("Order Completed", "m-2", "2024-05-04T10:00:00.000Z", revenue=10), [CART], ports, NOW)

    assert stats.get("cart_abandonment")["conversions"] == 1


def test_a_goal_is_counted_once_per_entry(ports: Ports, stats: FakeStats) -> None:
    route(_resolved(), [CART], ports, NOW)

    route(_with("Order Completed", "m-2", "2024-05-02T10:00:00.000Z", revenue=10), [CART], ports, NOW)
    route(_with("Order Completed", "m-2", "2024-05-02T10:00:00.000Z", revenue=10), [CART], ports, NOW)
    route(_with("Order Completed", "m-3", "2024-05-03T10:00:00.000Z", revenue=10), [CART], ports, NOW)

    assert stats.get("cart_abandonment")["conversions"] == 1


def test_a_goal_that_does_not_exit_leaves_the_run_running(ports: Ports, executions: FakeExecutions) -> None:
    staying = RoutedJourney(
        id="cart_abandonment",
        start_arn=MACHINE,
        trigger=Rule("Product Added"),
        goal=GoalRule("Order Completed", within=timedelta(days=7), exit_on_goal=False),
    )
    [arn] = route(_resolved(), [staying], ports, NOW).started

    routing = route(_with("Order Completed", "m-2", "2024-05-02T10:00:00.000Z"), [staying], ports, NOW)

    assert len(routing.converted) == 1 and routing.exited == []
    assert executions.is_running(arn)


# -- holdout ---------------------------------------------------------------------------------------


def test_holdout_is_the_same_for_the_same_profile_every_time() -> None:
    assert {held_out(PROFILE, "win_back", 50) for _ in range(5)} in ({True}, {False})


def test_holdout_takes_about_its_share_of_profiles() -> None:
    held = sum(held_out(f"profile-{i}", "win_back", 10) for i in range(1000))

    assert 70 <= held <= 130  # 10 % of 1000; binomial sd ≈ 9.5, so ±3 sd


def test_no_holdout_holds_no_one_and_all_holds_everyone() -> None:
    ids = [f"profile-{i}" for i in range(200)]

    assert not any(held_out(i, "win_back", 0) for i in ids)
    assert all(held_out(i, "win_back", 100) for i in ids)


def _held_out_profile(journey: str, percent: float) -> str:
    return next(f"held-{i}" for i in range(1000) if held_out(f"held-{i}", journey, percent))


def test_a_held_out_profile_is_recorded_and_never_started(ports: Ports, stats: FakeStats) -> None:
    journey = RoutedJourney(**{**WIN_BACK.__dict__, "holdout": 10})
    profile = _held_out_profile("win_back", 10)

    routing = route(_resolved(event="Order Completed", profileId=profile), [journey], ports, NOW)

    assert routing.started == [] and len(routing.held_out) == 1
    [run] = ports.runs.runs(profile, "win_back")
    assert run["status"] == "held_out" and "executionArn" not in run
    assert stats.get("win_back") == {"heldOut": 1}


def test_a_held_out_profiles_conversion_is_counted_apart(ports: Ports, stats: FakeStats) -> None:
    journey = RoutedJourney(**{**WIN_BACK.__dict__, "holdout": 10})
    profile = _held_out_profile("win_back", 10)
    route(_resolved(event="Order Completed", profileId=profile), [journey], ports, NOW)

    later = _resolved(
        event="Order Completed",
        profileId=profile,
        message_id="m-2",
        timestamp="2024-05-20T10:00:00.000Z",
        properties={"revenue": 25},
    )
    route(later, [journey], ports, NOW)

    counters = stats.get("win_back")
    assert (counters["heldOutConversions"], counters["heldOutRevenue"]) == (1, 25)
    assert "conversions" not in counters and "entered" not in counters


# -- re-entry --------------------------------------------------------------------------------------


def _again(ports: Ports, journey: RoutedJourney, message_id: str, timestamp: str) -> list[str]:
    return route(_with(journey.trigger.event, message_id, timestamp), [journey], ports, NOW).started


def _ended(ports: Ports, executions: FakeExecutions, arn: str) -> None:
    executions.finish(arn)
    close_execution(arn, "SUCCEEDED", "{}", ports, NOW)


def test_re_entry_never_lets_a_profile_in_once(ports: Ports, executions: FakeExecutions) -> None:
    once = RoutedJourney(**{**WELCOME.__dict__, "re_entry": ReEntryRule("never")})
    [first] = _again(ports, once, "m-1", "2024-05-01T10:00:00.000Z")
    _ended(ports, executions, first)

    assert _again(ports, once, "m-2", "2024-06-01T10:00:00.000Z") == []


def test_re_entry_after_exit_lets_a_profile_in_again_once_its_run_ended(
    ports: Ports, executions: FakeExecutions
) -> None:
    [first] = _again(ports, WELCOME, "m-1", "2024-05-01T10:00:00.000Z")
    assert _again(ports, WELCOME, "m-2", "2024-05-02T10:00:00.000Z") == []  # still in it
    _ended(ports, executions, first)

    assert len(_again(ports, WELCOME, "m-3", "2024-05-03T10:00:00.000Z")) == 1


def test_re_entry_cap_limits_entries_and_their_interval(ports: Ports, executions: FakeExecutions) -> None:
    capped = RoutedJourney(
        **{**WELCOME.__dict__, "re_entry": ReEntryRule("cap", max=2, min_interval=timedelta(days=30))}
    )
    [first] = _again(ports, capped, "m-1", "2024-05-01T10:00:00.000Z")
    _ended(ports, executions, first)

    too_soon = _again(ports, capped, "m-2", "2024-05-20T10:00:00.000Z")
    [second] = _again(ports, capped, "m-3", "2024-06-01T10:00:00.000Z")
    _ended(ports, executions, second)
    over_the_cap = _again(ports, capped, "m-4", "2024-08-01T10:00:00.000Z")

    assert (too_soon, over_the_cap) == ([], [])


# -- waits -----------------------------------------------------------------------------------------


def _parked(
    waits: FakeJourneyWaits,
    arn: str,
    where: dict[str, Any] | None = None,
    event: str = "Checkout Started",
    journey: str = "cart_abandonment",
) -> JourneyWait:
    """The execution parked in its wait_for, with these concrete conditions."""
    wait = JourneyWait(
        executionArn=arn,
        journey=journey,
        step="wait-for-checkout-started",
        token=f"token-{arn[-6:]}",
        event=event,
        where=where or {},
        since="2024-05-01T11:00:00.000Z",
    )
    waits.put(wait)
    return wait


def test_an_awaited_event_resumes_the_waiting_execution(
    ports: Ports, waits: FakeJourneyWaits, executions: FakeExecutions
) -> None:
    [arn] = route(_resolved(), [CART], ports, NOW).started
    wait = _parked(waits, arn, {"cart_id": {"equals": "c-1"}})

    routing = route(
        _with("Checkout Started", "m-2", "2024-05-01T15:00:00.000Z", cart_id="c-1"), [CART], ports, NOW
    )

    assert routing.resumed == [arn]
    assert [token for token, _ in executions.resumed] == [wait.token]
    assert waits.get(arn) is None


def test_an_awaited_event_whose_conditions_fail_resumes_nothing(
    ports: Ports, waits: FakeJourneyWaits, executions: FakeExecutions
) -> None:
    [arn] = route(_resolved(), [CART], ports, NOW).started
    _parked(waits, arn, {"cart_id": {"equals": "c-1"}})

    routing = route(
        _with("Checkout Started", "m-2", "2024-05-01T15:00:00.000Z", cart_id="c-2"), [CART], ports, NOW
    )

    assert routing.resumed == [] and executions.resumed == []
    assert waits.get(arn) is not None


def test_an_awaited_event_under_a_merged_profile_resumes_the_moved_execution(
    ports: Ports, waits: FakeJourneyWaits, executions: FakeExecutions
) -> None:
    # Given the merged profile's run parked in its wait_for, then the merge
    [arn] = route(_resolved(profileId=MERGED), [CART], ports, NOW).started
    wait = _parked(waits, arn)
    follow_merge(_merge(MERGED), ports, NOW)

    # When the awaited event comes, resolved to the survivor
    routing = route(_with("Checkout Started", "m-2", "2024-05-01T15:00:00.000Z"), [CART], ports, NOW)

    # Then the execution is resumed
    assert routing.resumed == [arn]
    assert [token for token, _ in executions.resumed] == [wait.token]


def test_a_wait_whose_token_another_answered_first_is_not_counted_resumed_again(
    ports: Ports, waits: FakeJourneyWaits, executions: FakeExecutions
) -> None:
    # The same awaited event routed twice at once, or journey-steps' own look at the profile, got
    # there first: both read the wait, one resumes the run. The other's SendTaskSuccess is refused and
    # it must not count a second resume (the JourneysResumed metric).
    [arn] = route(_resolved(), [CART], ports, NOW).started
    wait = _parked(waits, arn)
    executions.spent.add(wait.token)

    routing = route(_with("Checkout Started", "m-2", "2024-05-01T15:00:00.000Z"), [CART], ports, NOW)

    assert routing.resumed == [] and executions.resumed == []
    assert waits.get(arn) is None  # spent: it goes all the same


def test_an_execution_not_waiting_is_not_resumed(ports: Ports, executions: FakeExecutions) -> None:
    route(_resolved(), [CART], ports, NOW)

    routing = route(_with("Checkout Started", "m-2", "2024-05-01T15:00:00.000Z"), [CART], ports, NOW)

    assert routing.resumed == [] and executions.resumed == []


def test_a_run_is_resumed_by_the_event_its_own_definition_awaits_whatever_the_catalogue_awaits_now(
    ports: Ports, waits: FakeJourneyWaits, executions: FakeExecutions
) -> None:
    # Given a run parked on `App Opened` (its definition's wait), and a catalogue whose cart journey
    # (reloaded, redeployed) awaits nothing of the kind, or no journey at all (removed)
    [arn] = route(_resolved(), [CART], ports, NOW).started
    wait = _parked(waits, arn, event="App Opened")

    # When the awaited event comes, routed with the catalogue as it is now
    nothing = route(_with("App Opened", "m-2", "2024-05-01T15:00:00.000Z"), [], ports, NOW)

    # Then the wait, not the catalogue, says what resumes the run
    assert nothing.resumed == [arn]
    assert [token for token, _ in executions.resumed] == [wait.token]
    assert waits.get(arn) is None


def test_an_event_the_wait_does_not_await_resumes_nothing_even_if_the_catalogue_awaits_it(
    ports: Ports, waits: FakeJourneyWaits, executions: FakeExecutions
) -> None:
    # The run's own definition waits for `App Opened`; the catalogue's cart awaits `Checkout Started`.
    [arn] = route(_resolved(), [CART], ports, NOW).started
    _parked(waits, arn, event="App Opened")

    routing = route(_with("Checkout Started", "m-2", "2024-05-01T15:00:00.000Z"), [CART], ports, NOW)

    assert routing.resumed == [] and executions.resumed == []
    assert waits.get(arn) is not None


def test_another_profiles_wait_for_the_same_event_is_not_resumed(
    ports: Ports, waits: FakeJourneyWaits, executions: FakeExecutions
) -> None:
    [arn] = route(_resolved(profileId=OTHER), [CART], ports, NOW).started
    _parked(waits, arn)

    routing = route(_with("Checkout Started", "m-2", "2024-05-01T15:00:00.000Z"), [], ports, NOW)

    assert routing.resumed == [] and executions.resumed == []


def test_the_wait_of_a_run_no_longer_active_is_not_resumed(
    ports: Ports, waits: FakeJourneyWaits, executions: FakeExecutions
) -> None:
    # Given a run exited by its goal (its end not routed yet, so its wait is still there)
    [arn] = route(_resolved(), [CART], ports, NOW).started
    _parked(waits, arn)
    route(_with("Order Completed", "m-2", "2024-05-01T14:00:00.000Z"), [CART], ports, NOW)

    routing = route(_with("Checkout Started", "m-3", "2024-05-01T15:00:00.000Z"), [], ports, NOW)

    assert routing.resumed == [] and executions.resumed == []


def test_an_awaited_event_from_before_the_entry_resumes_nothing(
    ports: Ports, waits: FakeJourneyWaits, executions: FakeExecutions
) -> None:
    [arn] = route(_resolved(), [CART], ports, NOW).started  # entered at 10:00
    _parked(waits, arn)

    routing = route(_with("Checkout Started", "m-2", "2024-05-01T09:00:00.000Z"), [CART], ports, NOW)

    assert routing.resumed == [] and executions.resumed == []


def test_an_awaited_event_routed_twice_resumes_once(
    ports: Ports, waits: FakeJourneyWaits, executions: FakeExecutions
) -> None:
    [arn] = route(_resolved(), [CART], ports, NOW).started
    _parked(waits, arn)
    event = _with("Checkout Started", "m-2", "2024-05-01T15:00:00.000Z")

    first, again = route(event, [CART], ports, NOW), route(event, [CART], ports, NOW)

    assert (first.resumed, again.resumed) == ([arn], [])
    assert len(executions.resumed) == 1


def test_a_merge_after_the_wait_is_parked_moves_the_run_to_the_survivor_for_any_journey(
    ports: Ports, runs: FakeRunStore, waits: FakeJourneyWaits, executions: FakeExecutions
) -> None:
    # Given the merged profile's run parked in a journey the catalogue no longer lists
    [arn] = route(_resolved(profileId=MERGED), [CART], ports, NOW).started
    wait = _parked(waits, arn, event="App Opened")

    # When the merge is followed (whatever the catalogue), then the event comes
    follow_merge(_merge(MERGED), ports, NOW)
    routing = route(_with("App Opened", "m-2", "2024-05-01T15:00:00.000Z"), [WELCOME], ports, NOW)

    # Then the run had moved under the survivor, whose event resumed it
    assert [r["executionArn"] for r in runs.active_runs(PROFILE)] == [arn]
    assert routing.resumed == [arn]
    assert [token for token, _ in executions.resumed] == [wait.token]


def test_the_waits_are_read_once_per_event_by_the_profiles_active_runs_whatever_the_catalogue(
    ports: Ports, runs: FakeRunStore, waits: FakeJourneyWaits
) -> None:
    # Given the profile in the cart journey (parked) and in welcome (not parked), another's run
    [cart] = route(_resolved(), [CART], ports, NOW).started
    [welcome] = route(_with("Signed Up", "m-1"), [WELCOME], ports, NOW).started
    route(_resolved(profileId=OTHER), [CART], ports, NOW)
    _parked(waits, cart, event="Page Viewed")
    many = [RoutedJourney(id=f"j{i}", start_arn=f"{MACHINE}{i}", trigger=Rule("Ping")) for i in range(100)]
    waits.reads.clear()

    # When events are routed with 100, then 5 journeys
    route(_with("Page Scrolled", "m-2", "2024-05-01T15:00:00.000Z"), many, ports, NOW)
    route(_with("Page Scrolled", "m-3", "2024-05-01T15:00:00.000Z"), many[:5], ports, NOW)

    # Then each read the waits of the profile's active runs once, and only theirs
    assert [sorted(read) for read in waits.reads] == [sorted([cart, welcome])] * 2


def test_a_profile_with_no_active_run_makes_no_wait_read(ports: Ports, waits: FakeJourneyWaits) -> None:
    # Another profile's run is parked; this profile has none (a closed one only)
    [other] = route(_resolved(profileId=OTHER), [CART], ports, NOW).started
    _parked(waits, other)
    [mine] = route(_resolved(), [CART], ports, NOW).started
    ports.runs.close(PROFILE, f"cart_abandonment#{mine.rsplit(':', 1)[-1]}", "completed", NOW)
    waits.reads.clear()

    routing = route(_with("Checkout Started", "m-2", "2024-05-01T15:00:00.000Z"), [CART], ports, NOW)

    assert waits.reads == []
    assert routing.resumed == []


def test_the_only_active_run_being_the_one_this_event_started_makes_no_wait_read(
    ports: Ports, waits: FakeJourneyWaits
) -> None:
    event = _resolved()
    [arn] = route(event, [CART], ports, NOW).started
    _parked(waits, arn)
    waits.reads.clear()

    routing = route(event, [CART], ports, NOW)  # the same event, retried

    assert waits.reads == [] and routing.resumed == []


def test_a_run_its_goal_exits_is_not_exited_again_by_the_exit_rule_naming_the_same_event(
    ports: Ports, executions: FakeExecutions, stats: FakeStats
) -> None:
    # The cart journey's goal and its exit_on both name `Order Completed`; the profile's active runs
    # are read once, before the goal closes the run.
    [arn] = route(_resolved(), [CART], ports, NOW).started

    routing = route(_with("Order Completed", "m-2", "2024-05-01T15:00:00.000Z"), [CART], ports, NOW)

    assert routing.exited == [arn]
    assert [entry for entry in executions.journal if entry[0] == "stop"] == [("stop", arn)]
    assert stats.counters["cart_abandonment"].get("exited#goal") == 1
    assert "exited#exit_event" not in stats.counters["cart_abandonment"]


def test_journey_waits_have_no_index_the_router_would_read_eventually_consistently() -> None:
    # The router reads waits by key (strongly consistent); a global index is read eventually
    # consistently and could miss a wait just put. The stack and the local engine build from this.
    from infra.topology import JOURNEY_WAITS

    [table] = [t for t in TOPOLOGY.tables if t.name == JOURNEY_WAITS]
    assert (table.partition_key, table.indexes) == ("executionArn", ())


# -- executions ending -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "output", "run_status", "reason"),
    [
        ("SUCCEEDED", '{"profileId": "p"}', "completed", "completed"),
        ("SUCCEEDED", '{"exit": {"step": "exit"}}', "exited", "exit_step"),
        ("FAILED", None, "failed", "failed"),
        ("TIMED_OUT", None, "failed", "failed"),
    ],
)
def test_an_ended_execution_closes_its_run_counts_the_exit_and_frees_the_slot(
    ports: Ports, stats: FakeStats, status: str, output: str | None, run_status: str, reason: str
) -> None:
    [arn] = route(_resolved(), [CART], ports, NOW).started

    closed = close_execution(arn, status, output, ports, NOW)

    assert len(closed) == 1
    [run] = ports.runs.by_execution(arn)
    assert (run["status"], run["closedReason"]) == (run_status, reason)
    assert stats.get("cart_abandonment")[f"exited#{reason}"] == 1
    assert ports.runs.slot(PROFILE, "cart_abandonment") is None


def test_a_stopped_execution_closes_nothing_more(ports: Ports, stats: FakeStats) -> None:
    [arn] = route(_resolved(), [CART], ports, NOW).started
    route(_with("Order Completed", "m-2", "2024-05-01T11:00:00.000Z"), [CART], ports, NOW)

    assert close_execution(arn, "ABORTED", None, ports, NOW) == []
    assert close_execution(arn, "SUCCEEDED", "{}", ports, NOW) == []
    assert "exited#completed" not in stats.get("cart_abandonment")


@pytest.mark.parametrize("status", ["ABORTED", "SUCCEEDED", "FAILED"])
def test_a_send_deferred_past_its_runs_end_is_dropped_as_run_ended(
    ports: Ports, stats: FakeStats, messages: FakeMessageLog, status: str
) -> None:
    # Given a run whose email waits for the morning (quiet hours) and whose push was sent
    [arn] = route(_resolved(), [CART], ports, NOW).started
    _sent(messages, arn, "send-email-cart-reminder", NOW, status="deferred")
    _sent(messages, arn, "checkout.on_timeout.send-push-cart-reminder", NOW)
    other = arn.replace(":execution:", ":other:")
    _sent(messages, other, "send-email-cart-reminder", NOW, status="deferred")  # another run's

    # When the run ends while it waits (stopped by a purchase at night, say)
    close_execution(arn, status, "{}", ports, NOW)
    close_execution(arn, status, "{}", ports, NOW)  # delivered twice

    email = messages.entries[f"{arn}#send-email-cart-reminder"]
    assert (email.status, email.reason, email.deferredUntil) == ("dropped", "run_ended", None)
    assert messages.entries[f"{arn}#checkout.on_timeout.send-push-cart-reminder"].status == "sent"
    assert messages.entries[f"{other}#send-email-cart-reminder"].status == "deferred"
    assert stats.get("cart_abandonment")["step#send-email-cart-reminder#dropped#run_ended"] == 1


def test_an_ended_execution_of_a_moved_run_closes_the_survivors_run(ports: Ports, runs: FakeRunStore) -> None:
    [arn] = route(_resolved(profileId=MERGED), [CART], ports, NOW).started
    follow_merge(_merge(MERGED), ports, NOW)

    close_execution(arn, "SUCCEEDED", "{}", ports, NOW)

    assert sorted(runs.status_of(arn)) == ["completed", "merged"]
    assert ports.runs.active(PROFILE, "cart_abandonment") == []


# -- the catalogue, as the router reads it ---------------------------------------------------------


def test_the_example_journeys_read_as_the_router_needs_them() -> None:
    from infra.topology import TOPOLOGY
    from shared.journeys.loader import load_journeys

    routed = {
        j.definition.id: RoutedJourney.of(j.definition, f"{MACHINE[:-16]}{j.definition.id}:live")
        for j in load_journeys(TOPOLOGY.journeys_dir)
    }

    cart, win_back, welcome = routed["cart_abandonment"], routed["win_back"], routed["welcome"]
    assert (cart.trigger.event, [r.event for r in cart.exit_on]) == ("Product Added", ["Order Completed"])
    assert cart.goal == GoalRule("Order Completed", within=timedelta(days=7))
    assert cart.send_steps == ("send-email-cart-reminder", "checkout.on_timeout.send-push-cart-reminder")
    assert cart.start_arn.endswith(":stateMachine:cart_abandonment:live")
    assert (win_back.holdout, win_back.re_entry.mode) == (10, "after_exit")
    assert welcome.re_entry == ReEntryRule("never")


def test_a_goal_event_from_before_the_entry_is_no_conversion(ports: Ports, stats: FakeStats) -> None:
    route(_resolved(), [CART], ports, NOW)  # entered at 10:00

    late = _with("Order Completed", "m-2", "2024-05-01T09:59:59+00:00", revenue=5)  # another offset form
    routing = route(late, [CART], ports, NOW)

    assert routing.converted == []
    assert "conversions" not in stats.get("cart_abandonment")


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"])
def test_an_execution_that_ended_in_its_wait_for_leaves_no_wait(
    ports: Ports, waits: FakeJourneyWaits, status: str
) -> None:
    # A wait_for that timed out, or a run exited, stopped by an erasure or merged away, kept its
    # journey-waits item (token and the trigger's values in `where`) forever.
    [arn] = route(_resolved(), [CART], ports, NOW).started
    _parked(waits, arn, {"cart_id": {"equals": "c-1"}})

    close_execution(arn, status, None, ports, NOW)

    assert waits.get(arn) is None


def test_the_router_hears_of_stopped_executions_too() -> None:
    [route_] = [r for r in TOPOLOGY.routes if r.name == "journey-executions"]
    assert set(route_.pattern["detail"]["status"]) == {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


# -- segments --------------------------------------------------------------------------------------

VIP_THANKS = RoutedJourney.of(
    JourneyDefinition.model_validate(
        {
            "id": "vip_thanks",
            "name": "VIP thanks",
            "trigger": {"segment_entered": "vip"},
            "exit_on": [{"segment_exited": "vip"}],
            "steps": [{"wait": "3d"}, {"send": {"channel": "email", "template": "thanks"}}],
        }
    ),
    MACHINE.replace("cart_abandonment", "vip_thanks"),
)
ENTERED_AT = "2024-05-01T11:00:00.000Z"


def _segment(
    entered: bool, at: str = ENTERED_AT, segment: str = "vip", profile: str = PROFILE
) -> ResolvedEvent:
    return segment_event(profile, segment, entered, at)


def test_a_segment_change_is_the_segment_event_of_that_profile_at_the_time_of_the_change() -> None:
    resolved = _segment(True)

    assert resolved.profileId == PROFILE
    assert resolved.event == {
        "type": "track",
        "event": "$segment.entered",
        "properties": {"segment": "vip"},
        "messageId": f"segment:{PROFILE}:vip:entered:{ENTERED_AT}",
        "timestamp": ENTERED_AT,
        "receivedAt": ENTERED_AT,
    }
    assert _segment(False).event["event"] == "$segment.exited"


def test_entering_the_segment_starts_the_journey_triggered_by_it(
    ports: Ports, executions: FakeExecutions
) -> None:
    routing = route(_segment(True), [VIP_THANKS], ports, NOW)

    [arn] = routing.started
    assert executions.payloads[arn]["trigger"] == {
        "event": "$segment.entered",
        "properties": {"segment": "vip"},
        "messageId": f"segment:{PROFILE}:vip:entered:{ENTERED_AT}",
        "timestamp": ENTERED_AT,
    }
    assert executions.payloads[arn]["enteredAt"] == ENTERED_AT


def test_entering_another_segment_or_leaving_starts_nothing(ports: Ports) -> None:
    assert route(_segment(True, segment="cart_abandoners"), [VIP_THANKS], ports, NOW).started == []
    assert route(_segment(False), [VIP_THANKS], ports, NOW).started == []
    assert ports.runs.runs(PROFILE, "vip_thanks") == []


def test_leaving_the_segment_exits_the_run(
    ports: Ports, executions: FakeExecutions, stats: FakeStats
) -> None:
    [arn] = route(_segment(True), [VIP_THANKS], ports, NOW).started

    routing = route(_segment(False, "2024-05-02T09:00:00.000Z"), [VIP_THANKS], ports, NOW)

    assert routing.exited == [arn]
    assert not executions.is_running(arn)
    assert ports.runs.by_execution(arn)[0]["closedReason"] == "exit_event"
    assert stats.get("vip_thanks") == {"entered": 1, "exited#exit_event": 1}


def test_leaving_another_segment_leaves_the_run_running(ports: Ports, executions: FakeExecutions) -> None:
    [arn] = route(_segment(True), [VIP_THANKS], ports, NOW).started

    assert route(_segment(False, segment="cart_abandoners"), [VIP_THANKS], ports, NOW).exited == []
    assert executions.is_running(arn)


def test_a_segment_change_delivered_twice_is_one_entry(ports: Ports, stats: FakeStats) -> None:
    [arn] = route(_segment(True), [VIP_THANKS], ports, NOW).started

    again = route(_segment(True), [VIP_THANKS], ports, NOW)

    assert again.started == [] and again.exited == []
    assert [run["executionArn"] for run in ports.runs.runs(PROFILE, "vip_thanks")] == [arn]
    assert stats.get("vip_thanks") == {"entered": 1}


def test_entering_again_while_in_the_journey_starts_nothing_new(ports: Ports) -> None:
    route(_segment(True), [VIP_THANKS], ports, NOW)

    assert route(_segment(True, "2024-05-01T11:30:00.000Z"), [VIP_THANKS], ports, NOW).started == []
    assert len(ports.runs.runs(PROFILE, "vip_thanks")) == 1


def test_entering_again_after_leaving_starts_a_new_run_under_after_exit(
    ports: Ports, stats: FakeStats
) -> None:
    [first] = route(_segment(True), [VIP_THANKS], ports, NOW).started
    route(_segment(False, "2024-05-02T09:00:00.000Z"), [VIP_THANKS], ports, NOW)

    [second] = route(_segment(True, "2024-05-03T09:00:00.000Z"), [VIP_THANKS], ports, NOW).started

    assert second != first
    assert stats.get("vip_thanks")["entered"] == 2


def test_entering_again_after_leaving_starts_nothing_when_re_entry_is_never(ports: Ports) -> None:
    once = RoutedJourney(**{**VIP_THANKS.__dict__, "re_entry": ReEntryRule("never")})
    route(_segment(True), [once], ports, NOW)
    route(_segment(False, "2024-05-02T09:00:00.000Z"), [once], ports, NOW)

    assert route(_segment(True, "2024-05-03T09:00:00.000Z"), [once], ports, NOW).started == []


def test_a_segment_exit_is_counted_once_when_delivered_twice(ports: Ports, stats: FakeStats) -> None:
    route(_segment(True), [VIP_THANKS], ports, NOW)

    for _ in range(2):
        route(_segment(False, "2024-05-02T09:00:00.000Z"), [VIP_THANKS], ports, NOW)

    assert stats.get("vip_thanks")["exited#exit_event"] == 1


def test_a_customer_track_event_of_another_name_never_touches_a_segment_journey(ports: Ports) -> None:
    routing = route(_with("vip", "m-1", segment="vip"), [VIP_THANKS], ports, NOW)

    assert routing.started == []


def _exit_on_merge(merged: list[str]) -> SegmentChange:
    return SegmentChange(
        profileId=PROFILE,
        segment="vip",
        entered=False,
        at="2024-05-02T09:00:00.000Z",
        reason="merge",
        merged=merged,
    )


def test_a_survivors_merge_exit_routed_before_the_merge_exits_the_run_still_under_the_merged_profile(
    ports: Ports, executions: FakeExecutions
) -> None:
    # The run started on the phone's profile (MERGED); the purchase merged it into the laptop's
    # (PROFILE), which was never in the segment. The survivor's exit is routed before the merge moves
    # the run (both are routed in parallel): the run is exited where it still is.
    [arn] = route(_segment(True, profile=MERGED), [VIP_THANKS], ports, NOW).started

    routing = route_segment_change(_exit_on_merge([MERGED]), [VIP_THANKS], ports, NOW)

    assert routing.exited == [arn] and routing.started == []
    assert not executions.is_running(arn)


def test_a_survivors_merge_exit_routed_after_the_merge_exits_the_moved_run(
    ports: Ports, executions: FakeExecutions
) -> None:
    [arn] = route(_segment(True, profile=MERGED), [VIP_THANKS], ports, NOW).started
    follow_merge(ProfilesMerged(survivor=PROFILE, merged=[MERGED]), ports, NOW)

    assert route_segment_change(_exit_on_merge([MERGED]), [VIP_THANKS], ports, NOW).exited == [arn]
    assert not executions.is_running(arn)


def test_an_exit_routed_to_a_merged_profiles_runs_starts_nothing_there(ports: Ports) -> None:
    leaving = RoutedJourney.of(
        JourneyDefinition.model_validate(
            {
                "id": "goodbye",
                "name": "Goodbye",
                "trigger": {"segment_exited": "vip"},
                "steps": [{"send": {"channel": "email", "template": "bye"}}],
            }
        ),
        MACHINE,
    )

    routing = route_segment_change(_exit_on_merge([MERGED]), [leaving], ports, NOW)

    assert len(routing.started) == 1  # the survivor's own journey
    assert ports.runs.runs(MERGED, "goodbye") == []  # never a run for the profile merged away
