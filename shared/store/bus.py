"""The one publisher: PutEvents in batches of 10, failed entries retried, nothing dropped silently."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from shared.backoff import backoff_delay
from shared.models.events import BusEvent, PublishError
from shared.store.aws import client

__all__ = ["ATTEMPTS", "BATCH", "BATCH_BYTES", "EventPublisher", "PublishError"]

BATCH = 10  # PutEvents' limit of entries per call
BATCH_BYTES = 256 * 1024  # PutEvents' limit of the entries' total size per call
ATTEMPTS = 3
# Between attempts: "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"), a random
# wait up to base × 2^attempt, capped. Jitter spreads the retries of many concurrent functions that
# were throttled together; the cap bounds what one request can spend waiting (ingest answers an SDK).
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 1.0


class EventPublisher:
    def __init__(
        self,
        bus_name: str,
        events_client: Any = None,
        backoff_seconds: float = BACKOFF_BASE_SECONDS,
        *,
        max_backoff_seconds: float = BACKOFF_CAP_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        draw: Callable[[], float] = random.random,
    ):
        self._bus = bus_name
        self._client = events_client
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._sleep = sleep
        self._draw = draw  # in [0, 1): the jitter; injectable so that tests need not sleep or guess

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
                self._wait(attempt)
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
            self._wait(attempt)
        return published, pending, reasons

    def _wait(self, attempt: int) -> None:
        if attempt + 1 < ATTEMPTS:  # no wait after the last attempt: nothing follows it
            self._sleep(backoff_delay(attempt, self._backoff, self._max_backoff, self._draw))


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
