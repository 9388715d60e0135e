"""The EventBridge bus every Continuum event travels on, its archive, and the topology's routes."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.topology import CONTINUUM_BUS, DEFAULT_BUS, Route

# Every event is archived, so any consumer (a fixed bug, a new journey) can be replayed from history.
ARCHIVE_RETENTION = Duration.days(30)

# Delivery retries for a rule's target: these cover EventBridge failing to hand the event to Lambda
# (throttling, a brief outage). Failures inside the function are retried by Lambda's async invoke.
TARGET_RETRY_ATTEMPTS = 8
TARGET_MAX_EVENT_AGE = Duration.hours(2)

# A route's pattern keys (the EventBridge envelope fields) → EventPattern keyword arguments.
_PATTERN_FIELDS = {
    "source": "source",
    "detail-type": "detail_type",
    "account": "account",
    "region": "region",
    "resources": "resources",
    "detail": "detail",
}


def event_pattern(pattern: dict[str, Any], detail: dict[str, Any] | None = None) -> events.EventPattern:
    """The route's pattern, with `detail` conditions the stack adds to the route's own (e.g. the ARNs
    of its own state machines, known only to the stack)."""
    unknown = set(pattern) - set(_PATTERN_FIELDS)
    if unknown:
        # Fail the synth rather than deploy a rule wider than the route asked for.
        raise ValueError(
            f"route pattern keys {sorted(unknown)} are not supported; use {sorted(_PATTERN_FIELDS)}"
        )
    fields: dict[str, Any] = {_PATTERN_FIELDS[key]: values for key, values in pattern.items()}
    if detail:
        fields["detail"] = {**fields.get("detail", {}), **detail}
    return events.EventPattern(**fields)


class EventBus(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", description="Continuum customer and engine events")
        # Every event on this bus carries this account (its publishers are this stack's functions):
        # matching on it is how an archive takes all events.
        self.bus.archive(
            "Archive",
            description="Every Continuum event, for replay",
            event_pattern=events.EventPattern(account=[Stack.of(self).account]),
            retention=ARCHIVE_RETENTION,
        )

    def route(
        self,
        spec: Route,
        function: lambda_.IFunction,
        dead_letters: sqs.IQueue,
        *,
        detail: dict[str, Any] | None = None,
    ) -> events.Rule:
        """A rule on the route's bus: Continuum's, or the account's default bus (AWS services' events)."""
        if spec.bus not in (CONTINUUM_BUS, DEFAULT_BUS):
            raise ValueError(f"route {spec.name}: unknown bus {spec.bus!r}")
        return events.Rule(
            self,
            f"route-{spec.name}",
            # None: the account's default event bus.
            event_bus=self.bus if spec.bus == CONTINUUM_BUS else None,
            description=f"Continuum route {spec.name}",
            event_pattern=event_pattern(spec.pattern, detail),
            targets=[
                targets.LambdaFunction(
                    function,
                    dead_letter_queue=dead_letters,
                    retry_attempts=TARGET_RETRY_ATTEMPTS,
                    max_event_age=TARGET_MAX_EVENT_AGE,
                )
            ],
        )
