"""`event.resolved` → resume waits, record goals, exit and start journeys (and `segment.entered` /
`segment.exited`, as the events `$segment.entered` / `$segment.exited`); `profile.merged` → the
merged profiles' journeys continue on the survivor; Step Functions `Execution Status Change` → the
ended execution's run is closed."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared import clock, config
from shared.journeys.catalogue import Catalogue, load_catalogue
from shared.journeys.router import (
    Ports,
    RoutedJourney,
    close_execution,
    follow_merge,
    route,
    route_segment_change,
)
from shared.models.events import (
    DETAIL_MERGED,
    EXECUTION_FAILED_STATUSES,
    EXECUTIONS_FAILED_METRIC,
    SOURCE_SEGMENTS,
    SOURCE_STATES,
    Envelope,
    ExecutionStatusChange,
    ProfilesMerged,
    ResolvedEvent,
)
from shared.models.segments import SegmentChange
from shared.store.journey_stats import JourneyStats
from shared.store.journey_waits import JourneyWaitStore
from shared.store.journeys import JourneyExecutions, JourneyRunStore
from shared.store.messages import MessageLog

logger = Logger()
metrics = Metrics()

# The catalogue as the router reads it, built once per catalogue loaded (load_catalogue caches the file).
_routed: tuple[tuple[Catalogue, str, str], list[RoutedJourney]] | None = None


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> None:
    settings = config.load(config.RouterSettings)
    ports = Ports(
        runs=JourneyRunStore(settings.journey_runs_table),
        executions=JourneyExecutions(),
        waits=JourneyWaitStore(settings.journey_waits_table),
        stats=JourneyStats(settings.journey_stats_table),
        messages=MessageLog(settings.messages_table),
    )
    now = clock.iso(clock.now())
    if event.get("source") == SOURCE_STATES:
        change = ExecutionStatusChange.model_validate(event["detail"])
        closed = close_execution(change.executionArn, change.status, change.output, ports, now)
        metrics.add_metric(name="JourneyRunsClosed", unit=MetricUnit.Count, value=len(closed))
        if change.status in EXECUTION_FAILED_STATUSES:
            # The one alarm on failed journeys, whatever their number (infra/constructs/monitoring.py).
            metrics.add_metric(name=EXECUTIONS_FAILED_METRIC, unit=MetricUnit.Count, value=1)
        return

    incoming = Envelope.model_validate(event["detail"])
    logger.set_correlation_id(incoming.correlationId)
    if incoming.name == DETAIL_MERGED:
        moved = follow_merge(ProfilesMerged.model_validate(incoming.data), ports, now)
        metrics.add_metric(name="JourneysMovedOnMerge", unit=MetricUnit.Count, value=len(moved))
        return

    journeys = _journeys(settings)

    if event.get("source") == SOURCE_SEGMENTS:
        routing = route_segment_change(SegmentChange.model_validate(incoming.data), journeys, ports, now)
    else:
        routing = route(ResolvedEvent.model_validate(incoming.data), journeys, ports, now)

    metrics.add_metric(name="JourneysStarted", unit=MetricUnit.Count, value=len(routing.started))
    metrics.add_metric(name="JourneysExited", unit=MetricUnit.Count, value=len(routing.exited))
    metrics.add_metric(name="JourneysResumed", unit=MetricUnit.Count, value=len(routing.resumed))
    metrics.add_metric(name="JourneyConversions", unit=MetricUnit.Count, value=len(routing.converted))
    metrics.add_metric(name="JourneysHeldOut", unit=MetricUnit.Count, value=len(routing.held_out))
    logger.info(
        "routed",
        extra={"started": routing.started, "exited": routing.exited, "resumed": routing.resumed},
    )


def _journeys(settings: config.RouterSettings) -> list[RoutedJourney]:
    global _routed
    catalogue = load_catalogue(settings.journey_catalogue)
    key = (catalogue, settings.state_machine_arn_prefix, settings.journey_alias)
    if _routed is None or _routed[0][0] is not catalogue or _routed[0][1:] != key[1:]:
        journeys = [
            RoutedJourney.of(entry.definition, entry.start_arn(*key[1:])) for entry in catalogue.journeys
        ]
        _routed = (key, journeys)
    return _routed[1]
