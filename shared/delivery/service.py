"""A journey's send step from decision to the channel queue, and a channel's send to its provider.

Both are idempotent on the message key (execution + step): a retried step or a redelivered queue
message never sends twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from shared import clock
from shared.delivery.gate import Drop, decide
from shared.models.message import MessageLogEntry, OutboundMessage, SendRequest
from shared.models.profile import Profile


class Profiles(Protocol):
    def profile(self, profile_id: str) -> Profile | None: ...


class Log(Protocol):
    def record(self, entry: MessageLogEntry) -> bool: ...

    def get(self, message_key: str) -> MessageLogEntry | None: ...

    def mark_sent(self, message_key: str, sent_at: str, provider_message_id: str) -> None: ...


class Queue(Protocol):
    def send(self, message: OutboundMessage) -> None: ...


def handle_send(request: SendRequest, profiles: Profiles, log: Log, queue: Queue) -> MessageLogEntry:
    """Run the send gate; log the outcome; enqueue what passes. Returns the log entry."""
    profile = profiles.profile(request.profileId)
    decision = decide(request, profile)
    entry = MessageLogEntry(
        messageKey=request.message_key,
        status="dropped" if isinstance(decision, Drop) else "queued",
        reason=decision.reason if isinstance(decision, Drop) else None,
        channel=request.channel,
        to=None if isinstance(decision, Drop) else decision.to,
        journey=request.journey,
        step=request.step,
        template=request.template,
        profileId=profile.profileId if profile else request.profileId,
        userId=profile.user_id if profile else None,
        createdAt=clock.iso(clock.now()),
        content=None if isinstance(decision, Drop) else decision.content,
    )
    if not log.record(entry):
        previous = log.get(entry.messageKey)
        assert previous is not None  # record() refused because it exists
        if previous.status != "queued":
            return previous
        entry = previous  # queued before, perhaps never enqueued: enqueue again (the channel dedupes)
    if entry.status == "queued" and entry.to and entry.content:
        queue.send(
            OutboundMessage(
                messageKey=entry.messageKey,
                channel=entry.channel,
                to=entry.to,
                content=entry.content,
                journey=entry.journey,
                template=entry.template,
                profileId=entry.profileId,
                userId=entry.userId,
            )
        )
    return entry


def handle_outbound(message: OutboundMessage, log: Log, send: Callable[[OutboundMessage], str]) -> bool:
    """Hand a queued message to its provider unless it was sent already. True when sent now."""
    entry = log.get(message.messageKey)
    if entry is not None and entry.status == "sent":
        return False
    provider_message_id = send(message)
    log.mark_sent(message.messageKey, clock.iso(clock.now()), provider_message_id)
    return True
