"""What the audiences function does with one batch of the FIFO queue: keep `segment-members` in step,
then ask the ad platforms for the adds and removes, and say which messages failed.

Order. The queue is FIFO per profile (MessageGroupId = profileId), and a batch may hold several
messages of one profile: "entered" then "exited" of the same segment, say. Adds and removes are set
operations on the platform, so a sequence of them on one identifier leaves what the last one left:
the batch is reduced to the last action per (platform, audience, identifier), in message order, and
those are grouped by (platform, audience, action) into as few requests as the platforms' limits
allow. An add and a remove of the same identifier in one batch never both reach the platform, so
they cannot arrive in the wrong order.

Reconciled against the state. Two events of one profile are decided in order (each write is
conditional on the state's version), but the invocations that decided them send their messages
concurrently: an add decided first may reach the queue after the removal decided second; an erasure's
removals may be queued before an add already decided. So a message is a hint, not an order: before
acting, the batch reads the profiles' segment states (one BatchGetItem), which always hold the latest
decision, and keeps only what still agrees with it: an add of a hash the state still wants synced, a
removal of a hash it no longer wants (every removal when the state is gone: erased or merged away);
a membership entry only if the state still has the segment, an exit only if not. A stale message then
does nothing, and the last word is always the state's.

Failures (Lambda's contract for FIFO sources with ReportBatchItemFailures): a message that fails is
reported, and so is every later message of its group in the batch, so that SQS redelivers them in
order; the earlier ones are done. A failed request fails every message that had an intent for that
(platform, audience), since the reduction may have folded their actions into it. Everything here is
idempotent (a put or delete of a membership item, an add or remove on a platform), so a message
redelivered after a partial success does no harm.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from shared.models.segments import AudienceMessage, SegmentState
from shared.segments.engine import synced_key
from shared.store.ad_platforms import Action, AdPlatformRequestError, Member, Platform

logger = Logger()


class MembershipPort(Protocol):
    def enter(self, segment: str, profile_id: str, at: str) -> None: ...

    def leave(self, segment: str, profile_id: str) -> None: ...


class StatesPort(Protocol):
    def states(self, profile_ids: Iterable[str]) -> list[SegmentState]:
        """The current segment states of these profiles (those that have one), strongly consistent."""
        ...


class AudienceClientPort(Protocol):
    def apply(self, audience: str, action: Action, members: Sequence[Member]) -> int: ...


class PlatformsPort(Protocol):
    def client(self, platform: Platform) -> AudienceClientPort: ...


@dataclass(frozen=True)
class QueuedMessage:
    """One SQS record: its id (what a batch item failure names), its group and its body."""

    message_id: str
    group: str | None
    body: str


@dataclass(frozen=True)
class Request:
    """The requests one (platform, audience, action) needs: the members in order of first appearance."""

    platform: Platform
    audience: str
    action: Action
    members: tuple[Member, ...]

    @property
    def identifiers(self) -> int:
        return sum(member.size for member in self.members)


@dataclass
class Outcome:
    failed: list[str] = field(default_factory=list)  # message ids, in batch order
    requests: int = 0  # HTTP requests made to the platforms
    identifiers: int = 0  # identifiers added or removed


def reduce_intents(
    messages: Sequence[AudienceMessage],
) -> tuple[list[Request], dict[tuple[str, str], set[int]]]:
    """The last action per (platform, audience, identifier) over `messages` in order, as requests;
    and for each (platform, audience) the indices of the messages with intents for it."""
    last: dict[tuple[str, str, str, str], tuple[Action, str]] = {}
    touched: dict[tuple[str, str], set[int]] = {}
    for index, message in enumerate(messages):
        for intent in message.intents:
            touched.setdefault((intent.platform, intent.audience), set()).add(index)
            for identifier in intent.identifiers:
                key = (intent.platform, intent.audience, identifier.kind, identifier.sha256)
                last.pop(key, None)  # re-inserted: the dictionary keeps the order of last actions
                last[key] = (intent.action, intent.profileId)
    grouped: dict[tuple[str, str, str], dict[str, dict[str, list[str]]]] = {}
    for (platform, audience, kind, sha256), (action, profile_id) in last.items():
        person = grouped.setdefault((platform, audience, action), {}).setdefault(
            profile_id, {"email": [], "phone": []}
        )
        if sha256 not in person[kind]:
            person[kind].append(sha256)
    requests = [
        Request(
            platform,  # type: ignore[arg-type]
            audience,
            action,  # type: ignore[arg-type]
            tuple(Member(tuple(p["email"]), tuple(p["phone"])) for p in people.values()),
        )
        for (platform, audience, action), people in grouped.items()
    ]
    return requests, touched


def still_wanted(message: AudienceMessage, state: SegmentState | None) -> AudienceMessage:
    """`message` reduced to what the profile's current state still agrees with (see the module)."""
    synced: Mapping[str, Mapping[str, list[str]]] = state.synced if state is not None else {}
    intents = []
    for intent in message.intents:
        wanted = synced.get(synced_key(intent.platform, intent.audience, intent.segment), {})
        kept = [
            identifier
            for identifier in intent.identifiers
            if (identifier.sha256 in wanted.get(identifier.kind, ())) == (intent.action == "add")
        ]
        if kept:
            intents.append(intent.model_copy(update={"identifiers": kept}))
    entered = message.entered
    if entered is not None and entered != (state is not None and message.segment in state.segments):
        entered = None  # a later decision has it the other way: its own message says so
    return message.model_copy(update={"intents": intents, "entered": entered})


