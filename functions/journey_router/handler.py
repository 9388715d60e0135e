"""`event.resolved` → start the journeys it triggers, stop those whose goal it is;
`profile.merged` → the merged profiles' journeys continue on the survivor."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared import clock, config
from shared.journeys.router import follow_merge, route
from shared.models.events import DETAIL_MERGED, Envelope, ProfilesMerged, ResolvedEvent
from shared.store.journeys import JourneyExecutions, JourneyRunStore

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> None:
    settings = config.load(config.RouterSettings)
    incoming = Envelope.model_validate(event["detail"])
    logger.set_correlation_id(incoming.correlationId)

    runs = JourneyRunStore(settings.journey_runs_table)
    now = clock.iso(clock.now())
    if incoming.name == DETAIL_MERGED:
        merged = ProfilesMerged.model_validate(incoming.data)
        moved = follow_merge(merged, settings.journeys, runs, JourneyExecutions(), now)
        metrics.add_metric(name="JourneysMovedOnMerge", unit=MetricUnit.Count, value=len(moved))
        return

    routing = route(
        ResolvedEvent.model_validate(incoming.data), settings.journeys, runs, JourneyExecutions(), now
    )

    metrics.add_metric(name="JourneysStarted", unit=MetricUnit.Count, value=len(routing.started))
    metrics.add_metric(name="JourneysExited", unit=MetricUnit.Count, value=len(routing.exited))
    logger.info("routed", extra={"started": routing.started, "exited": routing.exited})
