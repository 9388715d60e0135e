"""Email channel: queued messages → SES v2."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics

from shared import config
from shared.delivery.consumer import consume
from shared.models.message import OutboundMessage
from shared.store.messages import MessageLog
from shared.store.providers import EmailProvider

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = config.load(config.EmailSettings)
    provider = EmailProvider(settings.email_sender, settings.email_configuration_set)

    def send(message: OutboundMessage) -> str:
        content = message.content
        return provider.send(
            message.to, content["subject"], content["text"], content.get("html"), message.headers
        )

    return consume(event, context, MessageLog(settings.messages_table), send, metrics)
