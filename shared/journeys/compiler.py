"""Journey definition → graph → Amazon States Language, one emitter per step type.

State names are step ids, so they are stable across edits and feed the message keys
(`executionId#stepId`). Each step costs one or two state transitions (at $25 per million, the
whole cost of a journey): a Wait, a Task, or a Task and the Wait / Choice that acts on its answer.
A send is one Task (its deferral's Wait and second run of the gate only when the gate defers it).
Exits on events are not states: the journey router stops the execution, and the send gate
re-checks the exit event before every send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.journeys.graph import Graph, Node, lower
from shared.models.journey import (
    BranchStep,
    Journey,
    JourneyDefinition,
    SendStep,
    SplitStep,
    StepType,
    WaitForStep,
    WaitStep,
)
from shared.models.message import DEFERRED_ERROR

# Function ARNs substituted at deploy time (CDK definition substitutions) or by the local runtime,
# so the compiled definition is the same artifact for both backends.
DELIVER_ARN_PLACEHOLDER = "${DeliverFunctionArn}"
JOURNEY_STEPS_ARN_PLACEHOLDER = "${JourneyStepsFunctionArn}"
# The state a Choice or Catch goes to when the path it picks is the end of the run. Step ids are
# lower-case, so no step can be named this.
END_STATE = "End"

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
LAMBDA_INVOKE_WAIT_FOR_TOKEN = "arn:aws:states:::lambda:invoke.waitForTaskToken"
# Transient Lambda errors, retried with backoff as AWS recommends for the lambda:invoke integration.
_LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
RETRY: list[dict[str, Any]] = [
    {"ErrorEquals": _LAMBDA_TRANSIENT, "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2},
    {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 5, "MaxAttempts": 2},
]
# A send step's token is answered by the invocation it is handed to (deliver's run, with its own
# retries, takes seconds): far longer without an answer is a bug, failed rather than left hanging.
SEND_TIMEOUT_SECONDS = 3600
# The execution's context, as every Task payload carries it (the execution input is the state:
# every Task's result goes to a path of its own or nowhere).
_CONTEXT = {
    "profileId.$": "$.profileId",
    "enteredAt.$": "$.enteredAt",
    "trigger.$": "$.trigger",
    "executionId.$": "$$.Execution.Id",
}


@dataclass(frozen=True)
class EmitContext:
    journey: Journey
    deliver_arn: str
    steps_arn: str

    @property
    def definition(self) -> JourneyDefinition:
        return self.journey.definition


States = dict[str, dict[str, Any]]
Emitter = Callable[[Node, EmitContext], States]


def helper_state(step_id: str, suffix: str) -> str:
    """The name of a step's second state (`<id>.at`, `<id>.choice`)."""
    return f"{step_id}.{suffix}"


def _then(state: dict[str, Any], target: str | None) -> dict[str, Any]:
    """`Next: target`, or the end of the run."""
    if target is None:
        state["End"] = True
    else:
        state["Next"] = target
    return state


def _target(target: str | None) -> str:
    """A transition target for Choice and Catch, which cannot end the run themselves."""
    return END_STATE if target is None else target


