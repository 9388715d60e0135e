"""moto's Step Functions on the local runtime's virtual clock, with small hand-written state machines:
a task-token wait times out on the virtual clock (and counts as waiting, so the engine is idle), a
Timestamp wait is measured against the virtual clock, StopExecution interrupts a token wait, and
every execution that ends puts AWS's `Step Functions Execution Status Change` event on the bus."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from infra.local.engine import LocalEngine
from infra.topology import TOPOLOGY, Function, Route
from shared import clock
from shared.journeys.compiler import compile_journey
from shared.models.events import DETAIL_EXECUTION_STATUS_CHANGE, SOURCE_STATES
from shared.models.journey import Journey, JourneyDefinition, Template
from shared.models.message import DEFERRED_ERROR
from tests.integration import concurrency_probe
from tests.integration.conftest import WRITE_KEY, client

PROBE = "probe"
HOUR = 3600
SETTLE_SECONDS = 20  # a wait_idle that needs longer has found something that never settles
TEST_TOPOLOGY = replace(
    TOPOLOGY,
    functions=(*TOPOLOGY.functions, Function(PROBE, "tests.integration.concurrency_probe", "test only")),
    routes=(
        *TOPOLOGY.routes,
        Route(
            "status-changes",
            {"source": [SOURCE_STATES], "detail-type": [DETAIL_EXECUTION_STATUS_CHANGE]},
            PROBE,
        ),
    ),
)


class Probe:
    """What the probe function received: task tokens (from a token task's payload) and status changes."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}  # execution ARN → its latest task token
        self.status_changes: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        if event.get("detail-type") == DETAIL_EXECUTION_STATUS_CHANGE:
            self.status_changes.append(event)
        elif "token" in event:
            self.tokens[event["execution"]] = event["token"]
        return {"ok": True}


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalEngine]:
    local = LocalEngine(write_key=WRITE_KEY, topology=TEST_TOPOLOGY).start()
    yield local
    local.stop()


@pytest.fixture
def probe() -> Iterator[Probe]:
    recorder = Probe()
    concurrency_probe.behaviour = recorder
    yield recorder
    concurrency_probe.behaviour = concurrency_probe._nothing


def _probe_arn() -> str:
    arn: str = client("lambda").get_function(FunctionName=f"continuum-{PROBE}")["Configuration"][
        "FunctionArn"
    ]
    return arn


def _token_machine(
    timeout_seconds: int | None = 23 * HOUR, after_timeout: dict[str, Any] | None = None
) -> str:
    """Park on a task token (the token goes to the probe), then `Answered`; a timeout goes to `TimedOut`."""
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": _probe_arn(),
            "Payload": {"token.$": "$$.Task.Token", "execution.$": "$$.Execution.Id"},
        },
        "ResultPath": None,
        "Next": "Answered",
        "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "TimedOut", "ResultPath": None}],
    }
    if timeout_seconds is not None:
        task["TimeoutSeconds"] = timeout_seconds
    states = {
        "Token": task,
        "Answered": {"Type": "Pass", "End": True},
        "TimedOut": after_timeout or {"Type": "Pass", "End": True},
    }
    return _machine({"StartAt": "Token", "States": states})


def _machine(definition: dict[str, Any]) -> str:
    arn: str = client("stepfunctions").create_state_machine(
        name=f"test-{uuid.uuid4().hex[:12]}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/continuum-local",
    )["stateMachineArn"]
    return arn


def _start(machine: str, payload: dict[str, Any] | None = None) -> str:
    arn: str = client("stepfunctions").start_execution(
        stateMachineArn=machine, name=uuid.uuid4().hex, input=json.dumps(payload or {})
    )["executionArn"]
    return arn


def _status(execution: str) -> str:
    return str(client("stepfunctions").describe_execution(executionArn=execution)["status"])


def _history(execution: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client("stepfunctions").get_execution_history(executionArn=execution)[
        "events"
    ]
    return events


def _entered(execution: str) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"] for e in _history(execution) if "stateEnteredEventDetails" in e
    ]


