"""A profile's event, trait change, merge, unmerge or removed identifier (from the bus), or a re-check
falling due (EventBridge Scheduler) → its aggregates and segments updated → `segment.entered` /
`segment.exited` on the bus, audience messages on the FIFO queue, the next re-check scheduled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared import clock, config
from shared.models.base import Model
from shared.models.events import (
    DETAIL_IDENTIFIER_REMOVED,
    DETAIL_MERGED,
    DETAIL_RESOLVED,
    DETAIL_UNMERGED,
    Envelope,
    ProfilesMerged,
    ResolvedEvent,
)
from shared.models.profile import Profile
from shared.models.segments import SegmentState
from shared.segments.catalogue import SegmentCatalogue, load_segment_catalogue
from shared.segments.engine import Decision, on_event, on_merge, on_rebuild, on_recheck
from shared.segments.service import Decide, Outcome, Ports, carry_out, settle, settle_merge
from shared.store.bus import EventPublisher
from shared.store.schedules import Rechecks
from shared.store.segments import AudienceQueue, SegmentStore

logger = Logger()
metrics = Metrics()


class Recheck(Model):
    """The input of a re-check schedule (shared/store/schedules.py)."""

    recheck: str  # the profile id
    due: str


class _Changed(Model):
    """`data` of `profile.unmerged` / `profile.identifier_removed` (functions/profiles)."""

    profileId: str
    detail: dict[str, Any] = {}


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> None:
    settings = config.load(config.SegmentsSettings)
    catalogue = load_segment_catalogue(settings.segment_catalogue)
    if catalogue.empty:
        return  # nothing to keep: not one request
    store = SegmentStore(settings.profiles_table)
    ports = Ports(
        store=store,
        bus=EventPublisher(settings.event_bus_name),
        audiences=AudienceQueue(settings.audiences_queue_url),
        rechecks=Rechecks(
            settings.recheck_schedule_group, settings.recheck_role_arn, context.invoked_function_arn
        ),
    )
    now = clock.now()
    outcomes: list[Outcome | None] = []
    if "recheck" in event:
        recheck = Recheck.model_validate(event)
        correlation = f"recheck:{recheck.recheck}:{recheck.due}"
        outcomes.append(
            settle(recheck.recheck, lambda s, p: on_recheck(s, p, catalogue, now), store, correlation)
        )
    else:
        incoming = Envelope.model_validate(event["detail"])
        logger.set_correlation_id(incoming.correlationId)
        correlation = incoming.correlationId
        if incoming.name == DETAIL_RESOLVED:
            resolved = ResolvedEvent.model_validate(incoming.data)
            call = resolved.event
            correlation = call.get("messageId") or correlation  # the triggering event's messageId
            outcomes.append(
                settle(
                    resolved.profileId, lambda s, p: on_event(s, p, call, catalogue, now), store, correlation
                )
            )
        elif incoming.name == DETAIL_MERGED:
            merged = ProfilesMerged.model_validate(incoming.data)
            outcomes.append(
                settle_merge(
                    merged.survivor,
                    list(merged.merged),
                    lambda s, m, p: on_merge(s, m, p, catalogue, now),
                    store,
                    correlation,
                )
            )
        elif incoming.name == DETAIL_UNMERGED:
            # Both sides are rebuilt from their timelines (rare: an admin's action).
            changed = _Changed.model_validate(incoming.data)
            for profile_id in (changed.profileId, changed.detail.get("restoredProfileId")):
                if isinstance(profile_id, str):
                    outcomes.append(settle(profile_id, _rebuild(store, catalogue, now), store, correlation))
        elif incoming.name == DETAIL_IDENTIFIER_REMOVED:
            # Its hashes leave the audiences: the sync is recomputed from the profile as it is now.
            changed = _Changed.model_validate(incoming.data)
            outcomes.append(
                settle(changed.profileId, lambda s, p: on_recheck(s, p, catalogue, now), store, correlation)
            )
        else:
            logger.warning("ignored", extra={"detailType": incoming.name})
            return
    for outcome in outcomes:
        if outcome is None:
            continue
        carry_out(outcome, correlation, ports)
        changes = outcome.decision.changes
        entered = sum(1 for c in changes if c.entered)
        metrics.add_metric(name="SegmentsEntered", unit=MetricUnit.Count, value=entered)
        metrics.add_metric(name="SegmentsExited", unit=MetricUnit.Count, value=len(changes) - entered)
        metrics.add_metric(name="AudienceIntents", unit=MetricUnit.Count, value=len(outcome.decision.intents))


def _rebuild(store: SegmentStore, catalogue: SegmentCatalogue, now: datetime) -> Decide:
    def decide(state: SegmentState | None, profile: Profile) -> Decision:
        history = store.timeline_since([profile.profileId, *profile.mergedFrom], "")
        return on_rebuild(profile, history, state, catalogue, now)

    return decide
