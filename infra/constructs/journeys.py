"""Journeys in the cloud: one Step Functions Standard state machine per journey, compiled from its
definition, each with a version per definition and the alias `live` that new executions start on.

Safe redeploys: a changed definition changes the state machine's revision id, which replaces its
`AWS::StepFunctions::StateMachineVersion` (a new version is published), and the alias moves all new
executions to it. An execution keeps the version it started on to its end, even after the old version
resource is deleted: Step Functions does not stop a deleted version's executions (DeleteStateMachineVersion),
and deleting it keeps a journey far from the 1,000 versions a state machine may have.

Scale: a journey adds three resources (state machine, version, alias); the role and the log group
are shared, the alarms are grouped (infra/constructs/monitoring.py), and every grant on the journeys is
one statement on this stack's name prefix, so a hundred journeys fit in CloudFormation's 500
resources and in IAM's policy size limits.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Acknowledgment, Aws, Fn, Names, Stack, Token, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from shared.journeys.catalogue import write_catalogue
from shared.journeys.compiler import DELIVER_ARN_PLACEHOLDER, JOURNEY_STEPS_ARN_PLACEHOLDER, compile_journey
from shared.models.journey import Journey

LOG_RETENTION = logs.RetentionDays.ONE_MONTH
# The alias the journey router starts executions on (JOURNEY_ALIAS).
ALIAS = "live"
# Where the catalogue is in the shared layer: /opt/<this> in a function (JOURNEY_CATALOGUE).
CATALOGUE_IN_LAYER = "continuum/journeys.json"

# Step Functions: a state machine's name is at most 80 characters of [A-Za-z0-9_-]. A journey id is at
# most 63 (shared/models/journey.py), which leaves 16 for the stack's part of the name, `_` included.
MAX_STATE_MACHINE_NAME = 80
MAX_JOURNEY_ID = 63
_STACK_PART = MAX_STATE_MACHINE_NAME - MAX_JOURNEY_ID - 1


def _variable(placeholder: str) -> str:
    """ "${DeliverFunctionArn}" → "DeliverFunctionArn": the compiler owns the placeholders' names."""
    return placeholder.removeprefix("${").removesuffix("}")


DELIVER_ARN_VARIABLE = _variable(DELIVER_ARN_PLACEHOLDER)
STEPS_ARN_VARIABLE = _variable(JOURNEY_STEPS_ARN_PLACEHOLDER)


def name_prefix(stack_name: str) -> str:
    """What every journey's state machine name starts with: `<stack name>_`. A CloudFormation stack
    name has no `_`, so no other stack's machines share the prefix (a stack `Continuum-Staging` is
    `Continuum-Staging_…`, not `Continuum_…`), and a grant or an event rule on it covers exactly this
    stack's journeys. A stack name too long for the limit is cut and made unique with its hash."""
    if Token.is_unresolved(stack_name):
        raise ValueError("journey state machine names need a stack name known at synth")
    if len(stack_name) > _STACK_PART:
        digest = hashlib.sha256(stack_name.encode()).hexdigest()[:6]
        stack_name = f"{stack_name[: _STACK_PART - len(digest) - 1]}-{digest}"
    return f"{stack_name}_"


def state_machine_name(stack_name: str, journey_id: str) -> str:
    """The journey's state machine name, so its ARN (and its alias's) is derivable from the catalogue."""
    name = name_prefix(stack_name) + journey_id
    if len(name) > MAX_STATE_MACHINE_NAME or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"journey {journey_id!r}: state machine name {name!r} is not a valid name")
    return name


def arn_prefix() -> str:
    """arn:<partition>:states:<region>:<account>:stateMachine: (JOURNEY_STATE_MACHINE_ARN_PREFIX)."""
    return f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:stateMachine:"


def catalogue_file(journeys: Sequence[Journey], names: Mapping[str, str]) -> bytes:
    """The catalogue as the functions read it, built at synth with the catalogue module's own writer."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "journeys.json"
        write_catalogue(journeys, names, path)
        return path.read_bytes()


def _stack_instance_id() -> str:
    """The UUID at the end of the stack's ARN (arn:...:stack/<name>/<uuid>): new for each stack created."""
    return Fn.select(2, Fn.split("/", Aws.STACK_ID))


