"""Sources (one item per write key, by its hash) and the messageIds seen recently (dedupe)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared import clock
from shared.ingest.service import Claim
from shared.ingest.sources import Source
from shared.store.aws import TableStore, error_code

_BATCH_GET = 100
_BATCH_WRITE = 25
_RESERVE_WORKERS = 16
_PENDING = {"S": "pending"}
_SEEN = {"S": "seen"}


class SourceNotFoundError(Exception):
    """No source with that id."""


class SourceStore(TableStore):
    def add(self, source: Source) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={name: {"S": value} for name, value in source.model_dump(exclude_none=True).items()},
            ConditionExpression="attribute_not_exists(keyHash)",
        )

    def find(self, key_hash: str) -> Source | None:
        item = self._db.get_item(TableName=self._table, Key={"keyHash": {"S": key_hash}}).get("Item")
        return Source.model_validate({k: v["S"] for k, v in item.items()}) if item else None

    def all(self) -> list[Source]:
        sources = [Source.model_validate({k: v["S"] for k, v in i.items()}) for i in self._items("scan")]
        return sorted(sources, key=lambda s: s.createdAt)

    def revoke(self, source_id: str) -> Source:
        for source in self.all():
            if source.sourceId == source_id:
                revoked = source.model_copy(update={"revokedAt": source.revokedAt or clock.iso(clock.now())})
                try:
                    self._db.update_item(
                        TableName=self._table,
                        Key={"keyHash": {"S": source.keyHash}},
                        UpdateExpression="SET revokedAt = :at",
                        ExpressionAttributeValues={":at": {"S": revoked.revokedAt}},
                        ConditionExpression="attribute_exists(keyHash)",
                    )
                except Exception as error:
                    if error_code(error) == "ConditionalCheckFailedException":
                        raise SourceNotFoundError(source_id) from error
                    raise
                return revoked
        raise SourceNotFoundError(source_id)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _workers() -> ThreadPoolExecutor:
    """One pool per process, made on first use and kept: a warm Lambda reuses its threads."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_RESERVE_WORKERS, thread_name_prefix="dedupe")
        return _pool


class SeenMessageStore(TableStore):
    """`dedupeKey` → `state` (`pending`: reserved by a request publishing it; `seen`: published) and
    `expiresAt` (epoch seconds, also the table's TTL attribute). TTL deletion lags, so an item whose
    `expiresAt` has passed counts as absent. Items written before `state` existed are `seen`."""

    def reserve(self, keys: Sequence[str], hold_seconds: int) -> dict[str, Claim]:
        now = int(clock.now().timestamp())
        # Retried requests are mostly calls already confirmed: one read per 100 finds those, and
        # only the others cost a conditional write each.
        claims = {key: Claim.SEEN for key in self._confirmed(keys, now)}
        todo = [key for key in keys if key not in claims]
        if len(todo) == 1:
            claims[todo[0]] = self._reserve(todo[0], now, hold_seconds)
        elif todo:
            # Conditional writes cannot be batched: issue them side by side (boto3 clients are
            # thread-safe), or a batch of 2,500 new calls would take 2,500 round trips in a row.
            # One task per worker, each taking its share in turn: a task per key costs more in
            # hand-offs between threads than the write itself when DynamoDB answers fast.
            shares = [todo[n::_RESERVE_WORKERS] for n in range(min(_RESERVE_WORKERS, len(todo)))]
            for share in _workers().map(
                lambda keys: [(k, self._reserve(k, now, hold_seconds)) for k in keys], shares
            ):
                claims.update(share)
        return claims

    def confirm(self, keys: Sequence[str], window_seconds: int) -> None:
        expires = str(int(clock.now().timestamp()) + window_seconds)
        self._write(
            [
                {"PutRequest": {"Item": {"dedupeKey": {"S": k}, "expiresAt": {"N": expires}, "state": _SEEN}}}
                for k in keys
            ]
        )

    def release(self, keys: Sequence[str]) -> None:
        self._write([{"DeleteRequest": {"Key": {"dedupeKey": {"S": k}}}} for k in keys])

    def _reserve(self, key: str, now: int, hold_seconds: int) -> Claim:
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "dedupeKey": {"S": key},
                    "expiresAt": {"N": str(now + hold_seconds)},
                    "state": _PENDING,
                },
                ConditionExpression="attribute_not_exists(dedupeKey) OR expiresAt <= :now",
                ExpressionAttributeValues={":now": {"N": str(now)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            held = getattr(error, "response", {}).get("Item") or {}
            return Claim.PENDING if held.get("state") == _PENDING else Claim.SEEN
        return Claim.RESERVED

    def _confirmed(self, keys: Sequence[str], now: int) -> set[str]:
        found: set[str] = set()
        ordered = sorted(set(keys))
        for start in range(0, len(ordered), _BATCH_GET):
            request: dict[str, Any] = {
                self._table: {"Keys": [{"dedupeKey": {"S": k}} for k in ordered[start : start + _BATCH_GET]]}
            }
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self._table, []):
                    if int(item["expiresAt"]["N"]) > now and item.get("state", _SEEN) == _SEEN:
                        found.add(item["dedupeKey"]["S"])
                request = response.get("UnprocessedKeys") or {}
        return found

    def _write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), _BATCH_WRITE):
            pending = requests[start : start + _BATCH_WRITE]
            for attempt in range(5):
                response = self._db.batch_write_item(RequestItems={self._table: pending})
                pending = (response.get("UnprocessedItems") or {}).get(self._table, [])
                if not pending:
                    break
                time.sleep(0.05 * 2**attempt)
            # Still unprocessed after retries: those reservations stay pending until they expire
            # (RESERVATION_SECONDS); a confirmed call may then be accepted once more, never lost.
