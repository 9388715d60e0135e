"""What every channel function does with its SQS batch: send each message, report the failures.

The partial batch response (`batchItemFailures`) is the contract Lambda's SQS event source reads:
the listed messages return to the queue, to be retried and finally dead-lettered; the rest are
deleted. It is written out here rather than taken from Powertools' batch utility, whose import
(asyncio, its pydantic record models) adds ~70 ms to every cold start of a channel function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared.delivery.service import Log, handle_outbound
from shared.models.message import OutboundMessage

logger = Logger()


def consume(
    event: dict[str, Any], log: Log, send: Callable[[OutboundMessage], str], metrics: Metrics
) -> dict[str, list[dict[str, str]]]:
    sent = 0
    failures = []
    for record in event.get("Records", []):
        try:
            sent += handle_outbound(OutboundMessage.model_validate_json(record["body"]), log, send)
        except Exception:  # reported back to SQS, never swallowed: the message is retried
            logger.exception("message failed", extra={"sqsMessageId": record.get("messageId")})
            failures.append({"itemIdentifier": record["messageId"]})
    metrics.add_metric(name="MessagesSent", unit=MetricUnit.Count, value=sent)
    metrics.add_metric(name="MessagesFailed", unit=MetricUnit.Count, value=len(failures))
    return {"batchItemFailures": failures}
