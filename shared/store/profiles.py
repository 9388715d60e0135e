"""Profiles and the identifier index in DynamoDB (one table, see infra/topology.py).

Items: `profile#<id>` holds the profile as JSON in `doc` with its `version`; `identifier#<type>#<value>`
holds the `profileId` the identifier was first claimed by. Merged profiles stay, with `mergedInto`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from shared.identity.resolver import ConcurrentChangeError
from shared.models.profile import Identifier, Profile
from shared.store.aws import TableStore, error_code

_BATCH_GET = 100  # BatchGetItem's limit


def _profile_key(profile_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"profile#{profile_id}"}}


def _identifier_key(identifier: Identifier) -> dict[str, Any]:
    return {"pk": {"S": f"identifier#{identifier.type}#{identifier.value}"}}


class DynamoProfileStore(TableStore):
    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for start in range(0, len(keys), _BATCH_GET):
            request: dict[str, Any] = {
                self._table: {"Keys": keys[start : start + _BATCH_GET], "ConsistentRead": True}
            }
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                items.extend(response["Responses"].get(self._table, []))
                request = response.get("UnprocessedKeys") or {}
        return items

    def owners(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        by_key = {_identifier_key(i)["pk"]["S"]: i for i in identifiers}
        items = self._batch_get([{"pk": {"S": key}} for key in by_key])
        return {by_key[item["pk"]["S"]]: item["profileId"]["S"] for item in items}

    def profiles(self, profile_ids: Iterable[str]) -> dict[str, Profile]:
        items = self._batch_get([_profile_key(p) for p in sorted(set(profile_ids))])
        found = {}
        for item in items:
            profile = Profile.model_validate_json(item["doc"]["S"])
            profile.version = int(item["version"]["N"])
            found[profile.profileId] = profile
        return found

    def profile(self, profile_id: str) -> Profile | None:
        """The live profile `profile_id` resolves to, following merges."""
        for _ in range(8):
            found = self.profiles([profile_id]).get(profile_id)
            if found is None or not found.mergedInto:
                return found
            profile_id = found.mergedInto
        return None

    def commit(self, changed: list[Profile], claims: dict[Identifier, str | None]) -> None:
        actions: list[dict[str, Any]] = []
        for profile in changed:
            doc = profile.model_dump(mode="json", exclude={"version"})
            item = {
                **_profile_key(profile.profileId),
                "doc": {"S": json.dumps(doc, separators=(",", ":"))},
                "version": {"N": str(profile.version + 1)},
            }
            if profile.version == 0:
                condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
            else:
                condition = {
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":v": {"N": str(profile.version)}},
                }
            actions.append({"Put": {"TableName": self._table, "Item": item, **condition}})
        target = changed[0].profileId
        for identifier in claims:
            actions.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {**_identifier_key(identifier), "profileId": {"S": target}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        try:
            if len(actions) == 1:
                self._db.put_item(**actions[0]["Put"])
            else:
                self._db.transact_write_items(TransactItems=actions)
        except Exception as error:
            if error_code(error) in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise ConcurrentChangeError(str(error)) from error
            raise
        for profile in changed:
            profile.version += 1
