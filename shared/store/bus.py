"""The one publisher: PutEvents in batches of 10, failed entries retried, nothing dropped silently."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from shared.models.events import BusEvent
from shared.store.aws import client

BATCH = 10  # PutEvents' limit of entries per call
BATCH_BYTES = 256 * 1024  # PutEvents' limit of the entries' total size per call
ATTEMPTS = 3


class PublishError(Exception):
    """Some events could not be put on the bus after retries. `published` lists the indices (in the
    order given) of those that were."""

    def __init__(self, failed: int, reason: str, published: list[int]):
        super().__init__(f"{failed} event(s) not published: {reason}")
        self.failed = failed
        self.published = published


class EventPublisher:
    def __init__(self, bus_name: str, events_client: Any = None, backoff_seconds: float = 0.05):
        self._bus = bus_name
        self._client = events_client
        self._backoff = backoff_seconds

    def publish(self, events: Sequence[BusEvent]) -> None:
        entries = [
            {
                "EventBusName": self._bus,
                "Source": event.source,
                "DetailType": event.detail_type,
                "Detail": event.detail_json,
            }
            for event in events
        ]
        published: list[int] = []
        failed: list[int] = []
        reasons: set[str] = set()
        for chunk in _chunks([event.entry_size for event in events]):
            ok, lost, why = self._put(entries, chunk)
            published += ok
            failed += lost
            reasons |= why
        if failed:
            raise PublishError(len(failed), json.dumps(sorted(reasons)), sorted(published))

    def _put(
        self, entries: list[dict[str, Any]], pending: list[int]
    ) -> tuple[list[int], list[int], set[str]]:
        """Put entries[i] for i in pending, retrying failed entries; (published, failed, reasons)."""
        events_client = self._client or client("events")
        published: list[int] = []
        reasons: set[str] = set()
        for attempt in range(ATTEMPTS):
            try:
                response = events_client.put_events(Entries=[entries[i] for i in pending])
            except Exception as error:  # throttled or unreachable after botocore's own retries
                reasons.add(type(error).__name__)
                time.sleep(self._backoff * (2**attempt))
                continue
            results = response["Entries"]
            published += [
                i for i, result in zip(pending, results, strict=True) if not result.get("ErrorCode")
            ]
            still = [
                (i, result) for i, result in zip(pending, results, strict=True) if result.get("ErrorCode")
            ]
            pending = [i for i, _ in still]
            reasons |= {result["ErrorCode"] for _, result in still}
            if not pending:
                return published, [], set()
            time.sleep(self._backoff * (2**attempt))
        return published, pending, reasons


def _chunks(sizes: list[int]) -> list[list[int]]:
    """Indices grouped into PutEvents calls: at most 10 entries and 256 KB each, in order."""
    chunks: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index, size in enumerate(sizes):
        if current and (len(current) == BATCH or total + size > BATCH_BYTES):
            chunks.append(current)
            current, total = [], 0
        current.append(index)
        total += size
    if current:
        chunks.append(current)
    return chunks
