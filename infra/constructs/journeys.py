"""One Step Functions Standard state machine per journey, compiled from its definition."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

from aws_cdk import Acknowledgment, Aws, CfnResource, Fn, Names, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from shared.journeys.compiler import (
    DELIVER_ARN_PLACEHOLDER,
    JOURNEY_STEPS_ARN_PLACEHOLDER,
    JOURNEY_STEPS_FUNCTION,
    compile_journey,
)

__all__ = ["JOURNEY_STEPS_FUNCTION", "JourneyStateMachines"]
from shared.models.journey import Journey

# "${DeliverFunctionArn}" → "DeliverFunctionArn": the compiler owns the placeholder's name.
DELIVER_ARN_VARIABLE = DELIVER_ARN_PLACEHOLDER.removeprefix("${").removesuffix("}")
JOURNEY_STEPS_ARN_VARIABLE = JOURNEY_STEPS_ARN_PLACEHOLDER.removeprefix("${").removesuffix("}")
LOG_RETENTION = logs.RetentionDays.ONE_MONTH


def _stack_instance_id() -> str:
    """The UUID at the end of the stack's ARN (arn:...:stack/<name>/<uuid>): new for each stack created."""
    return Fn.select(2, Fn.split("/", Aws.STACK_ID))


class JourneyStateMachines(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        journeys: Sequence[Journey],
        send_gate: lambda_.IFunction,
        journey_steps: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        self._journeys = list(journeys)
        self.machines: dict[str, sfn.StateMachine] = {}
        for journey in self._journeys:
            journey_id = journey.definition.id
            machine_scope = Construct(self, journey_id)
            log_group = logs.LogGroup(
                machine_scope,
                "Logs",
                # Under /aws/vendedlogs/ Step Functions needs no entry in the account's CloudWatch Logs
                # resource policy, whose 5,120-character limit a few dozen journeys would exhaust.
                # The log group is retained (its logs outlive the stack), so its name ends with this
                # stack instance's id: a rolled-back or deleted stack's group never blocks the next one.
                log_group_name=Fn.join(
                    "",
                    ["/aws/vendedlogs/states/", Names.unique_id(machine_scope), "-", _stack_instance_id()],
                ),
                retention=LOG_RETENTION,
            )
            machine = sfn.StateMachine(
                machine_scope,
                "StateMachine",
                comment=f"Continuum journey {journey_id}: {journey.definition.name}",
                state_machine_type=sfn.StateMachineType.STANDARD,
                # The same compiled definition the local runtime runs; only the ARN is substituted.
                definition_body=sfn.DefinitionBody.from_string(json.dumps(compile_journey(journey))),
                definition_substitutions={
                    DELIVER_ARN_VARIABLE: send_gate.function_arn,
                    JOURNEY_STEPS_ARN_VARIABLE: journey_steps.function_arn,
                },
                # Execution data stays out of the logs: it is a profile's id and its trigger event,
                # personal data the message log already records where it is needed.
                logs=sfn.LogOptions(
                    destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False
                ),
                tracing_enabled=True,
            )
            # The definition invokes the unqualified ARN only: grant exactly that, not CDK's
            # grant_invoke, which also grants every version and alias (`<arn>:*`).
            invoked = [send_gate.function_arn]
            if journey_steps is not send_gate:
                invoked.append(journey_steps.function_arn)
            machine.add_to_role_policy(
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=invoked)
            )
            Validations.of(machine.role).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                    reason="X-Ray tracing and CloudWatch Logs log delivery (logs:CreateLogDelivery and "
                    "friends) have no resource-level permissions, so the statements CDK adds for them "
                    "use '*'.",
                )
            )
            self.machines[journey_id] = machine

    def grant_control(self, function: lambda_.Function) -> None:
        """Start executions, and stop / describe them (the journey router)."""
        stack = Stack.of(self)
        assert function.role is not None
        for machine in self.machines.values():
            machine.grant_start_execution(function)
            # Execution names are made at run time, hence the wildcard; written out here rather than
            # with grant_execution so that the acknowledgment below names exactly this resource.
            executions = (
                f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
                f"execution:{machine.state_machine_name}:*"
            )
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["states:StopExecution", "states:DescribeExecution"], resources=[executions]
                )
            )
            logical_id = stack.resolve(cast(CfnResource, machine.node.default_child).logical_id)
            finding = (
                f"arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<{logical_id}.Name>:*"
            )
            Validations.of(function.role).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{finding}]",
                    reason="Execution names are made at run time (one per profile and entry); the "
                    "wildcard is limited to the executions of this one state machine.",
                )
            )

    def catalogue(self) -> str:
        """JSON list of {id, trigger, goal, stateMachineArn}, with the ARNs resolved at deploy time."""
        return Stack.of(self).to_json_string(
            [
                {
                    "id": journey.definition.id,
                    "trigger": journey.definition.trigger.event,
                    "goal": journey.definition.goal.event if journey.definition.goal else None,
                    "stateMachineArn": self.machines[journey.definition.id].state_machine_arn,
                }
                for journey in self._journeys
            ]
        )
