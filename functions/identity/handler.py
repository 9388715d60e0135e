"""Customer event → the profile it belongs to (found, created or merged) → `event.resolved` on the bus."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared import clock, config
from shared.identity.resolver import resolve
from shared.models.events import DETAIL_RESOLVED, SOURCE_IDENTITY, BusEvent, Envelope, ResolvedEvent
from shared.store.bus import EventPublisher
from shared.store.profiles import DynamoProfileStore

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> None:
    settings = config.load(config.IdentitySettings)
    incoming = Envelope.model_validate(event["detail"])
    logger.set_correlation_id(incoming.correlationId)

    resolution = resolve(
        incoming.data, DynamoProfileStore(settings.profiles_table), clock.parse(incoming.data["timestamp"])
    )

    profile = resolution.profile
    metrics.add_metric(name="EventsResolved", unit=MetricUnit.Count, value=1)
    if resolution.merged:
        metrics.add_metric(name="ProfilesMerged", unit=MetricUnit.Count, value=len(resolution.merged))
    resolved = ResolvedEvent(
        profileId=profile.profileId,
        profileIds=[profile.profileId, *profile.mergedFrom],
        userId=profile.user_id,
        event=incoming.data,
    )
    outgoing = Envelope(
        name=DETAIL_RESOLVED,
        correlationId=incoming.correlationId,
        time=clock.iso(clock.now()),
        data=resolved.model_dump(),
    )
    EventPublisher(settings.event_bus_name).publish([BusEvent.of(SOURCE_IDENTITY, DETAIL_RESOLVED, outgoing)])
