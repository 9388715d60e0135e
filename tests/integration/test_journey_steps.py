"""The journey-steps function against moto: real tables, a real task token, the real bus and identity."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from infra.local.engine import PREFIX, LocalEngine
from infra.topology import TOPOLOGY
from shared import clock
from shared.journeys.steps import update_message_id
from shared.models.profile import Identifier
from shared.models.segments import SegmentState
from shared.store.journey_stats import JourneyStats
from shared.store.journey_waits import JourneyWaitStore
from shared.store.messages import MessageLog
from shared.store.profiles import DynamoProfileStore
from shared.store.task_tokens import TaskTokens
from tests.integration.conftest import WRITE_KEY, client, http_event

PROFILES_TABLE = f"{PREFIX}-profiles"
WAITS_TABLE = f"{PREFIX}-journey-waits"
STATS_TABLE = f"{PREFIX}-journey-stats"
MESSAGES_TABLE = f"{PREFIX}-messages"
SETTLE_SECONDS = 20  # how long a parked execution may take to settle before the test fails


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    """The local runtime without journeys: these tests build the state machines they need."""
    no_journeys = replace(TOPOLOGY, journeys_dir=tmp_path_factory.mktemp("no-journeys"))
    local = LocalEngine(write_key=WRITE_KEY, topology=no_journeys).start()
    yield local
    local.stop()


@pytest.fixture
def executions() -> Iterator[list[str]]:
    """Executions a test starts; any still parked afterwards is resumed, so that the module's engine
    can settle (an execution parked on a token is not waiting on the virtual clock, and moto's
    StopExecution does not interrupt a token wait)."""
    started: list[str] = []
    yield started
    waits = JourneyWaitStore(WAITS_TABLE)
    for arn in started:
        wait = waits.get(arn)
        if wait is not None:
            TaskTokens().resume(wait.token)
        assert _settled(arn) != "RUNNING"


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _send(engine: LocalEngine, call_type: str, **call: Any) -> None:
    assert engine.invoke("ingest", http_event(f"/v1/{call_type}", call))["statusCode"] == 200
    engine.wait_idle()


def _owner(user_id: str | None = None, anonymous_id: str | None = None) -> str:
    identifier = (
        Identifier(type="user_id", value=user_id)
        if user_id
        else Identifier(type="anonymous_id", value=anonymous_id or "")
    )
    return DynamoProfileStore(PROFILES_TABLE).lookup([identifier]).owners[identifier]


def _steps_function_arn() -> str:
    arn: str = client("lambda").get_function(FunctionName=f"{PREFIX}-journey-steps")["Configuration"][
        "FunctionArn"
    ]
    return arn


def _payload(action: str, spec: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "action": action,
        "journey": "integration",
        "step": fields.pop("step", "the-step"),
        "spec": spec,
        "profileId": fields.pop("profileId", "p-unknown"),
        "enteredAt": fields.pop("enteredAt", "2020-01-01T00:00:00.000Z"),
        "trigger": fields.pop("trigger", {"event": "Product Added", "properties": {}, "messageId": "m-0"}),
        "executionId": fields.pop(
            "executionId", f"arn:aws:states:us-east-1:123456789012:execution:x:{_tag()}"
        ),
        **fields,
    }


def _wait_for_machine(spec: dict[str, Any]) -> str:
    """A state machine of one wait_for Task, as the compiler emits it (the journey-steps payload with
    the task token), ending Succeeded on the event and Failed on its timeout."""
    payload = {
        "action": "wait_for",
        "journey": "integration",
        "step": "wait-for-checkout-started",
        "spec": spec,
        "profileId.$": "$.profileId",
        "enteredAt.$": "$.enteredAt",
        "trigger.$": "$.trigger",
        "executionId.$": "$$.Execution.Id",
        "token.$": "$$.Task.Token",
    }
    definition = {
        "StartAt": "wait-for-checkout-started",
        "States": {
            "wait-for-checkout-started": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": _steps_function_arn(), "Payload": payload},
                "TimeoutSeconds": 86400,
                "ResultPath": None,
                "Next": "on-event",
                "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "on-timeout", "ResultPath": None}],
            },
            "on-event": {"Type": "Succeed"},
            "on-timeout": {"Type": "Fail", "Error": "TimedOut"},
        },
    }
    role = client("iam").get_role(RoleName=f"{PREFIX}-local")["Role"]["Arn"]
    arn: str = client("stepfunctions").create_state_machine(
        name=f"wait-for-{_tag()}", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    return arn


def _start(machine: str, profile_id: str, entered_at: str, cart_id: str, started: list[str]) -> str:
    trigger = {"event": "Product Added", "properties": {"cart_id": cart_id}, "messageId": f"m-{_tag()}"}
    arn: str = client("stepfunctions").start_execution(
        stateMachineArn=machine,
        name=_tag(),
        input=json.dumps({"profileId": profile_id, "enteredAt": entered_at, "trigger": trigger}),
    )["executionArn"]
    started.append(arn)
    return arn


def _settled(execution: str) -> str:
    """The execution's status once it has left RUNNING, or RUNNING if it is still parked after
    SETTLE_SECONDS (the handler runs in moto's execution thread)."""
    sfn = client("stepfunctions")
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        status: str = sfn.describe_execution(executionArn=execution)["status"]
        if status != "RUNNING" or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def _parked(execution: str) -> JourneyWaitStore:
    """Wait until the execution's wait item is stored (the Task has run)."""
    waits = JourneyWaitStore(WAITS_TABLE)
    deadline = time.monotonic() + SETTLE_SECONDS
    while waits.get(execution) is None:
        assert time.monotonic() < deadline, "the wait_for Task never stored its wait"
        time.sleep(0.02)
    return waits


CHECKOUT = {"event": "Checkout Started", "where": {"cart_id": {"same_as_trigger": True}}, "timeout": 82800}


# -- wait_for --------------------------------------------------------------------------------------


def test_an_awaited_event_that_arrived_before_the_wait_began_resumes_at_once(
    engine: LocalEngine, executions: list[str]
) -> None:
    user = f"u-{_tag()}"
    entered = clock.iso(engine.clock.now())
    _send(engine, "track", userId=user, event="Checkout Started", properties={"cart_id": "c-1"})

    execution = _start(_wait_for_machine(CHECKOUT), _owner(user), entered, "c-1", executions)

    assert _settled(execution) == "SUCCEEDED"
    assert JourneyWaitStore(WAITS_TABLE).get(execution) is None


def test_an_event_for_another_cart_leaves_the_execution_parked_with_its_wait(
    engine: LocalEngine, executions: list[str]
) -> None:
    user = f"u-{_tag()}"
    entered = clock.iso(engine.clock.now())
    _send(engine, "track", userId=user, event="Checkout Started", properties={"cart_id": "c-other"})

    execution = _start(_wait_for_machine(CHECKOUT), _owner(user), entered, "c-1", executions)

    wait = _parked(execution).get(execution)
    assert wait is not None
    assert (wait.event, wait.where, wait.since) == (
        "Checkout Started",
        {"cart_id": {"equals": "c-1"}},
        entered,
    )
    assert client("stepfunctions").describe_execution(executionArn=execution)["status"] == "RUNNING"


def test_an_event_recorded_under_a_profile_merged_since_resumes(
    engine: LocalEngine, executions: list[str]
) -> None:
    tag = _tag()
    entered = clock.iso(engine.clock.now())
    # The run is for the anonymous visitor's profile; the checkout happened signed in, on another
    # profile; then an identify links the two, and the visitor's profile is merged into the other.
    _send(engine, "track", anonymousId=f"a-{tag}", event="Product Added", properties={"cart_id": "c-1"})
    visitor = _owner(anonymous_id=f"a-{tag}")
    _send(engine, "track", userId=f"u-{tag}", event="Checkout Started", properties={"cart_id": "c-1"})
    _send(engine, "identify", userId=f"u-{tag}", anonymousId=f"a-{tag}")
    live = DynamoProfileStore(PROFILES_TABLE).profile(visitor)
    assert live is not None and {visitor, _owner(f"u-{tag}")} <= {live.profileId, *live.mergedFrom}

    execution = _start(_wait_for_machine(CHECKOUT), visitor, entered, "c-1", executions)

    assert _settled(execution) == "SUCCEEDED"


def test_resuming_a_token_twice_is_ignored(engine: LocalEngine, executions: list[str]) -> None:
    user = f"u-{_tag()}"
    _send(engine, "identify", userId=user)
    execution = _start(
        _wait_for_machine(CHECKOUT), _owner(user), clock.iso(engine.clock.now()), "c-1", executions
    )
    wait = _parked(execution).get(execution)
    assert wait is not None

    tokens = TaskTokens()
    assert tokens.resume(wait.token) is True
    assert _settled(execution) == "SUCCEEDED"
    assert tokens.resume(wait.token) is False  # the router or journey-steps came second


def test_deleting_a_wait_keeps_a_newer_wait_of_the_same_execution(engine: LocalEngine) -> None:
    from shared.journeys.steps import JourneyWait

    waits = JourneyWaitStore(WAITS_TABLE)
    arn = f"arn:aws:states:us-east-1:123456789012:execution:x:{_tag()}"
    fields = {
        "profileId": "p",
        "journey": "j",
        "step": "s",
        "event": "E",
        "where": {},
        "since": "2020-01-01T00:00:00.000Z",
    }
    waits.put(JourneyWait(executionArn=arn, token="old", **fields))
    waits.put(JourneyWait(executionArn=arn, token="new", **fields))

    waits.delete(arn, "old")
    assert (kept := waits.get(arn)) is not None and kept.token == "new"
    waits.delete(arn, "new")
    assert waits.get(arn) is None


def test_the_waits_of_executions_are_read_in_batches_of_a_hundred(engine: LocalEngine) -> None:
    from shared.journeys.steps import JourneyWait

    waits = JourneyWaitStore(WAITS_TABLE)

    def park(event: str) -> str:
        arn = f"arn:aws:states:us-east-1:123456789012:execution:x:{_tag()}"
        waits.put(
            JourneyWait(
                executionArn=arn,
                journey="j",
                step="s",
                token=f"t-{arn[-6:]}",
                event=event,
                where={"cart_id": {"equals": "c-1"}},
                since="2020-01-01T00:00:00.000Z",
            )
        )
        return arn

    parked = [park("App Opened") for _ in range(101)] + [park("Checkout Started")]
    not_parked = f"arn:aws:states:us-east-1:123456789012:execution:x:{_tag()}"

    found = waits.waits_of([*parked, not_parked])

    assert sorted(w.executionArn for w in found) == sorted(parked)
    [checkout] = [w for w in found if w.executionArn == parked[-1]]
    assert (checkout.event, checkout.where) == ("Checkout Started", {"cart_id": {"equals": "c-1"}})
    assert waits.waits_of([]) == []


# -- wait_until ------------------------------------------------------------------------------------


def test_wait_until_uses_the_time_zone_of_the_customers_latest_event(engine: LocalEngine) -> None:
    user = f"u-{_tag()}"
    _send(engine, "track", userId=user, event="App Opened", context={"timezone": "America/New_York"})

    result = engine.invoke(
        "journey-steps",
        _payload(
            "wait_until",
            {"time": "10:00", "days_after_entry": 1},
            profileId=_owner(user),
            enteredAt="2030-03-09T14:00:00.000Z",
        ),
    )

    # 2030-03-10 is New York's first day of EDT: 10:00 there is 14:00 UTC.
    assert result == {"until": "2030-03-10T14:00:00.000Z"}


# -- branch, split ---------------------------------------------------------------------------------


def _deliver(
    engine: LocalEngine, profile_id: str, execution: str, step: str, text: str = "Hello"
) -> dict[str, Any]:
    request = {
        "journey": "integration",
        "step": step,
        "channel": "email",
        "template": "welcome",
        "content": {"subject": "Hi", "text": text},
        "profileId": profile_id,
        "enteredAt": clock.iso(engine.clock.now()),
        "trigger": {},
        "executionId": execution,
    }
    result: dict[str, Any] = engine.invoke("deliver", request)
    return result


def test_branch_on_a_step_this_run_sent_and_deliver_counts_it_once(engine: LocalEngine) -> None:
    user = f"u-{_tag()}"
    _send(engine, "identify", userId=user, traits={"email": f"{user}@example.com"})
    execution = f"arn:aws:states:us-east-1:123456789012:execution:x:{_tag()}"
    before = JourneyStats(STATS_TABLE).get("integration").get("step#send-welcome#sent", 0)

    assert _deliver(engine, _owner(user), execution, "send-welcome")["status"] == "queued"
    _deliver(engine, _owner(user), execution, "send-welcome")  # the step retried
    spec = {
        "cases": [
            {"when": {"journey": {"dropped": "send-welcome"}}},
            {"when": {"journey": {"sent": "send-welcome"}}},
        ]
    }
    result = engine.invoke(
        "journey-steps", _payload("branch", spec, profileId=_owner(user), executionId=execution)
    )

    assert result == {"path": "case-1"}
    assert JourneyStats(STATS_TABLE).get("integration")["step#send-welcome#sent"] == before + 1


def test_branch_on_a_step_this_run_dropped(engine: LocalEngine) -> None:
    execution = f"arn:aws:states:us-east-1:123456789012:execution:x:{_tag()}"
    before = JourneyStats(STATS_TABLE).get("integration").get("step#send-gone#dropped#profile_not_found", 0)

    assert _deliver(engine, "p-nobody", execution, "send-gone")["reason"] == "profile_not_found"
    spec = {
        "cases": [
            {"when": {"journey": {"sent": "send-gone"}}},
            {"when": {"journey": {"dropped": "send-gone"}}},
        ]
    }
    result = engine.invoke("journey-steps", _payload("branch", spec, executionId=execution))

    assert result == {"path": "case-1"}
    assert (
        JourneyStats(STATS_TABLE).get("integration")["step#send-gone#dropped#profile_not_found"] == before + 1
    )


def test_branch_on_the_live_profiles_traits(engine: LocalEngine) -> None:
    user = f"u-{_tag()}"
    _send(engine, "identify", userId=user, traits={"plan": "pro"})
    spec = {
        "cases": [{"when": {"traits": {"plan": "free"}}}, {"when": {"traits": {"plan": {"one_of": ["pro"]}}}}]
    }

    assert engine.invoke("journey-steps", _payload("branch", spec, profileId=_owner(user))) == {
        "path": "case-1"
    }


def _segment_state(profile_id: str, segments: list[str], **computed: Any) -> None:
    """The segment state item as the segments function keeps it (DESIGN9 §2), written directly."""
    state = SegmentState(profileId=profile_id, version=7, segments=segments, computed=computed)
    client("dynamodb").put_item(
        TableName=PROFILES_TABLE,
        Item={
            "pk": {"S": f"profile#{profile_id}"},
            "sk": {"S": "segments"},
            "state": {"S": state.model_dump_json()},
            "version": {"N": "7"},
        },
    )


def test_branch_on_segment_membership_and_computed_traits_reads_the_state_item(engine: LocalEngine) -> None:
    user = f"u-{_tag()}"
    _send(engine, "identify", userId=user, traits={"plan": "pro"})
    _segment_state(_owner(user), ["vip"], lifetime_revenue=750, orders_count=2)
    spec = {
        "cases": [
            {"when": {"segments": {"cart_abandoners": True}}},
            {"when": {"computed": {"lifetime_revenue": {"gte": 1000}}}},
            {"when": {"segments": {"vip": True}, "computed": {"orders_count": {"gte": 2}}}},
        ]
    }

    assert engine.invoke("journey-steps", _payload("branch", spec, profileId=_owner(user))) == {
        "path": "case-2"
    }


def test_branch_on_segments_of_a_profile_without_state_takes_the_non_member_case(engine: LocalEngine) -> None:
    user = f"u-{_tag()}"
    _send(engine, "identify", userId=user, traits={"plan": "pro"})
    client("dynamodb").delete_item(
        TableName=PROFILES_TABLE, Key={"pk": {"S": f"profile#{_owner(user)}"}, "sk": {"S": "segments"}}
    )
    spec = {"cases": [{"when": {"segments": {"vip": True}}}, {"when": {"segments": {"vip": False}}}]}

    assert engine.invoke("journey-steps", _payload("branch", spec, profileId=_owner(user))) == {
        "path": "case-1"
    }


def test_a_sent_message_renders_the_computed_traits_of_the_state_item(engine: LocalEngine) -> None:
    user = f"u-{_tag()}"
    _send(engine, "identify", userId=user, traits={"email": f"{user}@example.com"})
    _segment_state(_owner(user), ["vip"], lifetime_revenue=742.5)
    execution = f"arn:aws:states:us-east-1:123456789012:execution:x:{_tag()}"

    result = _deliver(
        engine, _owner(user), execution, "send-thanks", "You spent {{ computed.lifetime_revenue }}"
    )

    assert result["status"] == "queued"
    entry = MessageLog(MESSAGES_TABLE).get(result["messageKey"])
    assert entry is not None and entry.content == {"subject": "Hi", "text": "You spent 742.5"}


def test_split_takes_the_same_path_for_a_profile_every_time(engine: LocalEngine) -> None:
    spec = {"paths": [{"weight": 1}, {"weight": 1}, {"weight": 1}]}
    paths = {
        engine.invoke("journey-steps", _payload("split", spec, profileId="p-fixed"))["path"] for _ in range(3)
    }

    assert len(paths) == 1


# -- update ----------------------------------------------------------------------------------------


def test_update_applies_its_identify_before_it_returns_once_per_execution_and_step(
    engine: LocalEngine,
) -> None:
    user = f"u-{_tag()}"
    _send(engine, "identify", userId=user, traits={"trial_plan": "basic"})
    execution = f"arn:aws:states:us-east-1:123456789012:execution:x:{_tag()}"
    payload = _payload(
        "update",
        {"set": {"onboarded": True}, "unset": ["trial_plan"]},
        profileId=_owner(user),
        executionId=execution,
        step="mark-onboarded",
    )

    assert engine.invoke("journey-steps", payload) == {"published": True}
    # Read before the bus is drained: the step itself applied the change.
    profile = DynamoProfileStore(PROFILES_TABLE).profile(_owner(user))
    assert profile is not None
    # Identity keeps an unset trait as null (the trait stays, with no value).
    assert profile.traits == {"onboarded": True, "trial_plan": None}
    assert engine.invoke("journey-steps", payload) == {"published": True}  # the step retried
    engine.wait_idle()

    message_id = update_message_id(execution, "mark-onboarded")
    resolved = [
        e
        for e in engine.bus_events
        if e.get("detail-type") == "event.resolved"
        and e["detail"]["data"]["event"].get("messageId") == message_id
    ]
    assert len(resolved) == 2 and {e["source"] for e in resolved} == {"continuum.identity"}
    assert {e["detail"]["data"]["profileId"] for e in resolved} == {_owner(user)}
    # No identify went round through ingest's source: identity would have applied it a second time.
    assert not [
        e
        for e in engine.bus_events
        if e.get("detail-type") == "segment.identify" and e["detail"].get("correlationId") == message_id
    ]
