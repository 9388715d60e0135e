"""Push channel: queued messages → SNS platform endpoints (FCM / APNs). A device whose endpoint SNS
reports disabled gets nothing more: the message is dropped (`endpoint_disabled`) and the token is
removed from its profile, as the Profile API removes an identifier (segments and audiences hear of it)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics

from shared import config
from shared.delivery.consumer import UndeliverableError, consume
from shared.identity.profile_api import forget_identifier
from shared.models.message import OutboundMessage
from shared.models.profile import Identifier
from shared.store.bus import EventPublisher
from shared.store.messages import MessageLog
from shared.store.profiles import ProfileAdmin
from shared.store.providers import EndpointDisabledError, PushProvider

ENDPOINT_DISABLED = "endpoint_disabled"

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = config.load(config.PushSettings)
    provider = PushProvider(settings.push_platform_application_arn)
    log = MessageLog(settings.messages_table)

    def send(message: OutboundMessage) -> str:
        try:
            return provider.send(message.to, message.content["title"], message.content["body"])
        except EndpointDisabledError as error:
            raise UndeliverableError(ENDPOINT_DISABLED) from error

    def undeliverable(message: OutboundMessage, reason: str) -> None:
        log.mark_undeliverable(message.messageKey, reason)
        token = Identifier(type="device_token", value=message.to)
        forget_identifier(
            ProfileAdmin(settings.profiles_table), EventPublisher(settings.event_bus_name), token
        )

    return consume(event, context, log, send, metrics, undeliverable)
