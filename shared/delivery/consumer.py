"""What every channel function does with its SQS batch: send each message, report the failures.

The partial batch response (`batchItemFailures`) is the contract Lambda's SQS event source reads:
the listed messages return to the queue, to be retried and finally dead-lettered; the rest are
deleted. It is written out here rather than taken from Powertools' batch utility, whose import
(asyncio, its pydantic record models) adds ~70 ms to every cold start of a channel function.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared import clock
from shared.delivery.service import Log, MessageLeasedError, handle_outbound
from shared.models.message import OutboundMessage
from shared.store.aws import error_code

logger = Logger()

# Added to the invocation's remaining time to make a message's lease: covers clock differences
# between the Lambda hosts that compare lease times. The lease (function timeout + this) must stay
# below the queue's visibility timeout, so that a dead holder's lease has expired when SQS delivers
# the message again (a unit test checks this against infra/topology.py).
LEASE_MARGIN = timedelta(seconds=5)


class UndeliverableError(Exception):
    """The provider refuses the message for good (`reason`, e.g. `endpoint_disabled`): it is dropped,
    not retried."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _failed(record: dict[str, Any], error: BaseException) -> None:
    """Log a failed message by its error's type and AWS code only: a provider's error text can name the
    recipient (SES: "… identities failed the check …: ada@example.com"), and no address is logged."""
    logger.error(
        "message failed",
        extra={
            "sqsMessageId": record.get("messageId"),
            "error": type(error).__name__,
            "code": error_code(error) if isinstance(error, Exception) else "",
        },
    )


def consume(
    event: dict[str, Any],
    context: Any,
    log: Log,
    send: Callable[[OutboundMessage], str],
    metrics: Metrics,
    undeliverable: Callable[[OutboundMessage, str], None] | None = None,
) -> dict[str, list[dict[str, str]]]:
    """`send` raises `UndeliverableError` for a message its provider refuses for good; `undeliverable`
    then records it dropped (and whatever the channel learns from it) and the message is acknowledged.
    Without it, such a message is a failure like any other."""
    # Every message of the batch is handled within this invocation: its lease lasts as long.
    lease_until = clock.now() + timedelta(milliseconds=context.get_remaining_time_in_millis()) + LEASE_MARGIN
    sent = dropped = 0
    failures = []
    for record in event.get("Records", []):
        try:
            message = OutboundMessage.model_validate_json(record["body"])
            sent += handle_outbound(message, log, send, holder=uuid.uuid4().hex, lease_until=lease_until)
        except UndeliverableError as error:
            if undeliverable is None:
                _failed(record, error)
                failures.append({"itemIdentifier": record["messageId"]})
                continue
            try:
                undeliverable(message, error.reason)
                dropped += 1
            except Exception as failure:  # retried: recording the drop again changes nothing
                _failed(record, failure)
                failures.append({"itemIdentifier": record["messageId"]})
        except MessageLeasedError:  # another delivery is sending it: back to the queue, not sent here
            logger.info("message leased by another delivery", extra={"sqsMessageId": record.get("messageId")})
            failures.append({"itemIdentifier": record["messageId"]})
        except Exception as failure:  # reported back to SQS, never swallowed: the message is retried
            _failed(record, failure)
            failures.append({"itemIdentifier": record["messageId"]})
    metrics.add_metric(name="MessagesSent", unit=MetricUnit.Count, value=sent)
    metrics.add_metric(name="MessagesFailed", unit=MetricUnit.Count, value=len(failures))
    if dropped:
        metrics.add_metric(name="MessagesUndeliverable", unit=MetricUnit.Count, value=dropped)
    return {"batchItemFailures": failures}
