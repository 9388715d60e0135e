"""Alarms on everything that can fail quietly, one topic the operator subscribes to, and a dashboard.

Every asynchronous path ends in a dead-letter queue; an alarm on each queue's depth is what turns a
message landing there into someone being told. Function errors and failed / timed-out journey
executions alarm too. All alarms notify one SNS topic (its ARN is a stack output).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.function_factory import OBSERVABILITY_ENV
from shared.models.events import EXECUTIONS_FAILED_METRIC

# Short enough to hear of a failure within minutes, long enough not to alarm on each retry's blip.
PERIOD = Duration.minutes(5)
# Powertools' metrics: the namespace and the `service` dimension every function shares.
METRICS_NAMESPACE = OBSERVABILITY_ENV["POWERTOOLS_METRICS_NAMESPACE"]
SERVICE = OBSERVABILITY_ENV["POWERTOOLS_SERVICE_NAME"]


def _app_metric(name: str, label: str | None = None) -> cloudwatch.Metric:
    """A Continuum metric published by a function through Powertools (EMF)."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": SERVICE},
        statistic=cloudwatch.Stats.SUM,
        period=PERIOD,
        label=label or name,
    )


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, alarm_email: str | None = None) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Alarms", display_name="Continuum alarms", enforce_ssl=True)
        Validations.of(self.topic).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-SNS2",
                reason="The topic carries only alarm state changes (alarm names, metrics, thresholds), no "
                "customer data. CloudWatch cannot publish to a topic under the AWS-managed SNS key, and a "
                "customer-managed key would cost a key a month to protect nothing personal.",
            )
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self._action = actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []
        # Collected by the watch_* calls, drawn by `draw_dashboard` once everything is watched.
        self._dead_letters: list[tuple[str, sqs.IQueue]] = []
        self._functions: list[tuple[str, lambda_.IFunction]] = []
        self._journey_failures: list[cloudwatch.IMetric] = []
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            default_interval=Duration.hours(3),
            period_override=cloudwatch.PeriodOverride.AUTO,
        )

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, description: str) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            # No data means nothing happened: not a failure.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        self.alarms.append(alarm)
        return alarm

    def watch_dead_letters(self, name: str, queue: sqs.IQueue) -> None:
        """Alarm as soon as one message waits in a dead-letter queue."""
        self._alarm(
            f"{name}-dead-letters",
            queue.metric_approximate_number_of_messages_visible(
                period=PERIOD, statistic=cloudwatch.Stats.MAXIMUM
            ),
            f"Continuum: messages in the dead-letter queue of {name}; inspect and replay them",
        )
        self._dead_letters.append((name, queue))

    def watch_function(self, name: str, function: lambda_.IFunction) -> None:
        self._alarm(
            f"{name}-errors",
            function.metric_errors(period=PERIOD, statistic=cloudwatch.Stats.SUM),
            f"Continuum: function {name} failed; see its log group",
        )
        self._functions.append((name, function))

    def watch_journeys(self) -> None:
        """Alarm as soon as one journey execution fails or times out. One alarm for every journey: the
        journey router hears of each execution's end (Step Functions' status-change events, narrowed
        to this stack's journeys) and counts the failures (JourneyExecutionsFailed). Alarms per state
        machine would take a resource per five journeys (CloudWatch's 10 metrics per alarm) of the
        stack's 500, which a hundred journeys and their versions and aliases already fill."""
        # No label: a labelled metric makes a metric-math alarm; this one is a plain metric alarm.
        metric = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=EXECUTIONS_FAILED_METRIC,
            dimensions_map={"service": SERVICE},
            statistic=cloudwatch.Stats.SUM,
            period=PERIOD,
        )
        self._alarm(
            "journeys-failed",
            metric,
            "Continuum: a journey execution failed or timed out; find it in Step Functions (status"
            " Failed / Timed out) and the journey router's log",
        )
        self._journey_failures.append(metric)

    def draw_dashboard(self, api: apigwv2.HttpApi) -> None:
        """The dashboard: the flow from ingest to delivery, then where failures pile up."""

        def graph(**options: object) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(width=12, **options)  # type: ignore[arg-type]

        widgets: list[cloudwatch.IWidget] = [
            graph(
                title="Ingest: HTTP calls",
                left=[api.metric_count(period=PERIOD, label="requests")],
                right=[
                    api.metric_client_error(period=PERIOD, label="4xx"),
                    api.metric_server_error(period=PERIOD, label="5xx"),
                ],
            ),
            graph(
                title="Ingest: Segment calls published",
                left=[_app_metric("CallsPublished"), _app_metric("CallsDuplicate")],
            ),
            graph(
                title="Identity",
                left=[
                    _app_metric("EventsResolved"),
                    _app_metric("ProfilesMerged"),
                    _app_metric("EventsSuppressed"),
                    _app_metric("EventsWithoutIdentifier"),
                ],
            ),
            graph(
                title="Journeys: started / exited",
                left=[_app_metric("JourneysStarted"), _app_metric("JourneysExited")],
                right=list(self._journey_failures),
            ),
            graph(
                title="Deliveries",
                left=[_app_metric("MessagesSent"), _app_metric("MessagesFailed")],
            ),
            graph(
                title="Dead-letter queues: messages waiting",
                left=[
                    queue.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic=cloudwatch.Stats.MAXIMUM, label=name
                    )
                    for name, queue in self._dead_letters
                ],
            ),
            graph(
                title="Function errors",
                left=[
                    function.metric_errors(period=PERIOD, label=name) for name, function in self._functions
                ],
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24),
        ]
        for start in range(0, len(widgets), 2):
            self.dashboard.add_widgets(*widgets[start : start + 2])
