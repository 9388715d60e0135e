"""The one publisher: PutEvents in batches of 10, failed entries retried, nothing dropped silently."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from shared.models.events import BusEvent
from shared.store.aws import client

BATCH = 10  # PutEvents' limit per call
ATTEMPTS = 3


class PublishError(Exception):
    """Some events could not be put on the bus after retries."""

    def __init__(self, failed: int, reason: str):
        super().__init__(f"{failed} event(s) not published: {reason}")
        self.failed = failed


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
                "Detail": event.detail.model_dump_json(),
            }
            for event in events
        ]
        for start in range(0, len(entries), BATCH):
            self._put(entries[start : start + BATCH])

    def _put(self, entries: list[dict[str, Any]]) -> None:
        events_client = self._client or client("events")
        reason = ""
        for attempt in range(ATTEMPTS):
            response = events_client.put_events(Entries=entries)
            if not response.get("FailedEntryCount"):
                return
            failed = [
                (entry, result)
                for entry, result in zip(entries, response["Entries"], strict=True)
                if result.get("ErrorCode")
            ]
            entries = [entry for entry, _ in failed]
            reason = json.dumps(sorted({result["ErrorCode"] for _, result in failed}))
            time.sleep(self._backoff * (2**attempt))
        raise PublishError(len(entries), reason)