def _no_path_keys(value: Any, where: str) -> None:
    """In Parameters, a key ending in `.$` is read as a path: no spec may contain one."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if str(key).endswith(".$"):
                raise ValueError(
                    f"{where}: the name {key!r} ends with '.$', which Step Functions reads as a path"
                )
            _no_path_keys(inner, where)
    elif isinstance(value, list):
        for inner in value:
            _no_path_keys(inner, where)


def steps_task(node: Node, context: EmitContext, *, token: bool = False) -> dict[str, Any]:
    """A Task invoking the journey-steps function with the common payload for this step."""
    spec = node.step.spec()
    _no_path_keys(spec, f"journey {context.definition.id} step {node.id!r}")
    payload: dict[str, Any] = {
        "action": node.type,
        "journey": context.definition.id,
        "step": node.id,
        "spec": spec,
        **_CONTEXT,
    }
    if token:
        payload["token.$"] = "$$.Task.Token"
    return {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE_WAIT_FOR_TOKEN if token else LAMBDA_INVOKE,
        "Parameters": {"FunctionName": context.steps_arn, "Payload": payload},
        "Retry": RETRY,
    }


# -- emitters --------------------------------------------------------------------------------------


def emit_wait(node: Node, context: EmitContext) -> States:
    step = node.step
    assert isinstance(step, WaitStep)
    return {node.id: _then({"Type": "Wait", "Seconds": step.wait}, node.next)}


def emit_wait_until(node: Node, context: EmitContext) -> States:
    """The function works out the instant in the recipient's time zone; a Wait sleeps until it."""
    at = helper_state(node.id, "at")
    task = steps_task(node, context)
    task["ResultSelector"] = {"until.$": "$.Payload.until"}
    task["ResultPath"] = "$.wait"
    task["Next"] = at
    return {node.id: task, at: _then({"Type": "Wait", "TimestampPath": "$.wait.until"}, node.next)}


def emit_wait_for(node: Node, context: EmitContext) -> States:
    """Parked on a task token (no polling): the router (or the function itself, when the event is
    already there) completes the token; the timeout takes the on_timeout path."""
    step = node.step
    assert isinstance(step, WaitForStep)
    task = steps_task(node, context, token=True)
    task["TimeoutSeconds"] = step.wait_for.timeout
    task["ResultPath"] = None
    task["Catch"] = [
        {
            "ErrorEquals": ["States.Timeout"],
            "Next": _target(node.children["on_timeout"]),
            "ResultPath": None,
        }
    ]
    return {node.id: _then(task, node.children["on_event"])}


def _decision(node: Node, context: EmitContext, prefix: str, has_default: bool) -> States:
    """A Task that answers which path to take, then a Choice on its answer."""
    choice = helper_state(node.id, "choice")
    task = steps_task(node, context)
    task["ResultSelector"] = {"path.$": "$.Payload.path"}
    task["ResultPath"] = "$.decision"
    task["Next"] = choice
    names = [name for name in node.children if name.startswith(prefix)]
    # A split always takes one of its paths: the last one is the Default.
    choices = names if has_default else names[:-1]
    default = node.children["else"] if has_default else node.children[names[-1]]
    state = {
        "Type": "Choice",
        "Choices": [
            {"Variable": "$.decision.path", "StringEquals": name, "Next": _target(node.children[name])}
            for name in choices
        ],
        "Default": _target(default),
    }
    return {node.id: task, choice: state}


def emit_branch(node: Node, context: EmitContext) -> States:
    assert isinstance(node.step, BranchStep)
    return _decision(node, context, "case-", has_default=True)


def emit_split(node: Node, context: EmitContext) -> States:
    assert isinstance(node.step, SplitStep)
    return _decision(node, context, "path-", has_default=False)


def gate_event(definition: JourneyDefinition) -> str | None:
    """The event the send gate re-checks before a send (it ends the run if it arrived after entry):
    an exit event without conditions. One that is also the trigger cannot be told apart from the
    entry in the profile's last events, so it is left to the router."""
    candidates = [rule.event for rule in definition.exit_on if not rule.where]
    goal = definition.goal
    if goal is not None and goal.exit_on_goal and not goal.where:
        candidates.insert(0, goal.event)
    return next((event for event in candidates if event != definition.trigger.event), None)


