"""A journey's send step from decision to the channel queue, and a channel's send to its provider.

Both are idempotent on the message key (execution + step): a retried step enqueues the message
again at most, and a channel sends a message once however often it is delivered. SQS delivers at
least once, and a retried step enqueues twice: two deliveries of one message can run at once. So a
channel first takes the message's lease (a conditional write: queued, and no live lease), then calls
the provider, then marks it sent (conditional on still holding the lease). A delivery that finds a
live lease does not send: it is retried later, when the message is sent (acknowledged) or the lease
has expired (its holder died: this one sends).

What remains at least once: a holder that dies after the provider accepted the message and before
`mark_sent` leaves it queued; after the lease expires the retry sends it again. Neither SES v2
SendEmail nor SNS Publish to a platform endpoint takes an idempotency key, so this window (one
provider call's worth of time, on a crash) cannot be closed on our side.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from shared import clock
from shared.delivery.gate import Drop, decide
from shared.delivery.templates import roots
from shared.models.message import MessageLogEntry, OutboundMessage, SendRequest
from shared.models.profile import Profile
from shared.models.segments import SegmentState


class Profiles(Protocol):
    def profile(self, profile_id: str) -> Profile | None: ...


class Log(Protocol):
    def record(self, entry: MessageLogEntry) -> bool: ...

    def get(self, message_key: str) -> MessageLogEntry | None: ...

    def lease(self, message_key: str, holder: str, now: str, until: str) -> bool:
        """Take the lease if the message is queued and no lease is live at `now`."""
        ...

    def release(self, message_key: str, holder: str) -> None:
        """Give the lease back (if `holder` still holds it)."""
        ...

    def mark_sent(self, message_key: str, holder: str, sent_at: str, provider_message_id: str) -> bool:
        """Mark it sent if `holder` still holds the lease; False when it does not."""
        ...


class MessageLeasedError(Exception):
    """Another delivery of the message holds its lease (it is sending it now): retry later."""


class UnknownMessageError(Exception):
    """A queued message without its log entry: no record to keep it from being sent twice."""


class LeaseLostError(Exception):
    """The provider took the message after this delivery's lease had expired: another delivery may
    have sent it as well."""


class Queue(Protocol):
    def send(self, message: OutboundMessage) -> None: ...


class SegmentStates(Protocol):
    """The profile's segment state (shared/store/segments.py): its computed trait values."""

    def segment_state(self, profile_id: str) -> SegmentState | None: ...


def computed_values(request: SendRequest, profile: Profile | None, segments: SegmentStates) -> dict[str, Any]:
    """The profile's computed traits for the template, read (one GetItem) only when the content
    names `computed.…`."""
    if profile is None or "computed" not in roots(
        request.content, layout=request.layout, partials=request.partials
    ):
        return {}
    state = segments.segment_state(profile.profileId)
    return dict(state.computed) if state is not None else {}


class Stats(Protocol):
    """The journey counters (shared/store/journey_stats.py)."""

    def add(self, journey_id: str, counters: dict[str, float]) -> None: ...


def outcome_counter(entry: MessageLogEntry) -> str:
    """The journey-stats counter of a send step's outcome: `step#<id>#sent` (queued counts as sent:
    the gate let it through) or `step#<id>#dropped#<reason>`."""
    if entry.status == "dropped":
        return f"step#{entry.step}#dropped#{entry.reason}"
    return f"step#{entry.step}#sent"


def handle_send(
    request: SendRequest, profiles: Profiles, log: Log, queue: Queue, stats: Stats, segments: SegmentStates
) -> MessageLogEntry:
    """Run the send gate; log the outcome; enqueue what passes. Returns the log entry.

    The outcome is counted in the journey's stats once: by the invocation whose log entry was first
    recorded (a retried step finds the entry and counts nothing; ADD is not idempotent)."""
    profile = profiles.profile(request.profileId)
    decision = decide(request, profile, computed_values(request, profile, segments))
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
    else:
        stats.add(entry.journey, {outcome_counter(entry): 1})
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


def handle_outbound(
    message: OutboundMessage,
    log: Log,
    send: Callable[[OutboundMessage], str],
    holder: str,
    lease_until: datetime,
) -> bool:
    """Hand a queued message to its provider unless it was sent already. True when sent now.

    `holder` names this delivery; `lease_until` must outlast it (the channel function's deadline),
    so that a live delivery never loses its lease, and a dead one's expires."""
    key = message.messageKey
    if not log.lease(key, holder, clock.iso(clock.now()), clock.iso(lease_until)):
        entry = log.get(key)
        if entry is None:
            raise UnknownMessageError("the message has no log entry")
        if entry.status != "queued":
            return False  # sent (or dropped) already: acknowledge
        raise MessageLeasedError("another delivery of the message is sending it")
    try:
        provider_message_id = send(message)
    except BaseException:
        log.release(key, holder)  # the retry may send at once
        raise
    if not log.mark_sent(key, holder, clock.iso(clock.now()), provider_message_id):
        raise LeaseLostError("the message was sent after its lease expired")
    return True