def test_a_token_wait_times_out_on_the_virtual_clock_and_counts_as_idle(
    engine: LocalEngine, probe: Probe
) -> None:
    # Given an execution parked on a task token with a 23 h timeout
    execution = _start(_token_machine())
    engine.wait_idle(SETTLE_SECONDS)  # parked on the token: idle, though the execution runs
    assert execution in probe.tokens and _status(execution) == "RUNNING"

    # When virtual time reaches the timeout (and not before)
    engine.advance(23 * HOUR - 1)
    assert _status(execution) == "RUNNING"
    engine.advance(1)

    # Then the wait timed out (States.Timeout, caught) at that virtual instant
    assert _status(execution) == "SUCCEEDED"
    assert _entered(execution) == ["Token", "TimedOut"]


def test_a_token_answered_before_its_timeout_resumes_the_execution_at_once(
    engine: LocalEngine, probe: Probe
) -> None:
    execution = _start(_token_machine())
    engine.wait_idle(SETTLE_SECONDS)
    engine.advance(5 * HOUR)
    before = engine.clock.now()

    client("stepfunctions").send_task_success(taskToken=probe.tokens[execution], output="{}")
    engine.wait_idle(SETTLE_SECONDS)

    assert _status(execution) == "SUCCEEDED"
    assert _entered(execution) == ["Token", "Answered"]
    assert engine.clock.now() == before  # nothing moved the clock on to the timeout
    assert engine.clock.next_due() is None  # and the timeout no longer waits on it


def test_a_token_without_a_timeout_parks_the_execution_idle(engine: LocalEngine, probe: Probe) -> None:
    execution = _start(_token_machine(timeout_seconds=None))
    engine.wait_idle(SETTLE_SECONDS)
    assert _status(execution) == "RUNNING"

    client("stepfunctions").send_task_failure(taskToken=probe.tokens[execution], error="Nope", cause="test")
    engine.wait_idle(SETTLE_SECONDS)

    assert _status(execution) == "FAILED"


def test_stop_execution_interrupts_a_token_wait(engine: LocalEngine, probe: Probe) -> None:
    execution = _start(_token_machine())
    engine.wait_idle(SETTLE_SECONDS)

    client("stepfunctions").stop_execution(executionArn=execution)
    engine.wait_idle(SETTLE_SECONDS)

    assert _status(execution) == "ABORTED"
    assert execution not in engine.clock.waiting()
    types = [e["type"] for e in _history(execution)]
    assert types[-1] == "ExecutionAborted"
    assert not {"TaskTimedOut", "TaskFailed", "TaskSucceeded"} & set(types)  # the task had no outcome


# -- a journey's send step: one Task on a token its function answers ---------------------------------

HELLO = Template.model_validate({"name": "hello", "email": {"subject": "Hi", "text": "Hello"}})


class SendGate:
    """Stands in for deliver behind the compiled send steps: answers each invocation's task token
    from inside the invocation, before it returns, as deliver does: `defer[step]` instants first (a
    deferral each), then success. Records (step, virtual time) of every invocation."""

    def __init__(self, engine: LocalEngine, defer: dict[str, list[datetime]] | None = None) -> None:
        self.engine = engine
        self.defer = defer or {}
        self.calls: list[tuple[str, datetime]] = []
        self.busy_while_running: list[bool] = []
        self.hold: threading.Event | None = None  # set by a test: the invocation waits for it
        self.holding = threading.Event()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        if "token" not in event:  # a status change
            return None
        step = event["step"]
        self.calls.append((step, self.engine.clock.now()))
        if self.hold is not None:
            self.holding.set()
            self.hold.wait(SETTLE_SECONDS)
        sfn = client("stepfunctions")
        pending = self.defer.get(step, [])
        if pending:
            until = pending.pop(0)
            sfn.send_task_failure(taskToken=event["token"], error=DEFERRED_ERROR, cause=clock.iso(until))
        else:
            sfn.send_task_success(taskToken=event["token"], output="{}")
        # Answered, and still running: the engine must not count it idle (its clock would move on).
        self.busy_while_running.append(not self.engine.is_idle())
        return {"status": "answered"}


