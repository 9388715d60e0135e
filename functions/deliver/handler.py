"""A journey's send step (invoked by its state machine): the send gate, then the channel queue."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared import config
from shared.delivery.service import handle_send
from shared.models.message import SendRequest
from shared.store.journey_stats import JourneyStats
from shared.store.messages import ChannelQueue, MessageLog
from shared.store.profiles import DynamoProfileStore
from shared.store.segments import SegmentStore

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = config.load(config.DeliverSettings)
    request = SendRequest.model_validate(event)
    logger.set_correlation_id(request.message_key)

    entry = handle_send(
        request,
        DynamoProfileStore(settings.profiles_table),
        MessageLog(settings.messages_table),
        ChannelQueue(settings.queue_url(request.channel)),
        JourneyStats(settings.journey_stats_table),
        SegmentStore(settings.profiles_table),
    )

    outcome = "Queued" if entry.status == "queued" else "Dropped"
    metrics.add_metric(name=f"{request.channel.capitalize()}{outcome}", unit=MetricUnit.Count, value=1)
    logger.info(
        "send step", extra={"status": entry.status, "reason": entry.reason, "journey": request.journey}
    )
    return {"status": entry.status, "reason": entry.reason, "messageKey": entry.messageKey}
