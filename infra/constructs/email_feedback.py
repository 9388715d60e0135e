"""The SES configuration set every email is sent with: its event destination puts the bounces and
complaints SES sees on the account's default EventBridge bus, where the `email-feedback` route takes
them to the feedback function (shared/delivery/feedback.py)."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ses as ses
from constructs import Construct

from infra.topology import EMAIL_CONFIGURATION_SET_ENV

# SES tags every event of a configuration set with its name: the route matches this stack's only.
CONFIGURATION_SET_TAG = "ses:configuration-set"


class EmailFeedback(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.configuration_set = ses.ConfigurationSet(self, "ConfigurationSet")
        default_bus = events.EventBus.from_event_bus_name(self, "DefaultBus", "default")
        self.configuration_set.add_event_destination(
            "BouncesAndComplaints",
            destination=ses.EventDestination.event_bus(default_bus),
            events=[ses.EmailSendingEvent.BOUNCE, ses.EmailSendingEvent.COMPLAINT],
        )

    @property
    def name(self) -> str:
        return self.configuration_set.configuration_set_name

    def route_detail(self) -> dict[str, object]:
        """The `detail` filter of the route: events of this configuration set's emails only."""
        return {"mail": {"tags": {CONFIGURATION_SET_TAG: [self.name]}}}

    def grant_send(self, function: lambda_.Function) -> None:
        """Sending with a configuration set needs ses:SendEmail on the set too; and its name."""
        stack = Stack.of(self)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ses:SendEmail"],
                resources=[
                    stack.format_arn(
                        service="ses",
                        resource="configuration-set",
                        resource_name=self.name,
                        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                    )
                ],
            )
        )
        function.add_environment(EMAIL_CONFIGURATION_SET_ENV, self.name)
