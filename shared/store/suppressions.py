"""Suppressed addresses: no message is sent to them again, whatever the topic (transactional too).

Item (profiles table): `pk = deliverability#<channel>#<sha256 hex of the normalised address>`,
`sk = suppression`, with `reason`, `at`, `source`. Only a hash is kept, so the item holds no personal
data and outlives an erasure (a hard-bounced address stays bounced). Its prefix is not `suppressed#`:
that is erasure's record of an erased person's identifiers (shared/store/profiles.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from shared.identity.identifiers import normalise_email
from shared.models.policy import Suppression
from shared.store.aws import TableStore, error_code
from shared.store.profiles import batch_get

SUPPRESSION_SK = "suppression"


def normalised_address(channel: str, address: str) -> str:
    """An address as identity stores it (emails trimmed and lower-cased), so that a bounce reported
    as `Ann@Example.com` suppresses the `ann@example.com` a profile holds."""
    if channel == "email":
        return normalise_email(address) or address.strip().lower()
    return address.strip()


def suppression_key(channel: str, address: str) -> dict[str, Any]:
    digest = hashlib.sha256(normalised_address(channel, address).encode("utf-8")).hexdigest()
    return {"pk": {"S": f"deliverability#{channel}#{digest}"}, "sk": {"S": SUPPRESSION_SK}}


def suppression_from_item(item: dict[str, Any]) -> Suppression:
    return Suppression.model_validate(
        {"reason": item["reason"]["S"], "at": item["at"]["S"], "source": item["source"]["S"]}
    )


class SuppressionStore(TableStore):
    def suppress(self, channel: str, address: str, suppression: Suppression) -> bool:
        """Suppress the address. False when it was suppressed already (the first record is kept: SES
        may report one bounce twice)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    **suppression_key(channel, address),
                    "reason": {"S": suppression.reason},
                    "at": {"S": suppression.at},
                    "source": {"S": suppression.source},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def suppressions(self, channel: str, addresses: Iterable[str]) -> dict[str, Suppression]:
        """The suppressed ones among `addresses` (keyed by the address as given)."""
        by_pk: dict[str, list[str]] = {}
        for address in dict.fromkeys(addresses):
            by_pk.setdefault(suppression_key(channel, address)["pk"]["S"], []).append(address)
        keys = [{"pk": {"S": pk}, "sk": {"S": SUPPRESSION_SK}} for pk in by_pk]
        found: dict[str, Suppression] = {}
        for item in batch_get(self._db, self._table, keys):
            for address in by_pk[item["pk"]["S"]]:
                found[address] = suppression_from_item(item)
        return found
