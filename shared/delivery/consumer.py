"""What every channel function does with its SQS batch: send each message, report the failures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from shared.delivery.service import Log, handle_outbound
from shared.models.message import OutboundMessage


def consume(
    event: dict[str, Any], context: Any, log: Log, send: Callable[[OutboundMessage], str], metrics: Metrics
) -> dict[str, Any]:
    """A failed message is reported back (partial batch response) and retried by SQS, then dead-lettered."""
    sent = 0

    def record_handler(record: SQSRecord) -> None:
        nonlocal sent
        sent += handle_outbound(OutboundMessage.model_validate_json(record.body), log, send)

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=BatchProcessor(event_type=EventType.SQS), context=context
    )
    metrics.add_metric(name="MessagesSent", unit=MetricUnit.Count, value=sent)
    metrics.add_metric(name="MessagesFailed", unit=MetricUnit.Count, value=len(response["batchItemFailures"]))
    return response
