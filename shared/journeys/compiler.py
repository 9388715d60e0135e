"""Journey definition → Amazon States Language.

Each step becomes exactly one state (a Wait, or a Task invoking the send gate), so an execution
spends one Step Functions transition per step and nothing on bookkeeping: at $25 per million
transitions that is the whole cost of a journey. Exiting on the goal is not a state either: the
journey router stops the execution, and the send gate re-checks the goal before every send.
"""

from __future__ import annotations

from typing import Any

from shared.models.journey import Journey, SendStep, WaitStep

# The send gate's ARN is substituted at deploy time (CDK definition substitution) or by the local
# runtime, so the compiled definition is the same artifact for both backends.
DELIVER_ARN_PLACEHOLDER = "${DeliverFunctionArn}"

# Transient Lambda errors, retried with backoff as AWS recommends for the lambda:invoke integration.
_LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


def state_name(index: int, step: WaitStep | SendStep) -> str:
    if isinstance(step, WaitStep):
        return f"{index + 1:02d} wait {step.wait}s"
    return f"{index + 1:02d} send {step.send.channel} {step.send.template}"


def compile_journey(journey: Journey, deliver_arn: str = DELIVER_ARN_PLACEHOLDER) -> dict[str, Any]:
    """The state machine for one journey. Execution input: {profileId, enteredAt, trigger}."""
    definition = journey.definition
    steps = definition.steps
    names = [state_name(i, step) for i, step in enumerate(steps)]
    states: dict[str, dict[str, Any]] = {}
    for i, step in enumerate(steps):
        state: dict[str, Any]
        if isinstance(step, WaitStep):
            state = {"Type": "Wait", "Seconds": step.wait}
        else:
            content = journey.templates[step.send.template].content_for(step.send.channel)
            assert content is not None  # Journey validates that every send has content
            state = {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {
                    "FunctionName": deliver_arn,
                    "Payload": {
                        "journey": definition.id,
                        "goal": definition.goal.event if definition.goal else None,
                        "step": names[i],
                        "channel": step.send.channel,
                        "template": step.send.template,
                        "content": content.model_dump(exclude_none=True),
                        "profileId.$": "$.profileId",
                        "enteredAt.$": "$.enteredAt",
                        "trigger.$": "$.trigger",
                        "executionId.$": "$$.Execution.Id",
                    },
                },
                # The execution's input stays its state: a send's result is recorded in the
                # message log, not carried along.
                "ResultPath": None,
                "Retry": [
                    {
                        "ErrorEquals": _LAMBDA_TRANSIENT,
                        "IntervalSeconds": 2,
                        "MaxAttempts": 6,
                        "BackoffRate": 2,
                    },
                    {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 5, "MaxAttempts": 2},
                ],
            }
        if i + 1 < len(steps):
            state["Next"] = names[i + 1]
        else:
            state["End"] = True
        states[names[i]] = state
    return {
        "Comment": f"Journey {definition.id}: {definition.name} (compiled by Continuum)",
        "StartAt": names[0],
        "States": states,
    }
