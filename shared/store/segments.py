"""A profile's segment state, beside its profile item in the profiles table, and the audiences queue.

Item: `pk = profile#<profileId>`, `sk = segments`, `state` (S: the SegmentState's JSON) and `version`
(N). The segments function reads it with the profile item in ONE BatchGetItem (strongly consistent)
and writes it with ONE conditional PutItem on `version`: however many segments are defined, an event
costs one read and at most one write. Erasure deletes it with the rest of the profile's partition
(it queries every item of the pk); identity never touches it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from shared.identity.resolver import ConcurrentChangeError
from shared.models.profile import Profile
from shared.models.segments import AudienceMessage, SegmentState
from shared.store.aws import client, error_code
from shared.store.profiles import DynamoProfileStore, _backoff, profile_from_item, profile_key

STATE_SORT_KEY = "segments"
_MERGE_HOPS = 8  # a merged profile points at its survivor; chains are short (identity folds them)
_SQS_BATCH = 10  # SendMessageBatch's limit
_SEND_ATTEMPTS = 3


def state_key(profile_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"profile#{profile_id}"}, "sk": {"S": STATE_SORT_KEY}}


def state_item(state: SegmentState, version: int) -> dict[str, Any]:
    stored = state.model_copy(update={"version": version})
    return {
        **state_key(state.profileId),
        "state": {"S": stored.model_dump_json()},
        "version": {"N": str(version)},
    }


def state_from_item(item: dict[str, Any]) -> SegmentState:
    state = SegmentState.model_validate_json(item["state"]["S"])
    # The attribute the condition checks is the truth (the JSON is written with it, in the same Put).
    return state.model_copy(update={"version": int(item["version"]["N"])})


class SegmentStore(DynamoProfileStore):
    """The segments function's reads and writes (and the Profile API's reads of the state)."""

    def read(self, profile_id: str) -> tuple[Profile | None, SegmentState | None]:
        """The live profile `profile_id` resolves to and its segment state, in one BatchGetItem (two
        keys), strongly consistent. A profile merged meanwhile is followed to its survivor (one more
        read per hop: rare). (None, None) when there is no such profile (never was, or erased)."""
        for _ in range(_MERGE_HOPS):
            profile: Profile | None = None
            state: SegmentState | None = None
            for item in self._batch_get([profile_key(profile_id), state_key(profile_id)]):
                if item["sk"]["S"] == STATE_SORT_KEY:
                    state = state_from_item(item)
                else:
                    profile = profile_from_item(item)
            if profile is None or not profile.mergedInto:
                return profile, state
            profile_id = profile.mergedInto
        return None, None

    def put(self, state: SegmentState, expected_version: int) -> int:
        """Write the state if it is still at `expected_version` (0: there is none yet); the version
        written (expected + 1). Lost a race: ConcurrentChangeError (re-read and decide again)."""
        condition = "attribute_not_exists(pk)" if expected_version == 0 else "version = :v"
        values = {} if expected_version == 0 else {":v": {"N": str(expected_version)}}
        try:
            self._db.put_item(
                TableName=self._table,
                Item=state_item(state, expected_version + 1),
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except Exception as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise ConcurrentChangeError(
                    f"segment state of {state.profileId} changed meanwhile"
                ) from error
            raise
        return expected_version + 1

    def fold(self, state: SegmentState, expected_version: int, merged: list[SegmentState]) -> int:
        """A merge, in one transaction: write the survivor's state (conditional on its version, as
        `put`) and delete the merged profiles' states (each conditional on the version it was read
        at), so that a retried merge never folds a state twice and a state changed meanwhile is not
        lost. The version written."""
        condition = "attribute_not_exists(pk)" if expected_version == 0 else "version = :v"
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": state_item(state, expected_version + 1),
            "ConditionExpression": condition,
        }
        if expected_version:
            put["ExpressionAttributeValues"] = {":v": {"N": str(expected_version)}}
        deletes = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": state_key(old.profileId),
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":v": {"N": str(old.version)}},
                }
            }
            for old in merged
        ]
        self._transact([{"Put": put}, *deletes])  # lost race: ConcurrentChangeError
        return expected_version + 1

    def segment_state(self, profile_id: str) -> SegmentState | None:
        """One profile's segment state, read strongly consistent (a journey branch on segments or
        computed traits, a template's `computed`); None when it has none (no event has reached the
        segments function for it, or the catalogue is empty). One GetItem, only when asked."""
        item = self._db.get_item(TableName=self._table, Key=state_key(profile_id), ConsistentRead=True).get(
            "Item"
        )
        return None if item is None else state_from_item(item)

    def states(self, profile_ids: Iterable[str]) -> list[SegmentState]:
        """The segment states of these profiles (those that have one), in one batched read."""
        keys = [state_key(p) for p in dict.fromkeys(profile_ids)]
        return [state_from_item(item) for item in self._batch_get(keys)] if keys else []

    def delete(self, profile_ids: Iterable[str]) -> None:
        self._batch_write([{"DeleteRequest": {"Key": state_key(p)}} for p in dict.fromkeys(profile_ids)])


class AudienceQueue:
    """Sends audience messages to the FIFO `audiences` queue: grouped by profile (in order per
    profile), deduplicated by an explicit id, ten per SendMessageBatch; failed entries retried."""

    def __init__(self, queue_url: str, sqs: Any = None):
        self._url = queue_url
        self._client = sqs

    def send(self, messages: list[tuple[AudienceMessage, str]]) -> None:
        """`messages`: each with its deduplication key (see `deduplication_id`)."""
        sqs = self._client or client("sqs")
        entries = [
            {
                "Id": str(n),
                "MessageBody": message.model_dump_json(),
                "MessageGroupId": message.profileId,
                "MessageDeduplicationId": dedupe,
            }
            for n, (message, dedupe) in enumerate(messages)
        ]
        for start in range(0, len(entries), _SQS_BATCH):
            pending = entries[start : start + _SQS_BATCH]
            for attempt in itertools.count():
                response = sqs.send_message_batch(QueueUrl=self._url, Entries=pending)
                failed = {f["Id"] for f in response.get("Failed", [])}
                pending = [e for e in pending if e["Id"] in failed]
                if not pending:
                    break
                if attempt + 1 >= _SEND_ATTEMPTS:
                    codes = sorted({f.get("Code", "?") for f in response.get("Failed", [])})
                    raise RuntimeError(f"{len(pending)} audience message(s) not queued: {codes}")
                _backoff(attempt)