def sync_batch(
    records: Sequence[QueuedMessage], members: MembershipPort, platforms: PlatformsPort, states: StatesPort
) -> Outcome:
    outcome = Outcome()
    parsed: list[AudienceMessage | None] = []
    failed_at: dict[str, int] = {}  # group -> index of its first failed message

    def group_of(index: int) -> str:
        message = parsed[index]
        return records[index].group or (message.profileId if message else records[index].message_id)

    def fail(index: int) -> None:
        group = group_of(index)
        failed_at[group] = min(index, failed_at.get(group, index))

    def failed(index: int) -> bool:
        first = failed_at.get(group_of(index))
        return first is not None and first <= index

    for record in records:
        try:
            parsed.append(AudienceMessage.model_validate_json(record.body))
        except ValidationError:
            parsed.append(None)
    current = {s.profileId: s for s in states.states({m.profileId for m in parsed if m is not None})}
    parsed = [m if m is None else still_wanted(m, current.get(m.profileId)) for m in parsed]
    for index, message in enumerate(parsed):
        if message is None:
            logger.error(
                "audience message is not an AudienceMessage",
                extra={"sqsMessageId": records[index].message_id},
            )
            fail(index)
            continue
        if failed(index) or message.entered is None:
            continue
        try:
            if message.entered:
                members.enter(message.segment, message.profileId, message.at)
            else:
                members.leave(message.segment, message.profileId)
        except Exception as error:  # reported back to SQS, never swallowed
            logger.warning(
                "segment membership not written: %s", type(error).__name__, extra={"segment": message.segment}
            )
            fail(index)

    live = [i for i, m in enumerate(parsed) if m is not None and not failed(i)]
    requests, touched = reduce_intents([parsed[i] for i in live])  # type: ignore[misc]
    for request in requests:
        try:
            outcome.requests += platforms.client(request.platform).apply(
                request.audience, request.action, request.members
            )
            outcome.identifiers += request.identifiers
        except Exception as error:  # every message behind this request is retried
            status = error.status if isinstance(error, AdPlatformRequestError) else None
            logger.warning(
                "audience request failed: %s",
                error if isinstance(error, AdPlatformRequestError) else type(error).__name__,
                extra={
                    "platform": request.platform,
                    "audience": request.audience,
                    "action": request.action,
                    "status": status,
                },
            )
            for position in touched.get((request.platform, request.audience), set()):
                fail(live[position])
    outcome.failed = [record.message_id for index, record in enumerate(records) if failed(index)]
    return outcome
