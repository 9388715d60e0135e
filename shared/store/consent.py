"""Consent records, one item per profile beside the profile in the profiles table.

Item: `pk = profile#<profileId>` (the profile's own partition: erasure deletes it with the profile),
`sk = consent`, one Map attribute per `consent_key` (`"<topic>/<channel>"`): `{subscribed, source, at}`.

Writes are newest-wins per key: each key is set only if it is absent or its stored `at` is not newer
than the new one (equal instants: the new write wins). DynamoDB's transactions allow one action per
item, so a change of several keys is one transaction per key — a ConditionCheck that the profile
still exists (no consent outlives an erasure) and the conditional Update — rather than one
read-modify-write with a version, which would make concurrent writers of different keys retry.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

from shared.backoff import backoff_delay
from shared.models.policy import ConsentRecord
from shared.models.profile import Profile
from shared.store.aws import TableStore, error_code
from shared.store.profiles import batch_get, profile_key

CONSENT_SK = "consent"
_ATTEMPTS = 8
_BACKOFF_BASE_SECONDS = 0.02
_BACKOFF_MAX_SECONDS = 1.0


def consent_item_key(profile_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"profile#{profile_id}"}, "sk": {"S": CONSENT_SK}}


def consent_keys(profile: Profile) -> list[dict[str, Any]]:
    """The consent items' keys of a profile and of every profile merged into it (for a BatchGetItem)."""
    return [consent_item_key(p) for p in dict.fromkeys([profile.profileId, *profile.mergedFrom])]


def _record(attribute: dict[str, Any]) -> ConsentRecord:
    value = attribute["M"]
    return ConsentRecord(
        subscribed=value["subscribed"]["BOOL"], source=value["source"]["S"], at=value["at"]["S"]
    )


def fold_consent(items: Iterable[Mapping[str, Any]]) -> dict[str, ConsentRecord]:
    """The consent items of one person (a profile and those merged into it) as one record per key:
    the newest `at` wins; at equal instants an opt-out wins (the safe reading of a tie)."""
    folded: dict[str, ConsentRecord] = {}
    for item in items:
        for name, attribute in item.items():
            if name in ("pk", "sk") or "M" not in attribute:
                continue
            record = _record(attribute)
            held = folded.get(name)
            if held is None or (record.at, not record.subscribed) > (held.at, not held.subscribed):
                folded[name] = record
    return folded


class ConsentStore(TableStore):
    def record(self, profile_id: str, changes: Mapping[str, ConsentRecord]) -> bool:
        """Store each change unless a newer choice for its key is stored. False (nothing written)
        when the profile does not exist (never created, or erased)."""
        return all(self._record_one(profile_id, key, change) for key, change in changes.items())

    def _record_one(self, profile_id: str, key: str, change: ConsentRecord) -> bool:
        check = {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": profile_key(profile_id),
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        update = {
            "Update": {
                "TableName": self._table,
                "Key": consent_item_key(profile_id),
                "UpdateExpression": "SET #k = :record",
                "ConditionExpression": "attribute_not_exists(#k) OR #k.#at <= :at",
                "ExpressionAttributeNames": {"#k": key, "#at": "at"},
                "ExpressionAttributeValues": {
                    ":record": {
                        "M": {
                            "subscribed": {"BOOL": change.subscribed},
                            "source": {"S": change.source},
                            "at": {"S": change.at},
                        }
                    },
                    ":at": {"S": change.at},
                },
            }
        }
        for attempt in itertools.count():
            try:
                self._db.transact_write_items(TransactItems=[check, update])
                return True
            except Exception as error:
                if error_code(error) != "TransactionCanceledException":
                    raise
                reasons = [
                    r.get("Code") for r in getattr(error, "response", {}).get("CancellationReasons", [])
                ]
                if reasons[:1] == ["ConditionalCheckFailed"]:
                    return False  # no such profile
                if reasons[1:2] == ["ConditionalCheckFailed"]:
                    return True  # a newer choice is stored: this one is older, nothing to do
                if attempt + 1 >= _ATTEMPTS:
                    raise
                # A conflict with a concurrent write of the same item: try again shortly.
                time.sleep(backoff_delay(attempt, _BACKOFF_BASE_SECONDS, _BACKOFF_MAX_SECONDS, random.random))
        raise AssertionError("unreachable")

    def consent(self, profile: Profile) -> dict[str, ConsentRecord]:
        """The person's consent: the profile's records and those of every profile merged into it."""
        return fold_consent(batch_get(self._db, self._table, consent_keys(profile)))
