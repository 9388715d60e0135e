"""Sources (one item per write key, by its hash) and the messageIds seen recently (dedupe)."""

from __future__ import annotations

import time
from typing import Any

from shared import clock
from shared.ingest.sources import Source
from shared.store.aws import TableStore, error_code

_BATCH_GET = 100
_BATCH_WRITE = 25


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


class SeenMessageStore(TableStore):
    """`dedupeKey` → `expiresAt` (epoch seconds, also the table's TTL attribute). TTL deletion lags,
    so an expired item still present is treated as unseen."""

    def seen(self, keys: set[str]) -> set[str]:
        found: set[str] = set()
        now = clock.now().timestamp()
        ordered = sorted(keys)
        for start in range(0, len(ordered), _BATCH_GET):
            request: dict[str, Any] = {
                self._table: {"Keys": [{"dedupeKey": {"S": k}} for k in ordered[start : start + _BATCH_GET]]}
            }
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self._table, []):
                    if float(item["expiresAt"]["N"]) > now:
                        found.add(item["dedupeKey"]["S"])
                request = response.get("UnprocessedKeys") or {}
        return found

    def remember(self, keys: list[str], window_seconds: int) -> None:
        expires = str(int(clock.now().timestamp()) + window_seconds)
        for start in range(0, len(keys), _BATCH_WRITE):
            requests = [
                {"PutRequest": {"Item": {"dedupeKey": {"S": k}, "expiresAt": {"N": expires}}}}
                for k in keys[start : start + _BATCH_WRITE]
            ]
            for attempt in range(5):
                response = self._db.batch_write_item(RequestItems={self._table: requests})
                requests = (response.get("UnprocessedItems") or {}).get(self._table, [])
                if not requests:
                    break
                time.sleep(0.05 * 2**attempt)
            # Still unprocessed after retries: those calls are only not deduplicated, never lost.
