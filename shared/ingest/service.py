"""Accepting calls: drop those seen before (by source and messageId, within the dedupe window),
publish the rest, and remember what was published. Only what reached the bus is remembered, so a
client's retry after a failed publish is accepted, never dropped as a duplicate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.models.events import BusEvent, PublishError


class SeenMessages(Protocol):
    def seen(self, keys: set[str]) -> set[str]: ...

    def remember(self, keys: list[str], window_seconds: int) -> None: ...


class Publisher(Protocol):
    def publish(self, events: Sequence[BusEvent]) -> None: ...


@dataclass(frozen=True)
class Accepted:
    published: int
    duplicates: int


def dedupe_key(source_id: str, message_id: str) -> str:
    return f"{source_id}#{message_id}"


def accept(
    events: list[BusEvent], source_id: str, seen: SeenMessages, publisher: Publisher, window_seconds: int
) -> Accepted:
    keys = [dedupe_key(source_id, event.correlation_id) for event in events]
    already = seen.seen(set(keys))
    fresh: list[tuple[str, BusEvent]] = []
    for key, event in zip(keys, events, strict=True):
        if key not in already:
            already.add(key)  # a messageId repeated inside one request is published once
            fresh.append((key, event))
    try:
        publisher.publish([event for _, event in fresh])
    except PublishError as error:
        seen.remember([fresh[i][0] for i in error.published], window_seconds)
        raise
    seen.remember([key for key, _ in fresh], window_seconds)
    return Accepted(published=len(fresh), duplicates=len(events) - len(fresh))
