"""Consent per profile, per topic and channel: one item per profile beside the profile item
(`pk = profile#<id>`, `sk = consent`), one Map attribute per `consent_key(topic, channel)`
holding `{subscribed, source, at}`. Erasure deletes it with the rest of the profile's items.

In-branch stand-in (i10-links) for the store branch i10-consent owns, with the signatures of
DESIGN10.md (`ConsentStore.record`, `.consent`): the merge keeps i10-consent's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.models.policy import ConsentRecord
from shared.models.profile import Profile
from shared.store.aws import TableStore, error_code
from shared.store.profiles import profile_key


def consent_item_key(profile_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"profile#{profile_id}"}, "sk": {"S": "consent"}}


def _record(attribute: dict[str, Any]) -> ConsentRecord:
    fields = attribute["M"]
    return ConsentRecord(
        subscribed=fields["subscribed"]["BOOL"], source=fields["source"]["S"], at=fields["at"]["S"]
    )


def fold_consent(items: list[dict[str, Any]]) -> dict[str, ConsentRecord]:
    """Consent items of one person (their profile and those merged into it): newest `at` per key."""
    folded: dict[str, ConsentRecord] = {}
    for item in items:
        for key, attribute in item.items():
            if key in ("pk", "sk") or "M" not in attribute:
                continue
            record = _record(attribute)
            if key not in folded or folded[key].at <= record.at:
                folded[key] = record
    return folded


class ConsentStore(TableStore):
    def record(self, profile_id: str, changes: Mapping[str, ConsentRecord]) -> bool:
        """Write each choice unless a newer one is stored (newest `at` wins; equal: this one).
        One UpdateItem per key: a transaction cannot hold per-key conditions on one item. False when
        the profile does not exist (nothing written)."""
        if "Item" not in self._db.get_item(
            TableName=self._table, Key=profile_key(profile_id), ConsistentRead=True
        ):
            return False
        for key, change in changes.items():
            try:
                self._db.update_item(
                    TableName=self._table,
                    Key=consent_item_key(profile_id),
                    UpdateExpression="SET #k = :v",
                    ConditionExpression="attribute_not_exists(#k) OR #k.#at <= :at",
                    ExpressionAttributeNames={"#k": key, "#at": "at"},
                    ExpressionAttributeValues={
                        ":v": {
                            "M": {
                                "subscribed": {"BOOL": change.subscribed},
                                "source": {"S": change.source},
                                "at": {"S": change.at},
                            }
                        },
                        ":at": {"S": change.at},
                    },
                )
            except Exception as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise  # a newer choice for this key is stored: this one is simply older
        return True

    def consent(self, profile: Profile) -> dict[str, ConsentRecord]:
        ids = [profile.profileId, *profile.mergedFrom]
        response = self._db.batch_get_item(
            RequestItems={self._table: {"Keys": [consent_item_key(i) for i in ids], "ConsistentRead": True}}
        )
        return fold_consent(response["Responses"].get(self._table, []))
