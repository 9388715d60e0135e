"""Journey definition → Amazon States Language (shared/journeys/compiler.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.journeys.compiler import DELIVER_ARN_PLACEHOLDER, compile_journey
from shared.journeys.loader import load_journey
from shared.models.journey import Journey

CART_ABANDONMENT = Path(__file__).resolve().parents[2] / "journeys" / "cart_abandonment"


@pytest.fixture(scope="module")
def journey() -> Journey:
    return load_journey(CART_ABANDONMENT)


@pytest.fixture(scope="module")
def machine(journey: Journey) -> dict[str, Any]:
    return compile_journey(journey)


def _in_order(machine: dict[str, Any]) -> list[dict[str, Any]]:
    """The states as an execution walks them, from StartAt along Next to End."""
    states, name, walked = machine["States"], machine["StartAt"], []
    while True:
        state = states[name]
        walked.append(state)
        if state.get("End"):
            return walked
        name = state["Next"]


def _tasks(machine: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _in_order(machine) if s["Type"] == "Task"]


def test_cart_abandonment_waits_an_hour_emails_waits_23_hours_then_pushes(machine: dict[str, Any]) -> None:
    walked = _in_order(machine)

    shape = [(s["Type"], s.get("Seconds") or s["Parameters"]["Payload"]["channel"]) for s in walked]
    assert shape == [("Wait", 3600), ("Task", "email"), ("Wait", 82800), ("Task", "push")]


def test_only_the_last_state_ends_the_execution(machine: dict[str, Any]) -> None:
    walked = _in_order(machine)

    assert [bool(s.get("End")) for s in walked] == [False, False, False, True]
    assert "Next" not in walked[-1]


def test_start_at_names_the_first_step(machine: dict[str, Any]) -> None:
    first = machine["States"][machine["StartAt"]]

    assert first == {"Type": "Wait", "Seconds": 3600, "Next": first["Next"]}


def test_each_step_is_exactly_one_state(journey: Journey, machine: dict[str, Any]) -> None:
    # Transition economy: no Pass, Choice or bookkeeping states around the steps.
    assert len(machine["States"]) == len(journey.definition.steps)
    assert len(_in_order(machine)) == len(machine["States"])


def test_send_states_invoke_the_deliver_placeholder(machine: dict[str, Any]) -> None:
    for task in _tasks(machine):
        assert task["Resource"] == "arn:aws:states:::lambda:invoke"
        assert task["Parameters"]["FunctionName"] == DELIVER_ARN_PLACEHOLDER == "${DeliverFunctionArn}"


def test_send_states_carry_the_template_content_for_their_channel(
    journey: Journey, machine: dict[str, Any]
) -> None:
    email, push = (t["Parameters"]["Payload"] for t in _tasks(machine))
    template = journey.templates["cart-reminder"]

    assert email["content"] == template.email.model_dump(exclude_none=True)  # type: ignore[union-attr]
    assert push["content"] == {"title": template.push.title, "body": template.push.body}  # type: ignore[union-attr]
    assert set(email["content"]) == {"subject", "text", "html"}


def test_send_payload_names_journey_goal_template_and_execution(machine: dict[str, Any]) -> None:
    payload = _tasks(machine)[0]["Parameters"]["Payload"]

    assert payload["journey"] == "cart_abandonment"
    assert payload["goal"] == "Order Completed"
    assert payload["template"] == "cart-reminder"
    assert payload["executionId.$"] == "$$.Execution.Id"
    assert payload["profileId.$"] == "$.profileId"
    assert payload["enteredAt.$"] == "$.enteredAt"
    assert payload["trigger.$"] == "$.trigger"


def test_send_payload_step_is_the_state_name(machine: dict[str, Any]) -> None:
    # The message key is execution + step: the step must be unique within the execution.
    for name, state in machine["States"].items():
        if state["Type"] == "Task":
            assert state["Parameters"]["Payload"]["step"] == name


def test_send_results_are_discarded_so_the_input_stays_the_state(machine: dict[str, Any]) -> None:
    for task in _tasks(machine):
        assert "ResultPath" in task
        assert task["ResultPath"] is None


def test_send_states_retry_transient_lambda_errors(machine: dict[str, Any]) -> None:
    for task in _tasks(machine):
        retried = {error for rule in task["Retry"] for error in rule["ErrorEquals"]}
        assert "Lambda.TooManyRequestsException" in retried
        assert "Lambda.ServiceException" in retried
        assert all(rule["MaxAttempts"] >= 1 for rule in task["Retry"])


def test_a_given_deliver_arn_replaces_the_placeholder(journey: Journey) -> None:
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:deliver"

    machine = compile_journey(journey, deliver_arn=arn)

    assert [t["Parameters"]["FunctionName"] for t in _tasks(machine)] == [arn, arn]
    assert DELIVER_ARN_PLACEHOLDER not in str(machine)


def test_state_names_are_unique_and_within_the_step_functions_limit(machine: dict[str, Any]) -> None:
    names = list(machine["States"])

    assert len(set(names)) == len(names) == 4
    assert all(0 < len(name) <= 80 for name in names)
