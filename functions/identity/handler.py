"""Customer event → the profile it belongs to (found, created or merged) → `event.resolved` on the bus
(and `profile.merged` when it linked profiles)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared import clock, config
from shared.delivery.policy import load_policy
from shared.identity.resolver import resolve_with_consent, resolved_events
from shared.identity.rules import load_rules
from shared.models.events import Envelope
from shared.store.bus import EventPublisher
from shared.store.consent import ConsentStore
from shared.store.profiles import DynamoProfileStore

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> None:
    settings = config.load(config.IdentitySettings)
    incoming = Envelope.model_validate(event["detail"])
    logger.set_correlation_id(incoming.correlationId)
    call = incoming.data

    resolution = resolve_with_consent(
        call,
        DynamoProfileStore(settings.profiles_table),
        load_rules(),
        clock.parse(call["timestamp"]),
        ConsentStore(settings.profiles_table),
        lambda: load_policy(settings.policy_file),
    )

    for warning in resolution.warnings:  # types, counts and reasons only: never an identifier's value
        logger.warning(warning)
    if resolution.suppressed_identifiers:
        # An erased person's identifiers are left out; the event lands if anything else names someone.
        metrics.add_metric(
            name="IdentifiersSuppressed", unit=MetricUnit.Count, value=resolution.suppressed_identifiers
        )
    if resolution.dropped:
        metrics.add_metric(name="TraitsDropped", unit=MetricUnit.Count, value=resolution.dropped.traits)
        metrics.add_metric(name="ProfileBytesDropped", unit=MetricUnit.Bytes, value=resolution.dropped.bytes)
    if resolution.suppressed:
        # Only an erased person's identifiers: dropped, so they are not silently re-created.
        metrics.add_metric(name="EventsSuppressed", unit=MetricUnit.Count, value=1)
        return
    if resolution.profile_id is None:
        metrics.add_metric(name="EventsWithoutIdentifier", unit=MetricUnit.Count, value=1)
        return
    metrics.add_metric(name="EventsResolved", unit=MetricUnit.Count, value=1)
    if resolution.consent_recorded:
        metrics.add_metric(name="ConsentRecorded", unit=MetricUnit.Count, value=resolution.consent_recorded)
    if resolution.consent_ignored:
        metrics.add_metric(name="ConsentIgnored", unit=MetricUnit.Count, value=resolution.consent_ignored)
    if resolution.merged:
        metrics.add_metric(name="ProfilesMerged", unit=MetricUnit.Count, value=len(resolution.merged))
    EventPublisher(settings.event_bus_name).publish(resolved_events(call, resolution, incoming.correlationId))