@pytest.fixture
def gate(engine: LocalEngine) -> Iterator[SendGate]:
    stand_in = SendGate(engine)
    concurrency_probe.behaviour = stand_in
    yield stand_in
    concurrency_probe.behaviour = concurrency_probe._nothing


def _send_journey_machine() -> str:
    """Two sends two hours apart, compiled as every journey is, deliver's ARN being the probe's."""
    definition = JourneyDefinition.model_validate(
        {
            "id": "sends",
            "name": "Sends",
            "trigger": "Signed Up",
            "steps": [
                {"id": "first", "send": {"channel": "email", "template": "hello"}},
                {"wait": "2h"},
                {"id": "second", "send": {"channel": "email", "template": "hello"}},
            ],
        }
    )
    journey = Journey(definition=definition, templates={"hello": HELLO})
    return _machine(compile_journey(journey, deliver_arn=_probe_arn(), steps_arn=_probe_arn()))


def _start_run(machine: str, engine: LocalEngine) -> str:
    entered = clock.iso(engine.clock.now())
    return _start(machine, {"profileId": "p-1", "enteredAt": entered, "trigger": {"event": "Signed Up"}})


def test_a_send_answered_from_inside_its_invocation_goes_on_at_once(
    engine: LocalEngine, gate: SendGate
) -> None:
    start = engine.clock.now()
    execution = _start_run(_send_journey_machine(), engine)
    engine.wait_idle(SETTLE_SECONDS)
    assert _status(execution) == "RUNNING"  # in the two hours' Wait, not on the send's token

    engine.advance(2 * HOUR)

    assert _status(execution) == "SUCCEEDED"
    assert gate.calls == [("first", start), ("second", start + timedelta(hours=2))]
    assert _entered(execution) == ["first", "wait-2h", "second"]  # one state per step
    assert gate.busy_while_running == [True, True]
    assert engine.clock.next_due() is None  # no send timeout left waiting on the clock


def test_a_deferred_send_waits_until_the_instant_its_answer_names_then_runs_again(
    engine: LocalEngine, gate: SendGate
) -> None:
    # Given a gate that defers the first send to an instant 3 h 17 min after entry
    start = engine.clock.now()
    until = start + timedelta(hours=3, minutes=17)
    gate.defer = {"first": [until]}
    execution = _start_run(_send_journey_machine(), engine)
    engine.wait_idle(SETTLE_SECONDS)

    # Then the run waits for that instant on the virtual clock (the Catch's $.defer.Cause)
    assert engine.clock.next_due() == until
    engine.advance((until - start).total_seconds() - 1)
    assert [step for step, _ in gate.calls] == ["first"]  # a deferral is not retried

    # And runs the gate again at that instant, then goes on
    engine.advance(1)
    engine.advance(2 * HOUR)
    assert _status(execution) == "SUCCEEDED"
    assert gate.calls == [("first", start), ("first", until), ("second", until + timedelta(hours=2))]
    assert _entered(execution) == ["first", "first.defer", "first", "wait-2h", "second"]
    types = {e["type"] for e in _history(execution)}
    assert "TaskTimedOut" not in types and "ExecutionFailed" not in types


def test_time_asked_to_move_while_the_gate_runs_moves_only_once_it_has_answered(
    engine: LocalEngine, gate: SendGate
) -> None:
    # An advance called while deliver runs waits for it: a send's token wait (and its timeout) runs on
    # the virtual clock only once deliver answered, and the run is not idle before.
    start = engine.clock.now()
    gate.hold = threading.Event()
    execution = _start_run(_send_journey_machine(), engine)
    assert gate.holding.wait(SETTLE_SECONDS)
    mover = threading.Thread(target=engine.advance, args=(2 * HOUR,), daemon=True)
    mover.start()

    mover.join(0.5)  # (given time to move the clock, if it wrongly would)
    moved_while_held = not mover.is_alive() or engine.clock.now() != start
    gate.hold.set()
    mover.join(SETTLE_SECONDS)

    assert not moved_while_held
    assert _status(execution) == "SUCCEEDED"
    assert gate.calls == [("first", start), ("second", start + timedelta(hours=2))]


