"""A journey's wait_until, wait_for, branch, split and update steps (invoked by its state machine):
the step's action decides against the live profile; the state machine acts on what it returns."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared import clock, config
from shared.delivery.policy import load_policy
from shared.identity.resolver import resolve_with_consent
from shared.identity.rules import load_rules
from shared.journeys.steps import StepPorts, StepRequest, run_step
from shared.store.bus import EventPublisher
from shared.store.consent import ConsentStore
from shared.store.journey_waits import JourneyWaitStore
from shared.store.messages import MessageLog
from shared.store.profiles import DynamoProfileStore
from shared.store.segments import SegmentStore
from shared.store.task_tokens import TaskTokens

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = config.load(config.JourneyStepsSettings)
    request = StepRequest.model_validate(event)
    logger.set_correlation_id(request.executionId)

    profiles = DynamoProfileStore(settings.profiles_table)
    result = run_step(
        request,
        StepPorts(
            profiles=profiles,
            waits=JourneyWaitStore(settings.journey_waits_table),
            tasks=TaskTokens(),
            messages=MessageLog(settings.messages_table),
            publisher=EventPublisher(settings.event_bus_name),
            # As the identity function applies any identify (its context.consent too).
            identity=lambda call: resolve_with_consent(
                call,
                profiles,
                load_rules(),
                clock.parse(call["timestamp"]),
                ConsentStore(settings.profiles_table),
                lambda: load_policy(settings.policy_file),
            ),
            segments=SegmentStore(settings.profiles_table),
            default_timezone=settings.default_timezone,
        ),
    )

    metrics.add_metric(name=f"JourneyStep_{request.action}", unit=MetricUnit.Count, value=1)
    # Ids and decisions only: never a trait, a property or an identifier.
    logger.info(
        "journey step",
        extra={"action": request.action, "journey": request.journey, "step": request.step, **result},
    )
    return result
