"""The one place a Lambda function is defined: every default shared by Continuum's functions lives here."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, Aws, Duration, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.queues import dead_letter_queue
from infra.constructs.shared_layer import SharedLayer
from infra.topology import Function

# Powertools for AWS Lambda (Python) v3, public layer for python3.12 / arm64; it carries pydantic v2,
# so neither is bundled. Version 38 is the newest found in public use (2026), not verified against AWS
# from here; it should carry aws-lambda-powertools >= 3.37 (pyproject.toml). Check the current one:
#   aws ssm get-parameter --name /aws/service/powertools/python/arm64/python3.12/latest
POWERTOOLS_LAYER_VERSION = 38
POWERTOOLS_LAYER_ARN = (
    f"arn:aws:lambda:{Aws.REGION}:017000801446:layer:"
    f"AWSLambdaPowertoolsPythonV3-python312-arm64:{POWERTOOLS_LAYER_VERSION}"
)

RUNTIME = lambda_.Runtime.PYTHON_3_12  # the runtime the Powertools layer above is built for
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
# Lambda's own retries of a failed asynchronous invocation before the event goes to the dead letters.
ASYNC_RETRY_ATTEMPTS = 2

OBSERVABILITY_ENV = {
    "POWERTOOLS_SERVICE_NAME": "continuum",
    "POWERTOOLS_METRICS_NAMESPACE": "Continuum",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


# See JourneyStateMachines.grant_resume.
_RESUMES_JOURNEYS_REASON = (
    " So has states:SendTaskSuccess (the Service Authorization Reference lists no resource type for "
    "it): the task token it is called with names the one execution step it may resume."
)
# See JourneyStateMachines.grant_fail.
_FAILS_JOURNEY_TASKS_REASON = (
    " So has states:SendTaskFailure (no resource type either): the task token names the one execution "
    "step it may fail."
)


class FunctionFactory(Construct):
    """`layer_files`: data files shipped in the shared layer (path in the layer → content)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, layer_files: Mapping[str, bytes] | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        self._layers = [
            lambda_.LayerVersion.from_layer_version_arn(self, "Powertools", POWERTOOLS_LAYER_ARN),
            SharedLayer(self, "Shared", data_files=layer_files).layer,
        ]

    def build(
        self, spec: Function, *, invoked_async: bool, environment: Mapping[str, str] | None = None
    ) -> lambda_.Function:
        """The function for `spec`, with its own role, log group and, if invoked asynchronously,
        its own dead-letter queue (exposed as `function.dead_letter_queue`)."""
        scope = Construct(self, spec.name)
        log_group = logs.LogGroup(scope, "Logs", retention=LOG_RETENTION)
        # An explicit role that may write to this log group only, instead of the managed
        # AWSLambdaBasicExecutionRole (which may create and write every log group in the account).
        role = iam.Role(
            scope,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Continuum function {spec.name}",
        )
        log_group.grant_write(role)
        # Acknowledged on the role, not the stack: any other wildcard on another resource still fails.
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) has no "
                "resource-level permissions, so the tracing statement CDK adds must use '*'."
                + (_RESUMES_JOURNEYS_REASON if spec.resumes_journeys else "")
                + (_FAILS_JOURNEY_TASKS_REASON if spec.fails_journey_tasks else ""),
            )
        )
        function = lambda_.Function(
            scope,
            "Function",
            description=spec.description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            # The handler module is the last part of spec.module; the asset is its folder.
            handler=f"{spec.module.rsplit('.', 1)[-1]}.handler",
            code=lambda_.Code.from_asset(str(spec.folder), exclude=["__pycache__", "*.pyc"]),
            layers=self._layers,
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            timeout=Duration.seconds(spec.timeout_seconds),
            memory_size=spec.memory_mb,
            environment={**OBSERVABILITY_ENV, **(environment or {})},
            dead_letter_queue=dead_letter_queue(scope, "DeadLetters") if invoked_async else None,
            retry_attempts=ASYNC_RETRY_ATTEMPTS if invoked_async else None,
        )
        Validations.of(function).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-L1",
                reason="Pinned to Python 3.12 on purpose: the public Powertools v3 layer used is the "
                "python312 build, and layer and runtime must move together.",
            )
        )
        return function
