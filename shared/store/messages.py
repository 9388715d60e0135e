"""The message log (every send and every drop, with its reason) and the channel queues."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.delivery.caps import CapWrite
from shared.models.message import MessageLogEntry, OutboundMessage
from shared.store.aws import TableStore, client, error_code
from shared.store.caps import cap_item
from shared.store.profiles import profile_key


def _attributes(entry: MessageLogEntry) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name, value in entry.model_dump(exclude_none=True).items():
        item[name] = (
            {"M": {k: {"S": v} for k, v in value.items()}} if isinstance(value, dict) else {"S": value}
        )
    return item


def _entry(item: dict[str, Any]) -> MessageLogEntry:
    plain = {
        name: {k: v["S"] for k, v in value["M"].items()} if "M" in value else value["S"]
        for name, value in item.items()
    }
    return MessageLogEntry.model_validate(plain)


class MessageLog(TableStore):
    def record(self, entry: MessageLogEntry) -> bool:
        """Write the entry unless one with its key exists: False means this send was handled before."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item=_attributes(entry),
                ConditionExpression="attribute_not_exists(messageKey)",
            )
        except Exception as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def commit(
        self,
        entry: MessageLogEntry,
        previous: MessageLogEntry | None,
        caps: Sequence[CapWrite] = (),
        profiles_table: str | None = None,
    ) -> bool:
        """The gate's outcome in ONE TransactWriteItems: the log entry (only if there is none yet, or
        it is still the deferral `previous` this invocation read) and every cap item the send counts
        on (only at the version read). False when a condition failed: another invocation decided the
        message, or another send took a cap slot (the caller reads again)."""
        if previous is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(messageKey)"}
        else:
            condition = {
                "ConditionExpression": "#s = :deferred AND deferredUntil = :until",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {
                    ":deferred": {"S": "deferred"},
                    ":until": {"S": previous.deferredUntil or ""},
                },
            }
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": _attributes(entry), **condition}}
        ]
        if entry.status == "queued" and profiles_table is not None:
            # The profile must still exist when the send commits: an erasure between the gate's read
            # and this write would otherwise leave a queued entry (address, content) and cap items
            # outliving the person, and mail them. Failing here, the caller reads again: not found.
            items.append(
                {
                    "ConditionCheck": {
                        "TableName": profiles_table,
                        "Key": profile_key(entry.profileId),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
            )
        for write in caps:
            assert profiles_table is not None
            items.append(
                {
                    "Put": {
                        "TableName": profiles_table,
                        "Item": cap_item(entry.profileId, write),
                        **(
                            {"ConditionExpression": "attribute_not_exists(pk)"}
                            if write.version == 0
                            else {
                                "ConditionExpression": "version = :v",
                                "ExpressionAttributeValues": {":v": {"N": str(write.version)}},
                            }
                        ),
                    }
                }
            )
        try:
            self._db.transact_write_items(TransactItems=items)
        except Exception as error:
            if error_code(error) == "TransactionCanceledException":
                return False
            raise
        return True

    def get(self, message_key: str) -> MessageLogEntry | None:
        item = self._db.get_item(
            TableName=self._table, Key={"messageKey": {"S": message_key}}, ConsistentRead=True
        ).get("Item")
        return _entry(item) if item else None

    def lease(self, message_key: str, holder: str, now: str, until: str) -> bool:
        """Take the message's lease: only a queued message whose lease is absent or expired (times
        are ISO-8601 UTC strings of one format, so they compare as strings)."""
        return self._conditional_update(
            message_key,
            UpdateExpression="SET leaseHolder = :holder, leaseUntil = :until",
            ConditionExpression="#s = :queued AND (attribute_not_exists(leaseUntil) OR leaseUntil <= :now)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":holder": {"S": holder},
                ":until": {"S": until},
                ":queued": {"S": "queued"},
                ":now": {"S": now},
            },
        )

    def release(self, message_key: str, holder: str) -> None:
        self._conditional_update(
            message_key,
            UpdateExpression="REMOVE leaseHolder, leaseUntil",
            ConditionExpression="leaseHolder = :holder",
            ExpressionAttributeValues={":holder": {"S": holder}},
        )

    def mark_sent(self, message_key: str, holder: str, sent_at: str, provider_message_id: str) -> bool:
        return self._conditional_update(
            message_key,
            UpdateExpression="SET #s = :sent, sentAt = :at, providerMessageId = :pid "
            "REMOVE leaseHolder, leaseUntil",
            ConditionExpression="leaseHolder = :holder",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":sent": {"S": "sent"},
                ":at": {"S": sent_at},
                ":pid": {"S": provider_message_id},
                ":holder": {"S": holder},
            },
        )

    def mark_undeliverable(self, message_key: str, reason: str) -> bool:
        """A queued message its provider refuses for good (a disabled push endpoint): dropped, with the
        reason. False when it is no longer queued (sent or dropped meanwhile)."""
        return self._conditional_update(
            message_key,
            UpdateExpression="SET #s = :dropped, reason = :reason REMOVE leaseHolder, leaseUntil",
            ConditionExpression="#s = :queued",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":dropped": {"S": "dropped"},
                ":reason": {"S": reason},
                ":queued": {"S": "queued"},
            },
        )

    def _conditional_update(self, message_key: str, **request: Any) -> bool:
        """An UpdateItem with a condition: False when the condition failed."""
        try:
            self._db.update_item(TableName=self._table, Key={"messageKey": {"S": message_key}}, **request)
        except Exception as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def drop_deferred(self, profile_id: str, execution: str, reason: str) -> list[str]:
        """Mark the execution's `deferred` entries dropped with `reason` (its run ended while they
        waited). Each update is conditional on the entry still being deferred, so a send the gate
        decided meanwhile stays as it was. Returns the keys dropped here."""
        dropped = []
        for item in self._items(
            "query",
            IndexName="byProfile",
            KeyConditionExpression="profileId = :p",
            FilterExpression="begins_with(messageKey, :execution) AND #s = :deferred",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":p": {"S": profile_id},
                ":execution": {"S": f"{execution}#"},
                ":deferred": {"S": "deferred"},
            },
            ProjectionExpression="messageKey",
        ):
            key = item["messageKey"]["S"]
            if self._conditional_update(
                key,
                UpdateExpression="SET #s = :dropped, reason = :reason REMOVE deferredUntil",
                ConditionExpression="#s = :deferred",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":dropped": {"S": "dropped"},
                    ":reason": {"S": reason},
                    ":deferred": {"S": "deferred"},
                },
            ):
                dropped.append(key)
        return dropped

    def delete_for_profiles(self, profile_ids: list[str]) -> int:
        """Delete every entry of these profiles (erasure: the log holds addresses and content)."""
        deleted = 0
        for profile_id in profile_ids:
            for item in self._items(
                "query",
                IndexName="byProfile",
                KeyConditionExpression="profileId = :p",
                ExpressionAttributeValues={":p": {"S": profile_id}},
                ProjectionExpression="messageKey",
            ):
                self._db.delete_item(TableName=self._table, Key={"messageKey": item["messageKey"]})
                deleted += 1
        return deleted

    def scan(self) -> list[MessageLogEntry]:
        """Every entry (the local runtime's inspection routes; never on a hot path)."""
        return [_entry(item) for item in self._items("scan", ConsistentRead=True)]


class ChannelQueue:
    def __init__(self, queue_url: str, sqs: Any = None):
        self._url = queue_url
        self._client = sqs

    def send(self, message: OutboundMessage) -> None:
        (self._client or client("sqs")).send_message(
            QueueUrl=self._url, MessageBody=message.model_dump_json()
        )