class JourneyStateMachines(Construct):
    """`task_functions`: the functions a definition's placeholders stand for (variable → function),
    e.g. {"DeliverFunctionArn": deliver, "JourneyStepsFunctionArn": journey-steps}."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        journeys: Sequence[Journey],
        names: Mapping[str, str],
        task_functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        self.name_prefix = name_prefix(Stack.of(self).stack_name)
        self.machines: dict[str, sfn.StateMachine] = {}
        self.versions: dict[str, sfn.CfnStateMachineVersion] = {}
        self.aliases: dict[str, sfn.CfnStateMachineAlias] = {}
        if not journeys:
            return
        # One role for every journey: they all invoke the same functions.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Continuum journeys: invoke the journey functions, log, trace",
        )
        Validations.of(self.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray tracing and CloudWatch Logs log delivery (logs:CreateLogDelivery and "
                "friends) have no resource-level permissions, so the statements CDK adds for them "
                "use '*'.",
            )
        )
        # One log group for every journey: each log event names its execution (`execution_arn`).
        log_group = logs.LogGroup(
            self,
            "Logs",
            # Under /aws/vendedlogs/ Step Functions needs no entry in the account's CloudWatch Logs
            # resource policy (5,120 characters). The log group is retained (its logs outlive the
            # stack), so its name ends with this stack instance's id: a rolled-back or deleted stack's
            # group never blocks the next one.
            log_group_name=Fn.join(
                "", ["/aws/vendedlogs/states/", Names.unique_id(self), "-", _stack_instance_id()]
            ),
            retention=LOG_RETENTION,
        )
        invoked: set[str] = set()
        # The definitions go to S3 as assets, not into the template: a journey's definition is several
        # KB (more once escaped into a template string), and CloudFormation takes at most 1 MB of
        # template. CDK copies each file into the cloud assembly when the state machine is built.
        definitions = Path(tempfile.mkdtemp(prefix="continuum-journeys-"))
        try:
            for journey in journeys:
                journey_id = journey.definition.id
                definition = json.dumps(compile_journey(journey))
                definition_file = definitions / f"{journey_id}.asl.json"
                definition_file.write_text(definition, encoding="utf-8")
                used = {
                    variable
                    for variable in (DELIVER_ARN_VARIABLE, STEPS_ARN_VARIABLE)
                    if "${" + variable + "}" in definition
                }
                missing = sorted(used - set(task_functions))
                if missing:
                    raise ValueError(
                        f"journey {journey_id}: its steps invoke {missing}, "
                        "which no topology function stands for"
                    )
                invoked |= used
                machine_scope = Construct(self, journey_id)
                machine = sfn.StateMachine(
                    machine_scope,
                    "StateMachine",
                    state_machine_name=names[journey_id],
                    comment=f"Continuum journey {journey_id}: {journey.definition.name}",
                    state_machine_type=sfn.StateMachineType.STANDARD,
                    # The same compiled definition the local runtime runs; only the ARNs are substituted.
                    definition_body=sfn.DefinitionBody.from_file(
                        str(definition_file), display_name=f"journey {journey_id}"
                    ),
                    definition_substitutions={v: task_functions[v].function_arn for v in sorted(used)},
                    role=self.role,
                    # Execution data stays out of the logs: it is a profile's id and its trigger event,
                    # personal data the message log already records where it is needed.
                    logs=sfn.LogOptions(
                        destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False
                    ),
                    tracing_enabled=True,
                )
                # A new version whenever the definition (so the revision id) changes: the revision id is
                # immutable on a version, so CloudFormation replaces it.
                version = sfn.CfnStateMachineVersion(
                    machine_scope,
                    "Version",
                    state_machine_arn=machine.state_machine_arn,
                    state_machine_revision_id=machine.state_machine_revision_id,
                    description=f"Continuum journey {journey_id}, as deployed",
                )
                alias = sfn.CfnStateMachineAlias(
                    machine_scope,
                    "Alias",
                    name=ALIAS,
                    description=f"Continuum journey {journey_id}: the version new entries start on",
                    routing_configuration=[
                        sfn.CfnStateMachineAlias.RoutingConfigurationVersionProperty(
                            state_machine_version_arn=version.attr_arn, weight=100
                        )
                    ],
                )
                self.machines[journey_id] = machine
                self.versions[journey_id] = version
                self.aliases[journey_id] = alias
        finally:
            shutil.rmtree(definitions)  # copied into the cloud assembly by then
        # The definitions invoke the unqualified ARNs only: grant exactly those, not CDK's grant_invoke,
        # which also grants every version and alias (`<arn>:*`).
        arns = list(dict.fromkeys(task_functions[v].function_arn for v in sorted(invoked)))
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=arns)
        )

    @property
    def _machines_arn(self) -> str:
        """Every journey state machine of this stack, with its versions and aliases."""
        return f"{arn_prefix()}{self.name_prefix}*"

    @property
    def _executions_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:execution:{self.name_prefix}*"

    def _acknowledge(self, function: lambda_.Function, resource: str, reason: str) -> None:
        assert function.role is not None
        # cdk-nag names the resource with pseudo parameters as <AWS::...>.
        finding = (
            resource.replace(Aws.PARTITION, "<AWS::Partition>")
            .replace(Aws.REGION, "<AWS::Region>")
            .replace(Aws.ACCOUNT_ID, "<AWS::AccountId>")
        )
        Validations.of(function.role).acknowledge(
            Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{finding}]", reason=reason)
        )

    def grant_control(self, function: lambda_.Function) -> None:
        """Start executions (on the alias), and stop / describe them: the journey router, erasure."""
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[self._machines_arn])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:StopExecution", "states:DescribeExecution"], resources=[self._executions_arn]
            )
        )
        self._acknowledge(
            function,
            self._machines_arn,
            f"The journeys' state machines of this stack and their aliases: every name starts with "
            f"{self.name_prefix!r}, which no other stack's can (stack names have no '_'). One statement "
            "for any number of journeys keeps the role under IAM's policy size limit.",
        )
        self._acknowledge(
            function,
            self._executions_arn,
            "Execution names are made at run time (one per profile and entry); the wildcard is limited "
            "to the executions of this stack's journeys (state machine names starting "
            f"{self.name_prefix!r}).",
        )

    def grant_resume(self, function: lambda_.Function) -> None:
        """Resume an execution parked on a task token (wait_for). SendTaskSuccess has no resource-level
        permissions (Service Authorization Reference): '*' is the only resource it takes; the
        function's role acknowledges it (infra/constructs/function_factory.py)."""
        function.add_to_role_policy(iam.PolicyStatement(actions=["states:SendTaskSuccess"], resources=["*"]))

    def grant_fail(self, function: lambda_.Function) -> None:
        """Fail a task with an error the state machine catches (a send's deferral). Like
        SendTaskSuccess, SendTaskFailure takes no resource but '*' (acknowledged on the role)."""
        function.add_to_role_policy(iam.PolicyStatement(actions=["states:SendTaskFailure"], resources=["*"]))
