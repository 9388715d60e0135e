"""The compiled cart-abandonment ASL executing in moto's Step Functions on the virtual clock."""

from __future__ import annotations

import json
import uuid
from typing import Any

from infra.local.engine import LocalEngine
from shared import clock
from tests.integration.conftest import client, http_event
from tests.payloads import load


def _customer(engine: LocalEngine) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    customer = {"userId": f"u-{tag}", "email": f"c-{tag}@example.com", "token": f"t-{tag}"}
    identify = load(
        "identify",
        userId=customer["userId"],
        anonymousId=f"anon-{tag}",
        traits={"email": customer["email"]},
        context={"device": {"token": customer["token"]}},
    )
    assert engine.invoke("ingest", http_event("/v1/identify", identify))["statusCode"] == 200
    engine.wait_idle()
    return customer


def _profile_id(engine: LocalEngine, user_id: str) -> str:
    from shared.models.profile import Identifier
    from shared.store.profiles import DynamoProfileStore

    user = Identifier(type="user_id", value=user_id)
    return DynamoProfileStore("continuum-profiles").lookup([user]).owners[user]


def _start(engine: LocalEngine, profile_id: str) -> str:
    arn = engine._state_machine_arns["cart_abandonment"]
    payload = {
        "profileId": profile_id,
        "enteredAt": clock.iso(engine.clock.now()),
        "trigger": {
            "event": "Product Added",
            "properties": {"name": "Kettle"},
            "messageId": uuid.uuid4().hex,
        },
    }
    execution: str = client("stepfunctions").start_execution(
        stateMachineArn=arn, name=uuid.uuid4().hex, input=json.dumps(payload)
    )["executionArn"]
    return execution


def _history(execution: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client("stepfunctions").get_execution_history(executionArn=execution)[
        "events"
    ]
    return events


def _sent_to(engine: LocalEngine, *addresses: str) -> list[str]:
    return [m["channel"] for m in engine.messages() if m["to"] in addresses]


def test_the_wait_passes_in_virtual_time_and_the_send_step_invokes_the_send_gate(engine: LocalEngine) -> None:
    customer = _customer(engine)
    execution = _start(engine, _profile_id(engine, customer["userId"]))
    sfn = client("stepfunctions")

    engine.advance(3599)
    assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    assert _sent_to(engine, customer["email"], customer["token"]) == []

    engine.advance(1)
    assert _sent_to(engine, customer["email"], customer["token"]) == ["email"]
    entered = [e["type"] for e in _history(execution) if e["type"].endswith("StateEntered")]
    # The wait, then the send (one state: the gate answered its token, no deferral), then the wait for
    # checkout.
    assert entered[:3] == ["WaitStateEntered", "TaskStateEntered", "TaskStateEntered"]
    steps = [
        e["stateEnteredEventDetails"]["name"] for e in _history(execution) if "stateEnteredEventDetails" in e
    ]
    assert steps[:3] == ["wait-1h", "send-email-cart-reminder", "checkout"]
    keys = [e["messageKey"] for e in engine.message_log() if e.get("to") == customer["email"]]
    # The message key names the step by its id, which no edit of another step changes.
    assert keys == [f"{execution}#send-email-cart-reminder"]


def test_without_checkout_the_push_follows_23_hours_after_the_email(engine: LocalEngine) -> None:
    customer = _customer(engine)
    execution = _start(engine, _profile_id(engine, customer["userId"]))
    sfn = client("stepfunctions")

    engine.advance(3600 + 23 * 3600 - 1)
    assert _sent_to(engine, customer["email"], customer["token"]) == ["email"]

    engine.advance(1)
    assert _sent_to(engine, customer["email"], customer["token"]) == ["email", "push"]
    assert sfn.describe_execution(executionArn=execution)["status"] == "SUCCEEDED"


def test_stopping_an_execution_in_its_wait_sends_nothing(engine: LocalEngine) -> None:
    customer = _customer(engine)
    execution = _start(engine, _profile_id(engine, customer["userId"]))
    engine.advance(1800)

    client("stepfunctions").stop_execution(executionArn=execution, error="Continuum.GoalReached")
    engine.advance(2 * 24 * 3600)

    assert client("stepfunctions").describe_execution(executionArn=execution)["status"] == "ABORTED"
    assert _sent_to(engine, customer["email"], customer["token"]) == []


def test_the_send_gate_drops_a_send_when_the_goal_was_reached_even_if_the_journey_was_not_stopped(
    engine: LocalEngine,
) -> None:
    customer = _customer(engine)
    profile_id = _profile_id(engine, customer["userId"])
    execution = _start(engine, profile_id)
    engine.advance(600)
    # The purchase reaches the profile, but (say) the router's stop was lost: the gate still guards.
    from shared.store.profiles import DynamoProfileStore

    store = DynamoProfileStore("continuum-profiles")
    profile = store.profiles([profile_id])[profile_id]
    profile.lastEvents["Order Completed"] = clock.iso(engine.clock.now())
    store.commit([profile], [], [], [])

    engine.advance(3600)
    assert _sent_to(engine, customer["email"], customer["token"]) == []
    reasons = [(e["channel"], e["reason"]) for e in engine.message_log() if e["profileId"] == profile_id]
    assert reasons == [("email", "goal_reached")]
    assert execution in {e["executionArn"] for e in engine.executions()}