def _timestamp_machine() -> str:
    return _machine(
        {"StartAt": "Until", "States": {"Until": {"Type": "Wait", "TimestampPath": "$.until", "End": True}}}
    )


@pytest.mark.parametrize("offset", ["Z", "+02:00"])
def test_a_timestamp_wait_ends_at_that_virtual_instant(engine: LocalEngine, offset: str) -> None:
    due = engine.clock.now() + timedelta(days=3, hours=2)
    text = (
        due.isoformat().replace("+00:00", "Z")
        if offset == "Z"
        else due.astimezone(__import__("datetime").timezone(timedelta(hours=2))).isoformat()
    )
    execution = _start(_timestamp_machine(), {"until": text})
    engine.wait_idle(SETTLE_SECONDS)

    engine.advance((due - engine.clock.now()).total_seconds() - 1)
    assert _status(execution) == "RUNNING"
    engine.advance(1)

    assert _status(execution) == "SUCCEEDED"


def test_a_timestamp_in_the_past_continues_at_once(engine: LocalEngine) -> None:
    past = engine.clock.now() - timedelta(days=1)
    execution = _start(_timestamp_machine(), {"until": past.strftime("%Y-%m-%dT%H:%M:%SZ")})

    engine.wait_idle(SETTLE_SECONDS)  # no advance

    assert _status(execution) == "SUCCEEDED"


def test_an_ended_execution_puts_its_status_change_on_the_bus(engine: LocalEngine, probe: Probe) -> None:
    machine = _machine(
        {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": {"exit": "x"}, "End": True}}}
    )
    execution = _start(machine, {"profileId": "p-1"})
    engine.wait_idle(SETTLE_SECONDS)

    (event,) = [e for e in probe.status_changes if e["detail"]["executionArn"] == execution]
    assert event["source"] == "aws.states"
    assert event["resources"] == [execution]
    detail = event["detail"]
    assert detail["stateMachineArn"] == machine
    assert detail["name"] == execution.rsplit(":", 1)[1]
    assert detail["status"] == "SUCCEEDED"
    assert json.loads(detail["input"]) == {"profileId": "p-1"}
    assert json.loads(detail["output"]) == {"exit": "x"}
    assert detail["startDate"] <= detail["stopDate"] == int(engine.clock.now().timestamp() * 1000)


@pytest.mark.parametrize("ending", ["FAILED", "ABORTED"])
def test_failed_and_aborted_executions_put_their_status_change_on_the_bus(
    engine: LocalEngine, probe: Probe, ending: str
) -> None:
    execution = _start(_token_machine())
    engine.wait_idle(SETTLE_SECONDS)
    if ending == "FAILED":
        client("stepfunctions").send_task_failure(taskToken=probe.tokens[execution], error="E", cause="c")
    else:
        client("stepfunctions").stop_execution(executionArn=execution)
    engine.wait_idle(SETTLE_SECONDS)

    (event,) = [e for e in probe.status_changes if e["detail"]["executionArn"] == execution]
    assert event["detail"]["status"] == ending
    assert event["detail"]["output"] is None


@pytest.mark.parametrize("late", [timedelta(0), timedelta(hours=1)], ids=["now", "an_hour_ago"])
def test_a_deferral_to_an_instant_now_or_past_runs_the_gate_again_at_once(
    engine: LocalEngine, gate: SendGate, late: timedelta
) -> None:
    # The gate names an instant that is already here (its clock behind Step Functions'): the Wait
    # ends at once, the gate runs again and the run goes on, not stuck nor failed.
    start = engine.clock.now()
    gate.defer = {"first": [start - late]}
    execution = _start_run(_send_journey_machine(), engine)
    engine.wait_idle(SETTLE_SECONDS)

    assert gate.calls == [("first", start), ("first", start)]
    engine.advance(2 * HOUR)
    assert _status(execution) == "SUCCEEDED"
    assert _entered(execution) == ["first", "first.defer", "first", "wait-2h", "second"]
