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

import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from shared import clock
from shared.backoff import backoff_delay
from shared.delivery.caps import CapWrite
from shared.delivery.gate import Decision, Defer, Drop, GateFacts, LinkMaker, Send, decide, topic_of
from shared.delivery.templates import roots
from shared.models.message import DEFERRED_ERROR, MessageLogEntry, OutboundMessage, SendRequest
from shared.models.policy import Policy
from shared.models.profile import Profile
from shared.models.segments import SegmentState

# A cap item changed between the read and the commit: read and decide again, this many times at most
# (each conflict means another send of the profile committed; a few in a row mean a burst).
COMMIT_ATTEMPTS = 8
# The longest pause between two attempts: a burst of sends to one profile (several journeys at once)
# spreads out instead of colliding again on the same cap items.
_PAUSE_MAX_SECONDS = 0.2


class Profiles(Protocol):
    def profile(self, profile_id: str) -> Profile | None: ...


class GateReads(Profiles, Protocol):
    """The profile, then the consent, suppression and cap items the gate needs (shared/store/caps.py)."""

    def gate_facts(self, profile: Profile, channel: str, topic: str, policy: Policy) -> GateFacts: ...


class Log(Protocol):
    def commit(
        self,
        entry: MessageLogEntry,
        previous: MessageLogEntry | None,
        caps: Sequence[CapWrite] = (),
        profiles_table: str | None = None,
    ) -> bool:
        """Write the entry (if absent, or still the deferral `previous`) and the cap items (at the
        versions read) at once; False when a condition failed."""
        ...

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


class StepAnswers(Protocol):
    """The send step's task token (shared/store/task_tokens.py): each call is False when the token
    was answered already (a retried invocation answers again; a run stopped meanwhile)."""

    def resume(self, token: str) -> bool: ...

    def fail(self, token: str, error: str, cause: str) -> bool: ...


class CapContentionError(Exception):
    """The profile's cap items kept changing under this send: the step is retried (Step Functions)."""


def outcome_counter(entry: MessageLogEntry) -> str:
    """The journey-stats counter of a send step's outcome: `step#<id>#sent` (queued counts as sent:
    the gate let it through), `step#<id>#dropped#<reason>` or `step#<id>#deferred#<reason>`."""
    if entry.status in ("dropped", "deferred"):
        return f"step#{entry.step}#{entry.status}#{entry.reason}"
    return f"step#{entry.step}#sent"


def _entry(
    request: SendRequest,
    profile: Profile | None,
    decision: Decision,
    previous: MessageLogEntry | None,
    topic: str,
    now: datetime,
) -> MessageLogEntry:
    first_deferred = previous.firstDeferredAt if previous else None
    entry = MessageLogEntry(
        messageKey=request.message_key,
        status="queued"
        if isinstance(decision, Send)
        else "deferred"
        if isinstance(decision, Defer)
        else "dropped",
        reason=None if isinstance(decision, Send) else decision.reason,
        reasonDetail=decision.detail if isinstance(decision, Drop) else None,
        channel=request.channel,
        to=decision.to if isinstance(decision, Send) else None,
        journey=request.journey,
        step=request.step,
        template=request.template,
        profileId=profile.profileId if profile else request.profileId,
        userId=profile.user_id if profile else None,
        createdAt=previous.createdAt if previous else clock.iso(now),
        content=decision.content if isinstance(decision, Send) else None,
        topic=topic,
        headers=decision.headers if isinstance(decision, Send) else None,
        firstDeferredAt=first_deferred or (clock.iso(now) if isinstance(decision, Defer) else None),
        deferredUntil=clock.iso(decision.until) if isinstance(decision, Defer) else None,
    )
    return entry


def _pause(attempt: int) -> None:
    """Full jitter after failed attempt `attempt`, up to `_PAUSE_MAX_SECONDS`."""
    time.sleep(backoff_delay(attempt, 0.01, _PAUSE_MAX_SECONDS, random.random))


def handle_send(
    request: SendRequest,
    profiles: GateReads,
    log: Log,
    queue: Queue,
    stats: Stats,
    segments: SegmentStates,
    policy: Policy,
    *,
    profiles_table: str | None = None,
    links: LinkMaker | None = None,
    pause: Callable[[int], None] | None = None,
) -> MessageLogEntry:
    """Run the send gate; log the outcome; enqueue what passes. Returns the log entry, which
    `answer_step` then reports to the state machine: `deferred` (with `deferredUntil`) makes it wait
    and run the step again.

    Idempotent on the message key: a decided message (queued, sent, dropped) is answered from the
    log (a queued one is enqueued again: the channel dedupes). A deferred one is decided again, and
    its new outcome replaces the deferral only if no other invocation replaced it first. The outcome
    is counted in the journey's stats by the invocation that committed it (a message's first
    deferral, and its final outcome)."""
    pause = pause or _pause
    previous = log.get(request.message_key)
    if previous is not None and previous.status != "deferred":
        _enqueue(previous, queue)
        return previous
    topic = topic_of(request, policy)
    for attempt in range(COMMIT_ATTEMPTS):
        now = clock.now()
        profile = profiles.profile(request.profileId)
        facts = (
            profiles.gate_facts(profile, request.channel, topic, policy)
            if profile is not None and topic in policy.topics
            else GateFacts()
        )
        decision = decide(
            request,
            profile,
            facts,
            policy,
            now,
            first_deferred_at=clock.parse(previous.firstDeferredAt)
            if previous and previous.firstDeferredAt
            else None,
            computed=computed_values(request, profile, segments),
            links=links,
        )
        entry = _entry(request, profile, decision, previous, topic, now)
        writes = decision.cap_writes if isinstance(decision, Send) else ()
        if log.commit(entry, previous, writes, profiles_table):
            if previous is None or entry.status != "deferred":
                stats.add(entry.journey, {outcome_counter(entry): 1})
            _enqueue(entry, queue)
            return entry
        current = log.get(request.message_key)
        if current is not None and (previous is None or current != previous):
            _enqueue(current, queue)  # another invocation decided it
            return current
        # A cap item changed under this send: read and decide again, after a jittered pause.
        if attempt < COMMIT_ATTEMPTS - 1:
            pause(attempt)
    raise CapContentionError(f"cap items kept changing after {COMMIT_ATTEMPTS} attempts")


def answer_step(token: str, entry: MessageLogEntry, answers: StepAnswers) -> bool:
    """Answer the send step's task token with the outcome `handle_send` logged (only once it is
    logged: a retried invocation finds it there and answers again). A deferral fails the token with
    DEFERRED_ERROR, its cause the instant the gate named (the state machine waits until then and runs
    the step again); any other outcome resumes the run. False when the token was answered already.

    A deferral is not an error of the function: it returns normally, so the deliver function's
    error alarm does not count it."""
    if entry.status != "deferred":
        return answers.resume(token)
    if entry.deferredUntil is None:  # MessageLogEntry allows it; the gate never logs one without
        raise ValueError("a deferred send without the instant it waits for")
    return answers.fail(token, DEFERRED_ERROR, entry.deferredUntil)


def _enqueue(entry: MessageLogEntry, queue: Queue) -> None:
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
                headers=entry.headers,
            )
        )


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
