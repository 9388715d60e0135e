"""Journey definition → graph → Amazon States Language (shared/journeys/compiler.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.journeys.compiler import (
    DELIVER_ARN_PLACEHOLDER,
    EMITTERS,
    END_STATE,
    JOURNEY_STEPS_ARN_PLACEHOLDER,
    compile_journey,
    gate_event,
)
from shared.journeys.loader import load_journey, load_journeys
from shared.models.journey import STEP_TYPES, Journey, JourneyDefinition, Template
from shared.models.message import DEFERRED_ERROR

JOURNEYS = Path(__file__).resolve().parents[2] / "journeys"
HELLO = Template.model_validate(
    {"name": "hello", "email": {"subject": "Hi", "text": "Hello"}, "push": {"title": "Hi", "body": "Hello"}}
)
SEND = {"send": {"channel": "email", "template": "hello"}}


def _journey(*steps: Any, **overrides: Any) -> Journey:
    definition = JourneyDefinition.model_validate(
        {"id": "j", "name": "J", "trigger": "Signed Up", "steps": list(steps), **overrides}
    )
    return Journey(definition=definition, templates={"hello": HELLO})


def _states(*steps: Any, **overrides: Any) -> dict[str, dict[str, Any]]:
    states: dict[str, dict[str, Any]] = compile_journey(_journey(*steps, **overrides))["States"]
    return states


def _targets(state: dict[str, Any]) -> list[str]:
    targets = [state.get("Next"), state.get("Default")]
    targets += [c["Next"] for c in state.get("Choices", [])] + [c["Next"] for c in state.get("Catch", [])]
    return [t for t in targets if t is not None]


@pytest.fixture(scope="module")
def cart() -> Journey:
    return load_journey(JOURNEYS / "cart_abandonment")


def test_every_step_type_has_an_emitter() -> None:
    assert set(EMITTERS) == set(STEP_TYPES)


# -- the example journeys --------------------------------------------------------------------------


def test_cart_abandonment_waits_emails_then_waits_for_checkout_of_the_same_cart(cart: Journey) -> None:
    machine = compile_journey(cart)
    states = machine["States"]

    assert machine["StartAt"] == "wait-1h"
    assert states["wait-1h"] == {"Type": "Wait", "Seconds": 3600, "Next": "send-email-cart-reminder"}
    assert states["send-email-cart-reminder"]["Next"] == "checkout"
    checkout = states["checkout"]
    assert checkout["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert checkout["TimeoutSeconds"] == 23 * 3600
    assert checkout["Parameters"]["Payload"]["spec"]["where"] == {"cart_id": {"same_as_trigger": True}}
    assert checkout["Next"] == "checkout.on_event.exit"
    assert checkout["Catch"][0]["Next"] == "checkout.on_timeout.send-push-cart-reminder"
    assert states["checkout.on_timeout.send-push-cart-reminder"]["Parameters"]["Payload"]["channel"] == "push"
    assert states["checkout.on_timeout.send-push-cart-reminder"]["End"] is True


@pytest.mark.parametrize("journey", load_journeys(JOURNEYS), ids=lambda j: j.definition.id)
def test_every_transition_of_the_example_journeys_names_a_state(journey: Journey) -> None:
    machine = compile_journey(journey)
    states = machine["States"]

    assert machine["StartAt"] in states
    for name, state in states.items():
        assert 0 < len(name) <= 80
        assert set(_targets(state)) <= set(states), name
        ends = state.get("End") is True or state["Type"] in ("Succeed", "Choice") or "Next" in state
        assert ends, name


@pytest.mark.parametrize("journey", load_journeys(JOURNEYS), ids=lambda j: j.definition.id)
def test_example_journeys_cost_at_most_two_states_per_step(journey: Journey) -> None:
    # A send has a second state, the Wait of a deferral, visited only when the gate defers it.
    steps = list(journey.definition.walk())
    states = compile_journey(journey)["States"]

    assert len(states) <= 2 * len(steps) + 1


# -- one emitter per step type ---------------------------------------------------------------------


def test_wait_is_one_wait_state() -> None:
    states = _states({"wait": "90m"}, SEND)

    assert states["wait-90m"] == {"Type": "Wait", "Seconds": 5400, "Next": "send-email-hello"}


def test_wait_until_asks_the_function_for_the_instant_then_waits_for_it() -> None:
    states = _states({"wait_until": {"time": "10:00", "days_after_entry": 30, "weekdays": ["mon"]}}, SEND)

    task, wait = states["wait-until-10-00"], states["wait-until-10-00.at"]
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Parameters"]["FunctionName"] == JOURNEY_STEPS_ARN_PLACEHOLDER == "${JourneyStepsFunctionArn}"
    assert task["Parameters"]["Payload"] == {
        "action": "wait_until",
        "journey": "j",
        "step": "wait-until-10-00",
        "spec": {"time": "10:00", "days_after_entry": 30, "weekdays": ["mon"]},
        "profileId.$": "$.profileId",
        "enteredAt.$": "$.enteredAt",
        "trigger.$": "$.trigger",
        "executionId.$": "$$.Execution.Id",
    }
    assert task["ResultSelector"] == {"until.$": "$.Payload.until"}
    assert task["ResultPath"] == "$.wait"
    assert task["Next"] == "wait-until-10-00.at"
    assert wait == {"Type": "Wait", "TimestampPath": "$.wait.until", "Next": "send-email-hello"}


def test_wait_for_parks_on_a_task_token_and_catches_the_timeout() -> None:
    states = _states(
        SEND,
        {
            "id": "w",
            "wait_for": {"event": "App Opened", "timeout": "2d", "on_event": [SEND], "on_timeout": ["exit"]},
        },
    )

    task = states["w"]
    assert task["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert task["TimeoutSeconds"] == 172800
    assert task["ResultPath"] is None
    payload = task["Parameters"]["Payload"]
    assert payload["action"] == "wait_for"
    assert payload["token.$"] == "$$.Task.Token"
    assert payload["spec"] == {"event": "App Opened", "where": {}, "timeout": 172800}
    assert task["Next"] == "w.on_event.send-email-hello"
    assert task["Catch"] == [
        {"ErrorEquals": ["States.Timeout"], "Next": "w.on_timeout.exit", "ResultPath": None}
    ]


def test_a_wait_for_with_nothing_after_it_ends_or_succeeds() -> None:
    states = _states(SEND, {"id": "w", "wait_for": {"event": "A", "timeout": "1h"}})

    assert states["w"]["End"] is True
    assert states["w"]["Catch"][0]["Next"] == END_STATE
    assert states[END_STATE] == {"Type": "Succeed"}


def test_branch_asks_for_the_path_then_chooses_on_it() -> None:
    states = _states(
        {
            "id": "plan",
            "branch": {
                "cases": [
                    {"when": {"traits": {"plan": "pro"}}, "steps": [SEND]},
                    {"when": {"journey": {"sent": "send-email-hello"}}},
                ],
                "else": ["exit"],
            },
        },
        {"wait": "1h"},
        SEND,
    )

    task, choice = states["plan"], states["plan.choice"]
    assert task["Parameters"]["Payload"]["action"] == "branch"
    assert task["Parameters"]["Payload"]["spec"] == {
        "cases": [
            {"when": {"traits": {"plan": {"equals": "pro"}}, "trigger": {}}},
            {"when": {"traits": {}, "trigger": {}, "journey": {"sent": "send-email-hello"}}},
        ]
    }
    assert task["ResultSelector"] == {"path.$": "$.Payload.path"}
    assert task["ResultPath"] == "$.decision"
    assert task["Next"] == "plan.choice"
    assert choice == {
        "Type": "Choice",
        "Choices": [
            {"Variable": "$.decision.path", "StringEquals": "case-0", "Next": "plan.case-0.send-email-hello"},
            {"Variable": "$.decision.path", "StringEquals": "case-1", "Next": "wait-1h"},
        ],
        "Default": "plan.else.exit",
    }


def test_a_branch_without_else_defaults_to_the_step_after_it() -> None:
    states = _states(
        {"id": "b", "branch": {"cases": [{"when": {"traits": {"vip": True}}, "steps": [SEND]}]}},
        {"wait": "1h"},
    )

    assert states["b.choice"]["Default"] == "wait-1h"


def test_split_chooses_among_its_paths_the_last_being_the_default() -> None:
    states = _states(
        {
            "id": "s",
            "split": {
                "paths": [{"weight": 1, "steps": [SEND]}, {"weight": 2}, {"weight": 3, "steps": ["exit"]}]
            },
        }
    )

    task, choice = states["s"], states["s.choice"]
    assert task["Parameters"]["Payload"]["spec"] == {
        "paths": [{"weight": 1.0}, {"weight": 2.0}, {"weight": 3.0}]
    }
    assert [c["StringEquals"] for c in choice["Choices"]] == ["path-0", "path-1"]
    assert choice["Choices"][1]["Next"] == END_STATE  # an empty last path: the run ends
    assert choice["Default"] == "s.path-2.exit"


def test_send_invokes_the_deliver_placeholder_with_the_step_id_and_template_content(cart: Journey) -> None:
    states = compile_journey(cart)["States"]

    task = states["send-email-cart-reminder"]
    assert task["Parameters"]["FunctionName"] == DELIVER_ARN_PLACEHOLDER == "${DeliverFunctionArn}"
    payload = task["Parameters"]["Payload"]
    assert payload["step"] == "send-email-cart-reminder"
    assert payload["journey"] == "cart_abandonment"
    assert payload["goal"] == "Order Completed"
    email = cart.templates["cart-reminder"].email
    assert email is not None and email.layout == "default"
    assert payload["content"] == email.model_dump(exclude_none=True, exclude={"layout"})
    # The layout and the partials it renders travel with the content: a running execution keeps them.
    assert payload["layout"] == cart.layouts["default"]
    assert set(payload["partials"]) == {"footer.html", "footer.txt"}
    assert payload["partials"]["footer.txt"] == cart.partials["footer.txt"]
    assert payload["executionId.$"] == "$$.Execution.Id"
    assert "topic" not in payload and "quietHours" not in payload  # the policy's defaults apply


def test_send_is_one_task_on_a_token_deliver_answers_then_the_next_step(cart: Journey) -> None:
    # One state transition per send on its normal path: no Choice on the gate's answer, and no
    # Succeed after a send that ends the run.
    states = compile_journey(cart)["States"]

    task = states["send-email-cart-reminder"]
    assert task["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert task["Parameters"]["Payload"]["token.$"] == "$$.Task.Token"
    assert task["ResultPath"] is None  # the outcome is in the message log; the input goes on
    assert task["Next"] == "checkout"
    # A token never answered fails the run (counted failed) rather than waiting for ever.
    assert 0 < task["TimeoutSeconds"] <= 3600
    last = states["checkout.on_timeout.send-push-cart-reminder"]
    assert last["End"] is True and "Next" not in last
    assert not [name for name in states if name.endswith(".sent")]
    assert END_STATE not in states  # nothing ends on a Choice or Catch in this journey


def test_a_deferred_send_waits_until_the_instant_the_gate_names_then_runs_the_gate_again(
    cart: Journey,
) -> None:
    states = compile_journey(cart)["States"]

    task = states["send-email-cart-reminder"]
    assert task["Catch"] == [
        {"ErrorEquals": [DEFERRED_ERROR], "ResultPath": "$.defer", "Next": "send-email-cart-reminder.defer"}
    ]
    assert DEFERRED_ERROR == "Continuum.Deferred"
    assert states["send-email-cart-reminder.defer"] == {
        "Type": "Wait",
        "TimestampPath": "$.defer.Cause",
        "Next": "send-email-cart-reminder",
    }


def test_a_deferral_is_never_retried_though_states_task_failed_matches_it(cart: Journey) -> None:
    # States.TaskFailed matches every error but States.Timeout, Continuum.Deferred too; the first
    # retrier that matches an error applies, so the deferral's (MaxAttempts 0) must come first, or a
    # deferral would run the gate again at once, twice, before the Catch.
    retry = compile_journey(cart)["States"]["send-email-cart-reminder"]["Retry"]

    first = next(i for i, rule in enumerate(retry) if DEFERRED_ERROR in rule["ErrorEquals"])
    assert retry[first] == {"ErrorEquals": [DEFERRED_ERROR], "MaxAttempts": 0}
    task_failed = next(i for i, rule in enumerate(retry) if "States.TaskFailed" in rule["ErrorEquals"])
    assert first < task_failed


def test_the_send_payload_carries_the_topic_and_the_journeys_quiet_hours() -> None:
    quiet = _states(
        {"send": {"channel": "email", "template": "hello", "topic": "product_updates"}},
        quiet_hours={"start": "22:00", "end": "07:00"},
    )
    none = _states(SEND, quiet_hours=False)

    payload = quiet["send-email-hello"]["Parameters"]["Payload"]
    assert payload["topic"] == "product_updates"
    assert payload["quietHours"] == {"start": "22:00", "end": "07:00"}
    assert none["send-email-hello"]["Parameters"]["Payload"]["quietHours"] is False


def test_a_step_id_spelling_a_sends_wait_state_is_refused() -> None:
    with pytest.raises(ValueError, match="clash"):
        _states(SEND, {"id": "send-email-hello.defer", "wait": "1h"})


def test_update_is_one_task_whose_result_is_discarded() -> None:
    states = _states({"update": {"set": {"onboarded": True}, "unset": ["trial"]}}, SEND)

    task = states["update"]
    assert task["Parameters"]["Payload"]["action"] == "update"
    assert task["Parameters"]["Payload"]["spec"] == {"set": {"onboarded": True}, "unset": ["trial"]}
    assert task["ResultPath"] is None
    assert task["Next"] == "send-email-hello"


def test_exit_is_a_pass_that_marks_the_output_and_ends() -> None:
    states = _states(SEND, "exit")

    assert states["exit"] == {"Type": "Pass", "Result": {"step": "exit"}, "ResultPath": "$.exit", "End": True}


def test_every_task_retries_transient_lambda_errors() -> None:
    states = _states(
        {"wait_until": {"trait": "renews_at"}},
        {"wait_for": {"event": "A", "timeout": "1h"}},
        {"branch": {"cases": [{"when": {"traits": {"a": 1}}}]}},
        {"split": {"paths": [{"weight": 1}, {"weight": 1}]}},
        SEND,
        {"update": {"set": {"a": 1}}},
    )

    tasks = [state for state in states.values() if state["Type"] == "Task"]
    assert len(tasks) == 6
    for task in tasks:
        retried = {error for rule in task["Retry"] for error in rule["ErrorEquals"]}
        assert {"Lambda.TooManyRequestsException", "Lambda.ServiceException"} <= retried
        assert "States.Timeout" not in retried


def test_given_arns_replace_the_placeholders() -> None:
    journey = _journey({"update": {"set": {"a": 1}}}, SEND)

    machine = compile_journey(journey, deliver_arn="arn:deliver", steps_arn="arn:steps")

    assert machine["States"]["update"]["Parameters"]["FunctionName"] == "arn:steps"
    assert machine["States"]["send-email-hello"]["Parameters"]["FunctionName"] == "arn:deliver"
    assert "${" not in str(machine)


def test_a_property_name_ending_in_a_path_marker_is_refused() -> None:
    with pytest.raises(ValueError, match=r"step 'update': the name 'x\.\$' ends with"):
        _states({"update": {"set": {"x.$": "$.profileId"}}}, SEND)


def test_state_names_are_the_step_ids_so_inserting_a_step_keeps_the_others() -> None:
    before = _states({"wait": "1h"}, SEND)
    after = _states({"wait": "1h"}, {"update": {"set": {"a": 1}}}, SEND)

    assert set(before) <= set(after)
    assert after["send-email-hello"]["Parameters"]["Payload"]["step"] == "send-email-hello"


# -- the send gate's exit event --------------------------------------------------------------------


def _gate(**overrides: Any) -> str | None:
    return gate_event(_journey(SEND, **overrides).definition)


def test_the_gate_rechecks_the_goal_or_an_unconditional_exit_event() -> None:
    assert _gate(goal={"event": "Order Completed", "within": "7d"}) == "Order Completed"
    assert _gate(exit_on=["Unsubscribed"]) == "Unsubscribed"
    assert _gate() is None


def test_the_gate_does_not_recheck_an_event_that_is_also_the_trigger_or_has_conditions() -> None:
    assert _gate(trigger="Order Completed", exit_on=["Order Completed"]) is None
    assert _gate(exit_on=[{"event": "Cart Emptied", "where": {"cart_id": {"same_as_trigger": True}}}]) is None
    assert _gate(goal={"event": "Order Completed", "within": "7d", "exit_on_goal": False}) is None


@pytest.mark.parametrize(
    ("compound", "helper"),
    [
        (
            {"id": "plan", "branch": {"cases": [{"when": {"traits": {"plan": "pro"}}, "steps": [SEND]}]}},
            "plan.choice",
        ),
        ({"id": "w", "wait_until": {"time": "10:00"}}, "w.at"),
    ],
)
def test_a_step_id_naming_another_steps_helper_state_is_refused(
    compound: dict[str, Any], helper: str
) -> None:
    # An author's id `plan.choice` used to overwrite the branch's Choice state silently: the branch
    # never chose, and `validate` said the journey was fine.
    journey = _journey(compound, {"id": helper, "wait": "1h"}, SEND)

    with pytest.raises(ValueError, match=helper.replace(".", r"\.")):
        compile_journey(journey)
