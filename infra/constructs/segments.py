"""Segments in the cloud: the catalogue in the shared layer, the re-check schedules (an EventBridge
Scheduler group and the role Scheduler invokes the segments function with), and the ad platforms'
credentials (one Secrets Manager secret per platform, filled in by the operator)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from aws_cdk import Acknowledgment, ArnFormat, Aws, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.topology import (
    AD_PLATFORM_SECRET_ENVS,
    AD_PLATFORMS_ENV,
    RECHECK_ROLE_ARN_ENV,
    RECHECK_SCHEDULE_GROUP_ENV,
)

# The segment catalogue's path in the shared layer (the functions read /opt/<this>).
SEGMENTS_IN_LAYER = "continuum/segments.json"
# The ad platforms the audiences function calls in the cloud (locally: `local`, the engine's recorder).
LIVE_AD_PLATFORMS = "live"


def segment_catalogue_file(segments_dir: Path) -> bytes:
    """The catalogue of `segments_dir` as the functions read it, built at synth (a missing folder is an
    empty catalogue): the same writer the local runtime uses."""
    from shared.segments.catalogue import SegmentCatalogue, load_segments, write_segment_catalogue

    catalogue = load_segments(segments_dir) if segments_dir.is_dir() else SegmentCatalogue()
    with tempfile.TemporaryDirectory() as folder:
        return write_segment_catalogue(catalogue, Path(folder) / "segments.json").read_bytes()


class RecheckSchedules(Construct):
    """The schedule group re-checks go in, and the role EventBridge Scheduler assumes to invoke the
    function that created them (the segments function schedules its own re-checks)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.group = scheduler.CfnScheduleGroup(self, "Group")
        self.role = iam.Role(
            self,
            "InvokeRole",
            # Only this account's schedules may assume it (the confused-deputy guard AWS documents for
            # Scheduler's execution role).
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="EventBridge Scheduler: invoke the segments function for a segment re-check",
        )

    @property
    def schedules_arn(self) -> str:
        """Every schedule of the group (their names are derived from profile ids at run time)."""
        return Stack.of(self).format_arn(
            service="scheduler",
            resource="schedule",
            resource_name=f"{self.group.ref}/*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )

    def grant(self, function: lambda_.Function) -> None:
        """`function` may create and move schedules in the group, targeting itself through the role."""
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function.function_arn])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["scheduler:CreateSchedule", "scheduler:UpdateSchedule"],
                resources=[self.schedules_arn],
            )
        )
        assert function.role is not None
        self.role.grant_pass_role(function.role)
        function.add_environment(RECHECK_SCHEDULE_GROUP_ENV, self.group.ref)
        function.add_environment(RECHECK_ROLE_ARN_ENV, self.role.role_arn)
        assert function.role is not None
        Validations.of(function.role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:"
                f"<AWS::AccountId>:schedule/<{Stack.of(self).get_logical_id(self.group)}>/*]",
                reason="One re-check schedule per profile, named from the profile id at run time: the "
                "wildcard covers the schedules of the one re-check group only.",
            )
        )


class AdPlatformCredentials(Construct):
    """One secret per ad platform, holding its credentials as JSON (see the README: the operator puts
    the real value with `aws secretsmanager put-secret-value`). Created with a random placeholder, which
    the audiences function refuses as not configured."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.secrets: dict[str, secretsmanager.Secret] = {}
        for platform in AD_PLATFORM_SECRET_ENVS:
            secret = secretsmanager.Secret(
                self,
                platform,
                description=f"Continuum ad audiences: {platform} credentials (JSON; see the README)",
            )
            Validations.of(secret).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-SMG4",
                    reason="An ad platform's access token is issued by the platform (Meta system-user "
                    "token, Google OAuth credentials), not generated here: it is rotated on the platform "
                    "and put into this secret by the operator.",
                )
            )
            self.secrets[platform] = secret

    def grant(self, function: lambda_.Function) -> None:
        for platform, variable in AD_PLATFORM_SECRET_ENVS.items():
            self.secrets[platform].grant_read(function)
            function.add_environment(variable, self.secrets[platform].secret_arn)
        function.add_environment(AD_PLATFORMS_ENV, LIVE_AD_PLATFORMS)
