"""Which journeys a resolved event starts or ends (shared/journeys/router.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shared.config import JourneyRef
from shared.journeys.router import execution_name, route
from shared.models.events import ResolvedEvent
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
    return ResolvedEvent(
        profileId=fields.pop("profileId", PROFILE),
        profileIds=fields.pop("profileIds", [PROFILE]),
        event={**call, **fields},
    )


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


def test_a_run_under_a_merged_profile_id_keeps_the_profile_in_the_journey(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    _route(_resolved(profileId=MERGED, profileIds=[MERGED]), runs, executions)

    again = _route(_resolved(message_id="m-2", profileIds=[PROFILE, MERGED]), runs, executions)

    assert again.started == []


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


def test_a_goal_stops_runs_under_every_id_the_profile_was_known_by(
    runs: FakeRunStore, executions: FakeExecutions
) -> None:
    under_merged = _route(
        _resolved(profileId=MERGED, profileIds=[MERGED], message_id="m-0"), runs, executions
    )
    under_survivor = _route(_resolved(message_id="m-1"), runs, executions)

    routing = _route(
        _resolved(event="Order Completed", message_id="m-2", profileIds=[PROFILE, MERGED]), runs, executions
    )

    assert sorted(routing.exited) == sorted(under_merged.started + under_survivor.started)
    assert runs.active(PROFILE, "cart_abandonment") == runs.active(MERGED, "cart_abandonment") == []


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
        profileIds=[PROFILE],
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
