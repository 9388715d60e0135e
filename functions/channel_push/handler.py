"""Push channel: queued messages → SNS platform endpoints (FCM / APNs)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics

from shared import config
from shared.delivery.consumer import consume
from shared.models.message import OutboundMessage
from shared.store.messages import MessageLog
from shared.store.providers import PushProvider

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = config.load(config.PushSettings)
    provider = PushProvider(settings.push_platform_application_arn)

    def send(message: OutboundMessage) -> str:
        return provider.send(message.to, message.content["title"], message.content["body"])

    return consume(event, context, MessageLog(settings.messages_table), send, metrics)
