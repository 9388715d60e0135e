"""Provider permissions that follow from a function's deployment settings.

A function that reads EMAIL_SENDER sends email as that sender; one that reads
PUSH_PLATFORM_APPLICATION_ARN pushes through that application. Deriving the grant from the setting
keeps the topology the single source of truth and scopes each grant to the configured resource.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import Acknowledgment, ArnFormat, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_


def grant_send_email(function: lambda_.Function, sender: str) -> None:
    """ses:SendEmail as the sender's identity only: the address itself, or its domain when the
    domain is the verified identity. (In the SES sandbox, recipients are identities too and must be
    allowed as well; production access needs only the sender.)"""
    if "@" not in sender:
        raise ValueError(f"EMAIL_SENDER {sender!r} is not an email address")
    stack = Stack.of(function)
    identities = [
        stack.format_arn(
            service="ses", resource="identity", resource_name=name, arn_format=ArnFormat.SLASH_RESOURCE_NAME
        )
        for name in (sender, sender.rsplit("@", 1)[1])
    ]
    function.add_to_role_policy(iam.PolicyStatement(actions=["ses:SendEmail"], resources=identities))


def grant_push(function: lambda_.Function, platform_application_arn: str) -> None:
    """Register device tokens with the platform application, and publish to its endpoints only."""
    if ":app/" not in platform_application_arn:
        raise ValueError(
            f"PUSH_PLATFORM_APPLICATION_ARN {platform_application_arn!r} "
            "is not an SNS platform application ARN"
        )
    # arn:...:app/GCM/<name> owns the endpoints arn:...:endpoint/GCM/<name>/<id>.
    endpoints = platform_application_arn.replace(":app/", ":endpoint/", 1) + "/*"
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["sns:CreatePlatformEndpoint"], resources=[platform_application_arn])
    )
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["sns:Publish", "sns:GetEndpointAttributes", "sns:SetEndpointAttributes"],
            resources=[endpoints],
        )
    )
    assert function.role is not None
    Validations.of(function.role).acknowledge(
        Acknowledgment(
            id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{endpoints}]",
            reason="Endpoint ids are created at run time, one per device token; the wildcard is limited "
            "to the endpoints of the one configured platform application.",
        )
    )


# Setting name → the permission a function reading it needs.
SETTING_GRANTS: dict[str, Callable[[lambda_.Function, str], None]] = {
    "EMAIL_SENDER": grant_send_email,
    "PUSH_PLATFORM_APPLICATION_ARN": grant_push,
}
