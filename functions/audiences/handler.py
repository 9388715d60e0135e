"""Ad audiences: the audiences FIFO queue → segment-members table, Meta Custom Audiences and Google
Ads Customer Match. Reports partial batch failures (FIFO order kept: shared/segments/audience_sync.py)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared import config
from shared.segments.audience_sync import QueuedMessage, sync_batch
from shared.store.ad_platforms import AdPlatforms
from shared.store.segment_members import SegmentMembers
from shared.store.segments import SegmentStore

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = config.load(config.AudiencesSettings)
    records = [
        QueuedMessage(r["messageId"], (r.get("attributes") or {}).get("MessageGroupId"), r["body"])
        for r in event.get("Records", [])
    ]
    platforms = AdPlatforms(
        settings.meta_credentials_secret_arn,
        settings.google_credentials_secret_arn,
        local=settings.ad_platforms == "local",
    )
    outcome = sync_batch(
        records,
        SegmentMembers(settings.segment_members_table),
        platforms,
        SegmentStore(settings.profiles_table),  # what the messages are reconciled against
    )
    metrics.add_metric(name="AudienceRequests", unit=MetricUnit.Count, value=outcome.requests)
    metrics.add_metric(name="AudienceIdentifiers", unit=MetricUnit.Count, value=outcome.identifiers)
    metrics.add_metric(name="AudienceMessagesFailed", unit=MetricUnit.Count, value=len(outcome.failed))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in outcome.failed]}
