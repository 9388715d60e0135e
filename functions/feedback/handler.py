"""SES feedback from EventBridge: a hard bounce suppresses the address, a complaint unsubscribes its
owner from marketing email (shared/delivery/feedback.py)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared import config
from shared.delivery.feedback import FeedbackError, handle_feedback
from shared.store.consent import ConsentStore
from shared.store.profiles import DynamoProfileStore
from shared.store.suppressions import SuppressionStore

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> None:
    settings = config.load(config.FeedbackSettings)
    table = settings.profiles_table
    try:
        outcome = handle_feedback(
            event.get("detail-type", ""),
            event.get("detail") or {},
            SuppressionStore(table),
            DynamoProfileStore(table),
            ConsentStore(table),
        )
    except FeedbackError as error:
        # Counted and dropped, not raised: retrying an event that cannot be read only fails again.
        logger.warning("SES event not understood", extra={"reason": str(error), "eventId": event.get("id")})
        metrics.add_metric(name="FeedbackUnreadable", unit=MetricUnit.Count, value=1)
        return
    # Counts only: never an address.
    for name, value in (
        ("AddressesSuppressed", outcome.suppressed),
        ("AddressesSuppressedAgain", outcome.already_suppressed),
        ("TransientBounces", outcome.transient),
        ("ComplaintsUnsubscribed", outcome.unsubscribed),
        ("ComplaintsOfUnknownAddresses", outcome.unknown),
    ):
        if value:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    logger.info("SES feedback", extra={"detailType": event.get("detail-type"), **vars(outcome)})
