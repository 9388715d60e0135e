"""The whole engine as one stack, composed from the topology: nothing here names a function or a table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from aws_cdk import aws_lambda as lambda_
from aws_cdk.aws_lambda_event_sources import SqsEventSource
from constructs import Construct

from infra.constructs.admin_token import AdminToken
from infra.constructs.channels import SETTING_GRANTS
from infra.constructs.email_feedback import EmailFeedback
from infra.constructs.event_bus import EventBus
from infra.constructs.function_factory import FunctionFactory
from infra.constructs.http_api import IngestApi
from infra.constructs.journeys import (
    ALIAS,
    CATALOGUE_IN_LAYER,
    DELIVER_ARN_VARIABLE,
    STEPS_ARN_VARIABLE,
    JourneyStateMachines,
    arn_prefix,
    catalogue_file,
    state_machine_name,
)
from infra.constructs.links import LinkSigningKey
from infra.constructs.monitoring import Monitoring
from infra.constructs.policy import POLICY_IN_LAYER, policy_file
from infra.constructs.queues import Queues
from infra.constructs.segments import (
    SEGMENTS_IN_LAYER,
    AdPlatformCredentials,
    RecheckSchedules,
    segment_catalogue_file,
)
from infra.constructs.shared_layer import LAYER_ROOT
from infra.constructs.tables import Tables
from infra.topology import (
    EVENT_BUS_ENV,
    JOURNEY_ALIAS_ENV,
    JOURNEY_ARN_PREFIX_ENV,
    JOURNEY_CATALOGUE_ENV,
    MESSAGES,
    POLICY_FILE_ENV,
    PUBLIC_BASE_URL_ENV,
    SEGMENT_CATALOGUE_ENV,
    SOURCE_STATES,
    SOURCES,
    Topology,
    queue_env,
    table_env,
)
from shared.delivery.feedback import SOURCE_SES
from shared.delivery.policy import read_policy_yaml
from shared.journeys.loader import load_journeys
from shared.segments.catalogue import load_segments

TAGS = {"project": "continuum"}


class ContinuumStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topology: Topology,
        settings: Mapping[str, str],
        alarm_email: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope, construct_id, description="Continuum omnichannel customer-engagement engine", **kwargs
        )
        for key, value in TAGS.items():
            Tags.of(self).add(key, value)

        tables = Tables(self, "Tables", specs=topology.tables)
        queues = Queues(
            self,
            "Queues",
            specs=topology.queues,
            visibility_timeout_seconds=topology.visibility_timeout_seconds,
        )
        bus = EventBus(self, "Events")
        # The journey catalogue is built here, at synth, and ships in the shared layer: its state
        # machine names are derived from the stack name, so it needs nothing resolved at deploy.
        # Checked against the segments: a journey naming one the catalogue lacks fails the synth.
        # And against the send policy: a send on a topic it does not declare fails the synth.
        policy = read_policy_yaml(topology.policy_file)
        journey_list = load_journeys(topology.journeys_dir, load_segments(topology.segments_dir), policy)
        machine_names = {
            j.definition.id: state_machine_name(self.stack_name, j.definition.id) for j in journey_list
        }
        # The segment catalogue too: it is read on every event, so it is a file, not a table.
        factory = FunctionFactory(
            self,
            "Functions",
            layer_files={
                CATALOGUE_IN_LAYER: catalogue_file(journey_list, machine_names),
                SEGMENTS_IN_LAYER: segment_catalogue_file(topology.segments_dir),
                POLICY_IN_LAYER: policy_file(topology.policy_file),
            },
        )
        catalogue_env = {
            JOURNEY_CATALOGUE_ENV: f"{LAYER_ROOT}/{CATALOGUE_IN_LAYER}",
            JOURNEY_ARN_PREFIX_ENV: arn_prefix(),
            JOURNEY_ALIAS_ENV: ALIAS,
        }

        rechecks = (
            RecheckSchedules(self, "SegmentRechecks")
            if any(spec.schedules_rechecks for spec in topology.functions)
            else None
        )
        ad_credentials = (
            AdPlatformCredentials(self, "AdPlatformCredentials")
            if any(spec.calls_ad_platforms for spec in topology.functions)
            else None
        )

        # Every email goes out with one SES configuration set, which reports bounces and complaints.
        email_feedback = EmailFeedback(self, "EmailFeedback")

        # Functions a rule invokes run asynchronously and so get their own dead-letter queue.
        routed = {route.function for route in topology.routes}
        functions: dict[str, lambda_.Function] = {}
        for spec in topology.functions:
            missing = [name for name in spec.settings if name not in settings]
            if missing:
                raise ValueError(f"function {spec.name} needs deployment settings {missing}")
            function = factory.build(
                spec,
                invoked_async=spec.name in routed,
                environment={name: settings[name] for name in spec.settings},
            )
            for table_access in spec.tables:
                tables.grant(table_access, function)
                function.add_environment(table_env(table_access.table), tables[table_access.table].table_name)
            for queue_access in spec.queues:
                queue = queues[queue_access.queue]
                queue.grant_send_messages(function)
                function.add_environment(queue_env(queue_access.queue), queue.queue_url)
            if spec.publishes:
                bus.bus.grant_put_events_to(function)
                function.add_environment(EVENT_BUS_ENV, bus.bus.event_bus_name)
            for name in spec.settings:
                if name in SETTING_GRANTS:
                    SETTING_GRANTS[name](function, settings[name])
            if "EMAIL_SENDER" in spec.settings:  # the email channel sends with the configuration set
                email_feedback.grant_send(function)
            if spec.reads_journeys:
                for key, value in catalogue_env.items():
                    function.add_environment(key, value)
            if spec.reads_segments:
                function.add_environment(SEGMENT_CATALOGUE_ENV, f"{LAYER_ROOT}/{SEGMENTS_IN_LAYER}")
            if spec.reads_policy:
                function.add_environment(POLICY_FILE_ENV, f"{LAYER_ROOT}/{POLICY_IN_LAYER}")
            if spec.schedules_rechecks:
                assert rechecks is not None
                rechecks.grant(function)
            if spec.calls_ad_platforms:
                assert ad_credentials is not None
                ad_credentials.grant(function)
            functions[spec.name] = function

        signing = [spec.name for spec in topology.functions if spec.signs_links]
        link_key = LinkSigningKey(self, "LinkSigningKey") if signing else None
        for name in signing:
            assert link_key is not None
            link_key.grant(functions[name])

        checking = [spec.name for spec in topology.functions if spec.admin_credential]
        admin_token = AdminToken(self, "ProfileApiAdminToken") if checking else None
        for name in checking:
            assert admin_token is not None
            admin_token.grant(functions[name])

        task_functions = {
            DELIVER_ARN_VARIABLE: functions[topology.journey_task_function],
            STEPS_ARN_VARIABLE: functions[topology.journey_steps_function],
        }
        journeys = JourneyStateMachines(
            self, "Journeys", journeys=journey_list, names=machine_names, task_functions=task_functions
        )
        for spec in topology.functions:
            if spec.controls_journeys:
                journeys.grant_control(functions[spec.name])
            if spec.resumes_journeys:
                journeys.grant_resume(functions[spec.name])
            if spec.fails_journey_tasks:
                journeys.grant_fail(functions[spec.name])

        for route in topology.routes:
            target = functions[route.function]
            assert target.dead_letter_queue is not None  # routed functions are built with one
            # Step Functions' events on the default bus: only this stack's journeys' executions.
            detail: dict[str, Any] | None = None
            if route.pattern.get("source") == [SOURCE_STATES]:
                detail = {"stateMachineArn": [{"prefix": arn_prefix() + journeys.name_prefix}]}
            elif route.pattern.get("source") == [SOURCE_SES]:
                # SES's events on the default bus: only those of this stack's emails.
                detail = email_feedback.route_detail()
            # A rule's undeliverable events and the function's failed invocations share one queue:
            # everything this function never processed, in one place to inspect and replay.
            bus.route(route, target, dead_letters=target.dead_letter_queue, detail=detail)

        for consumer in topology.consumers:
            functions[consumer.function].add_event_source(
                SqsEventSource(
                    queues[consumer.queue], batch_size=consumer.batch_size, report_batch_item_failures=True
                )
            )

        api = IngestApi(
            self, "Ingest", routes=topology.http_routes, functions=functions, admin_functions=checking
        )

        # The links in emails point at the API. Set after the API exists: its URL is built from the
        # HttpApi's id alone, and the HttpApi depends on no function (its routes and integrations do),
        # so a function behind the API may hold its URL without a dependency cycle.
        for name in signing:
            functions[name].add_environment(PUBLIC_BASE_URL_ENV, api.url)

        monitoring = Monitoring(self, "Monitoring", alarm_email=alarm_email)
        for name, dead_letters in queues.dead_letters.items():
            monitoring.watch_dead_letters(f"queue-{name}", dead_letters)
        for name, function in functions.items():
            if function.dead_letter_queue is not None:
                monitoring.watch_dead_letters(f"function-{name}", function.dead_letter_queue)
            monitoring.watch_function(name, function)
        monitoring.watch_journeys()
        monitoring.draw_dashboard(api.api)

        CfnOutput(self, "IngestUrl", value=api.url, description="Base URL for Segment SDKs (POST /v1/...)")
        CfnOutput(self, "EventBusName", value=bus.bus.event_bus_name)
        if ad_credentials is not None:
            for platform, secret in ad_credentials.secrets.items():
                CfnOutput(
                    self,
                    f"{platform.capitalize()}CredentialsSecretArn",
                    value=secret.secret_arn,
                    description=f"Put your {platform} ad credentials (JSON, see the README) into this secret",
                )
        # `python -m infra.sources --stack <name>` finds the sources table here.
        CfnOutput(self, "SourcesTable", value=tables[SOURCES].table_name)
        CfnOutput(
            self,
            "MessageLogTable",
            value=tables[MESSAGES].table_name,
            description="Every send and every drop, with its reason (the cloud's /_local/message-log)",
        )
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=monitoring.topic.topic_arn,
            description="Every alarm notifies this SNS topic: subscribe to it (email, chat, pager)",
        )
        CfnOutput(
            self,
            "DashboardName",
            value=monitoring.dashboard.dashboard_name,
            description="The CloudWatch dashboard: ingest, identity, journeys, deliveries, dead letters",
        )
        if admin_token is not None:
            CfnOutput(
                self,
                "AdminTokenSecretArn",
                value=admin_token.secret.secret_arn,
                description="The Profile API's admin token (read it with aws secretsmanager "
                "get-secret-value --secret-id <this> --query SecretString --output text)",
            )
