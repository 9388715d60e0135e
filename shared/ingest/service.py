"""Accepting calls exactly once per source and messageId: reserve, publish, then confirm.

Each call's dedupe key is first *reserved* with a conditional write, so that of two concurrent
copies of a messageId only one can go on to publish (a check before publishing cannot promise that:
both copies would pass it). What was published is then *confirmed*, for the dedupe window; what
could not be published is *released*, so that the client's retry is accepted, never dropped.

A reservation holds for RESERVATION_SECONDS, longer than an ingest request can run (its Lambda
timeout): one left by a request that crashed between reserving and confirming expires on its own
and the retry is accepted after it. A copy that meets a reservation still held is answered 503 (retry
later), not 200: the request holding it may yet fail, and acknowledging the copy would lose the call.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.ingest.calls import IngestError
from shared.models.events import BusEvent, PublishError

# Longer than an ingest request can take: the function's timeout is 10 s (infra/topology.py; a unit
# test keeps the two in step), and Lambda stops the request there, so a live request never outlives
# its reservation. A retry after a crash waits at most this long.
RESERVATION_SECONDS = 30


class Claim(enum.Enum):
    RESERVED = "reserved"  # taken by this request: publish it
    SEEN = "seen"  # confirmed within its dedupe window: a duplicate
    PENDING = "pending"  # reserved by another request that has not finished: retry later


class SeenMessages(Protocol):
    def reserve(self, keys: Sequence[str], hold_seconds: int) -> dict[str, Claim]:
        """Reserve each key that is neither confirmed nor reserved (an expired one counts as
        neither), atomically per key; the claim on every key given."""
        ...

    def confirm(self, keys: Sequence[str], window_seconds: int) -> None:
        """The reserved keys were published: they are duplicates for `window_seconds`."""
        ...

    def release(self, keys: Sequence[str]) -> None:
        """The reserved keys were not published: forget them."""
        ...


class Publisher(Protocol):
    def publish(self, events: Sequence[BusEvent]) -> None: ...


class InFlightError(IngestError):
    """Copies of calls another request is publishing right now: their outcome is not known yet."""

    status = 503


@dataclass(frozen=True)
class Accepted:
    published: int
    duplicates: int


def dedupe_key(source_id: str, message_id: str) -> str:
    return f"{source_id}#{message_id}"


def accept(
    events: list[BusEvent], source_id: str, seen: SeenMessages, publisher: Publisher, window_seconds: int
) -> Accepted:
    """Publish the calls not seen before, once each. Raises PublishError (what was published is
    confirmed, the rest released) or, after publishing the rest, InFlightError for copies of calls
    another request holds."""
    keys = [dedupe_key(source_id, event.correlation_id) for event in events]
    # A messageId repeated inside one request is published once: the first of its calls.
    first: dict[str, BusEvent] = {}
    for key, event in zip(keys, events, strict=True):
        first.setdefault(key, event)
    claims = seen.reserve(list(first), RESERVATION_SECONDS)
    fresh = [(key, event) for key, event in first.items() if claims[key] is Claim.RESERVED]
    try:
        publisher.publish([event for _, event in fresh])
    except PublishError as error:
        published = [fresh[i][0] for i in error.published]
        seen.confirm(published, window_seconds)
        seen.release(sorted({key for key, _ in fresh} - set(published)))
        raise
    except BaseException:
        seen.release([key for key, _ in fresh])
        raise
    seen.confirm([key for key, _ in fresh], window_seconds)
    in_flight = [key for key in first if claims[key] is Claim.PENDING]
    if in_flight:
        raise InFlightError(
            f"{len(in_flight)} call(s) of this request are being accepted by another request; retry"
        )
    return Accepted(published=len(fresh), duplicates=len(events) - len(fresh))
