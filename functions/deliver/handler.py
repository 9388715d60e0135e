"""A journey's send step (invoked by its state machine): the send gate, then the channel queue.

The state machine waits on the step's task token (`token`), answered here once the outcome is logged:
sent, queued or dropped resume the run; `deferred` fails the token with `Continuum.Deferred` and the
instant (ISO-8601) to run the gate again, which the state machine waits for (compiler: `<id>` →
`<id>.defer` → `<id>`). A deferral is not an error of the function. Also returns `{status, reason,
until, messageKey}` (what a caller without a token reads; the state machine discards it)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from shared import config
from shared.delivery.policy import load_policy
from shared.delivery.service import answer_step, handle_send
from shared.models.message import SendRequest
from shared.store.caps import SendGateStore
from shared.store.journey_stats import JourneyStats
from shared.store.link_key import link_maker
from shared.store.messages import ChannelQueue, MessageLog
from shared.store.segments import SegmentStore
from shared.store.task_tokens import TaskTokens

logger = Logger()
metrics = Metrics()

_OUTCOME = {"queued": "Queued", "dropped": "Dropped", "deferred": "Deferred"}


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = config.load(config.DeliverSettings)
    request = SendRequest.model_validate(event)
    logger.set_correlation_id(request.message_key)

    policy = load_policy(settings.policy_file)
    entry = handle_send(
        request,
        SendGateStore(settings.profiles_table),
        MessageLog(settings.messages_table),
        ChannelQueue(settings.queue_url(request.channel)),
        JourneyStats(settings.journey_stats_table),
        SegmentStore(settings.profiles_table),
        policy,
        profiles_table=settings.profiles_table,
        # Every email's signed unsubscribe / preference links and its RFC 8058 headers.
        links=link_maker(config.load(config.LinkSettings), policy),
    )

    outcome = _OUTCOME.get(entry.status, "Queued")  # sent: an earlier delivery queued it
    metrics.add_metric(name=f"{request.channel.capitalize()}{outcome}", unit=MetricUnit.Count, value=1)
    if entry.reason:
        # Per reason (unsubscribed, capped, deferred_quiet_hours, …): one metric with its dimensions.
        with single_metric(name=f"Send{outcome}", unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="channel", value=request.channel)
            metric.add_dimension(name="reason", value=entry.reason)
    logger.info(
        "send step",
        extra={
            "status": entry.status,
            "reason": entry.reason,
            "journey": request.journey,
            "topic": entry.topic,
        },
    )
    # After the commit: a retried invocation (this answer failed) finds the outcome logged.
    if request.token is not None and not answer_step(request.token, entry, TaskTokens()):
        # Answered already (a retried invocation), or the run ended meanwhile (an exit): nothing to do.
        logger.info("send step's task token was answered already", extra={"status": entry.status})
    return {
        "status": entry.status,
        "reason": entry.reason,
        "until": entry.deferredUntil,  # null unless deferred
        "messageKey": entry.messageKey,
    }