def emit_send(node: Node, context: EmitContext) -> States:
    """The send gate (deliver), parked on a task token that deliver answers itself once the outcome
    is logged: success (sent, queued, dropped) goes straight on, one state transition. A deferral
    (quiet hours, a cap) fails the token with DEFERRED_ERROR, its cause the instant it named: the
    Catch waits on a Wait until then (no polling) and runs the gate again against the live profile;
    the router's StopExecution ends the wait when the run exits (a purchase at night)."""
    step = node.step
    assert isinstance(step, SendStep)
    defer = helper_state(node.id, "defer")
    payload: dict[str, Any] = {
        "journey": context.definition.id,
        "goal": gate_event(context.definition),
        "step": node.id,
        "channel": step.send.channel,
        "template": step.send.template,
        # content, and the layout and partials it renders (inlined: see Journey.send_content)
        **context.journey.send_content(step.send.template, step.send.channel),
        **_CONTEXT,
        "token.$": "$$.Task.Token",
    }
    if step.send.topic is not None:
        payload["topic"] = step.send.topic
    quiet_hours = context.definition.quiet_hours
    if quiet_hours is not None:
        payload["quietHours"] = False if quiet_hours is False else quiet_hours.model_dump()
    task = {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE_WAIT_FOR_TOKEN,
        "Parameters": {"FunctionName": context.deliver_arn, "Payload": payload},
        # The outcome is recorded in the message log: the state's input goes on unchanged.
        "ResultPath": None,
        # States.TaskFailed matches every error but States.Timeout, a deferral too: the first
        # retrier that matches applies, so the deferral's own, never retried, goes first.
        "Retry": [{"ErrorEquals": [DEFERRED_ERROR], "MaxAttempts": 0}, *RETRY],
        # A token never answered is a bug: the run fails (and is counted failed) instead of hanging.
        "TimeoutSeconds": SEND_TIMEOUT_SECONDS,
        "Catch": [{"ErrorEquals": [DEFERRED_ERROR], "ResultPath": "$.defer", "Next": defer}],
    }
    # The caught error's Cause is the instant the gate named.
    wait = {"Type": "Wait", "TimestampPath": "$.defer.Cause", "Next": node.id}
    return {node.id: _then(task, node.next), defer: wait}


def emit_update(node: Node, context: EmitContext) -> States:
    task = steps_task(node, context)
    task["ResultPath"] = None
    return {node.id: _then(task, node.next)}


def emit_exit(node: Node, context: EmitContext) -> States:
    """Ends the run; the output's `exit` tells the router it ended on an exit step."""
    return {node.id: {"Type": "Pass", "Result": {"step": node.id}, "ResultPath": "$.exit", "End": True}}


EMITTERS: dict[StepType, Emitter] = {
    "wait": emit_wait,
    "wait_until": emit_wait_until,
    "wait_for": emit_wait_for,
    "branch": emit_branch,
    "split": emit_split,
    "send": emit_send,
    "update": emit_update,
    "exit": emit_exit,
}


def compile_graph(graph: Graph, context: EmitContext) -> dict[str, Any]:
    states: States = {}
    for node in graph.nodes.values():
        emitted = EMITTERS[node.type](node, context)
        # An author's step id may spell another step's helper state (`plan.choice`, `w.at`): refuse
        # it rather than let one state silently replace the other.
        clash = sorted(emitted.keys() & states.keys())
        if clash:
            raise ValueError(
                f"journey {context.definition.id!r}: step id(s) {clash} clash with another step's"
                " state name (ids ending in .choice, .at or .defer are taken by branch, split,"
                " wait_until and send)"
            )
        states.update(emitted)
    if any(END_STATE in _targets(state) for state in states.values()):
        states[END_STATE] = {"Type": "Succeed"}
    definition = context.definition
    return {
        "Comment": f"Journey {definition.id}: {definition.name} (compiled by Continuum)",
        "StartAt": graph.start,
        "States": states,
    }


def _targets(state: dict[str, Any]) -> set[str]:
    targets = {state.get("Next"), state.get("Default")}
    targets |= {choice["Next"] for choice in state.get("Choices", [])}
    targets |= {catch["Next"] for catch in state.get("Catch", [])}
    return {target for target in targets if target is not None}


def compile_journey(
    journey: Journey,
    deliver_arn: str = DELIVER_ARN_PLACEHOLDER,
    steps_arn: str = JOURNEY_STEPS_ARN_PLACEHOLDER,
) -> dict[str, Any]:
    """The state machine for one journey. Execution input:
    {journey, profileId, enteredAt, trigger: {event, properties, messageId, timestamp}}."""
    context = EmitContext(journey=journey, deliver_arn=deliver_arn, steps_arn=steps_arn)
    return compile_graph(lower(journey.definition), context)
