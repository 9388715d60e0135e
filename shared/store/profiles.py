"""Profiles, the identifier index, timelines, merge log and suppressions, in one DynamoDB table.

Items (`pk`, `sk`):
- `profile#<id>`, `profile`: the profile as native attributes (`traits`, `traitTimes`, `lastEvents`
  maps; one list attribute `ids_<type>` per identifier type, in the order they were attached;
  `version`, `latestEventAt`, `timezone`, `mergedInto`, `mergedFrom`).
- `identifier#<type>#<value>`, `identifier`: the `profileId` the identifier resolves to.
- `profile#<id>`, `event#<timestamp>#<messageId>`: one timeline entry.
- `profile#<id>`, `merge#<at>#<merged id>`: a merge, with what the merged profile was.
- `suppressed#<type>#<sha256 of value>`, `suppressed`: an erased person's identifier (no value kept).
- `profile#<id>`, `consent`: the person's consent per topic and channel (shared/store/consent.py).
- `deliverability#<channel>#<sha256 of address>`, `suppression`: a suppressed address, kept after an
  erasure (shared/store/suppressions.py).

Key limits: a partition key is at most 2,048 bytes and a sort key 1,024 (UTF-8). An identifier whose
key would be longer is never read or written (`Lookup.unstorable`: the resolver leaves it out); a
timeline entry whose sort key would be longer is keyed by the SHA-256 of its messageId instead.
The profile item carries `storedBytes`, an upper bound of its size (shared/identity/bounds.py): the
fast path adds what it writes and refuses to pass `PROFILE_MAX_BYTES`; the full path recomputes it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import time
from collections.abc import Iterable
from typing import Any

from shared import clock
from shared.backoff import backoff_delay
from shared.identity.bounds import PROFILE_MAX_BYTES, growth_bytes, profile_bytes, trait_text
from shared.identity.resolver import (
    ConcurrentChangeError,
    EventChange,
    FullPathNeededError,
    Lookup,
    Pointer,
)
from shared.identity.rules import IdentityRules
from shared.models.profile import Identifier, MergeRecord, Profile, TimelineEntry
from shared.store.aws import TableStore, error_code

_BATCH_GET = 100
_BATCH_WRITE = 25
_TRANSACTION = 100
PARTITION_KEY_MAX_BYTES = 2048
SORT_KEY_MAX_BYTES = 1024
_BACKOFF_BASE_SECONDS = 0.05
_BACKOFF_MAX_SECONDS = 5.0
# An update expression is at most 4 KB; each trait takes ~45 bytes of it. Events setting more traits
# take the full path, which writes the whole profile.
_FAST_TRAITS = 60


def _lost_a_race(error: Exception) -> bool:
    """A cancelled transaction whose every reason is a condition or a conflict (not, say, an item too
    large: that is permanent, and retrying it would only fail again)."""
    if error_code(error) == "ConditionalCheckFailedException":
        return True
    if error_code(error) != "TransactionCanceledException":
        return False
    reasons = getattr(error, "response", {}).get("CancellationReasons") or []
    return all(
        r.get("Code") in (None, "None", "ConditionalCheckFailed", "TransactionConflict") for r in reasons
    )


def _strings(values: dict[str, str]) -> dict[str, Any]:
    return {"M": {k: {"S": v} for k, v in values.items()}}


def _json_values(values: dict[str, Any]) -> dict[str, Any]:
    # Trait values are kept as JSON text: any JSON number fits (DynamoDB numbers stop at 38 digits
    # and 1E+126), and one trait is still set on its own by the fast path.
    return {"M": {k: {"S": trait_text(v)} for k, v in values.items()}}


def _from_strings(attribute: dict[str, Any]) -> dict[str, str]:
    return {k: v["S"] for k, v in attribute["M"].items()}


def _from_json_values(attribute: dict[str, Any]) -> dict[str, Any]:
    return {k: json.loads(v["S"]) for k, v in attribute["M"].items()}


def _backoff(attempt: int) -> None:
    """Unprocessed batch items are retried after an exponential, jittered pause, as AWS advises
    (boto3's BatchWriter re-sends them at once, with no pause; hence this loop)."""
    time.sleep(backoff_delay(attempt, _BACKOFF_BASE_SECONDS, _BACKOFF_MAX_SECONDS, random.random))


def batch_get(db: Any, table: str, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items of `keys` in `table` that exist (consistent reads), 100 keys per BatchGetItem, the
    unprocessed ones asked again after a pause."""
    items: list[dict[str, Any]] = []
    for start in range(0, len(keys), _BATCH_GET):
        request: dict[str, Any] = {table: {"Keys": keys[start : start + _BATCH_GET], "ConsistentRead": True}}
        for attempt in itertools.count():
            response = db.batch_get_item(RequestItems=request)
            items.extend(response["Responses"].get(table, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            _backoff(attempt)
    return items


def profile_key(profile_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"profile#{profile_id}"}, "sk": {"S": "profile"}}


def identifier_key(identifier: Identifier) -> dict[str, Any]:
    return {"pk": {"S": f"identifier#{identifier.type}#{identifier.value}"}, "sk": {"S": "identifier"}}


def identifier_max_bytes(identifier_type: str) -> int:
    """The longest value (UTF-8 bytes) of this type that fits the identifier index's partition key."""
    return PARTITION_KEY_MAX_BYTES - len(f"identifier#{identifier_type}#".encode())


def storable(identifier: Identifier) -> bool:
    return len(identifier.value.encode("utf-8")) <= identifier_max_bytes(identifier.type)


def suppression_key(identifier: Identifier) -> dict[str, Any]:
    digest = hashlib.sha256(identifier.value.encode("utf-8")).hexdigest()
    return {"pk": {"S": f"suppressed#{identifier.type}#{digest}"}, "sk": {"S": "suppressed"}}


def profile_item(profile: Profile) -> dict[str, Any]:
    item: dict[str, Any] = {
        **profile_key(profile.profileId),
        "profileId": {"S": profile.profileId},
        "createdAt": {"S": profile.createdAt},
        "updatedAt": {"S": profile.updatedAt},
        "version": {"N": str(profile.version + 1)},
        "traits": _json_values(profile.traits),
        "traitTimes": _strings(profile.traitTimes),
        "lastEvents": _strings(profile.lastEvents),
        "mergedFrom": {"L": [{"S": p} for p in profile.mergedFrom]},
        "storedBytes": {"N": str(profile_bytes(profile))},
    }
    if profile.latestEventAt:
        item["latestEventAt"] = {"S": profile.latestEventAt}
    if profile.mergedInto:
        item["mergedInto"] = {"S": profile.mergedInto}
    if profile.timezone:
        item["timezone"] = {"S": profile.timezone}
    for kind in dict.fromkeys(i.type for i in profile.identifiers):
        item[f"ids_{kind}"] = {"L": [{"S": v} for v in profile.values_of(kind)]}
    return item


def profile_from_item(item: dict[str, Any]) -> Profile:
    identifiers = [
        Identifier(type=name.removeprefix("ids_"), value=value["S"])
        for name, attribute in item.items()
        if name.startswith("ids_")
        for value in attribute["L"]
    ]
    return Profile(
        profileId=item["profileId"]["S"],
        identifiers=identifiers,
        traits=_from_json_values(item["traits"]),
        traitTimes=_from_strings(item["traitTimes"]),
        lastEvents=_from_strings(item["lastEvents"]),
        latestEventAt=item.get("latestEventAt", {}).get("S"),
        mergedInto=item.get("mergedInto", {}).get("S"),
        timezone=item.get("timezone", {}).get("S"),
        mergedFrom=[p["S"] for p in item["mergedFrom"]["L"]],
        createdAt=item["createdAt"]["S"],
        updatedAt=item["updatedAt"]["S"],
        version=int(item["version"]["N"]),
    )


def timeline_item(entry: TimelineEntry) -> dict[str, Any]:
    sort_key = f"event#{entry.timestamp}#{entry.messageId}"
    if len(sort_key.encode("utf-8")) > SORT_KEY_MAX_BYTES:
        # Still one entry per event (a replay overwrites it); the entry keeps the messageId itself.
        digest = hashlib.sha256(entry.messageId.encode("utf-8")).hexdigest()
        sort_key = f"event#{entry.timestamp}#sha256:{digest}"
    return {
        "pk": {"S": f"profile#{entry.profileId}"},
        "sk": {"S": sort_key},
        "entry": {"S": entry.model_dump_json()},
    }


def merge_item(record: MergeRecord) -> dict[str, Any]:
    return {
        "pk": {"S": f"profile#{record.survivor}"},
        "sk": {"S": f"merge#{record.at}#{record.merged.profileId}"},
        "record": {"S": record.model_dump_json()},
    }


class DynamoProfileStore(TableStore):
    # -- reads -----------------------------------------------------------------------------------
    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return batch_get(self._db, self._table, keys)

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        """Every put / delete request, 25 a call; unprocessed ones retried until none is left."""
        for start in range(0, len(requests), _BATCH_WRITE):
            pending = requests[start : start + _BATCH_WRITE]
            for attempt in itertools.count():
                response = self._db.batch_write_item(RequestItems={self._table: pending})
                pending = (response.get("UnprocessedItems") or {}).get(self._table, [])
                if not pending:
                    break
                _backoff(attempt)

    def lookup(self, identifiers: Iterable[Identifier]) -> Lookup:
        """Owners and suppressions of the identifiers, in one batched read."""
        wanted = list(dict.fromkeys(identifiers))
        lookup = Lookup(owners={}, suppressed=set(), unstorable={i for i in wanted if not storable(i)})
        by_pk: dict[str, tuple[str, Identifier]] = {}
        for identifier in wanted:
            if identifier in lookup.unstorable:
                continue
            by_pk[identifier_key(identifier)["pk"]["S"]] = ("owner", identifier)
            by_pk[suppression_key(identifier)["pk"]["S"]] = ("suppressed", identifier)
        for item in self._batch_get([{"pk": {"S": pk}, "sk": {"S": pk.split("#", 1)[0]}} for pk in by_pk]):
            kind, identifier = by_pk[item["pk"]["S"]]
            if kind == "owner":
                lookup.owners[identifier] = item["profileId"]["S"]
            else:
                lookup.suppressed.add(identifier)
        return lookup

    def profiles(self, profile_ids: Iterable[str]) -> dict[str, Profile]:
        items = self._batch_get([profile_key(p) for p in sorted(set(profile_ids))])
        return {(p := profile_from_item(item)).profileId: p for item in items}

    def profile(self, profile_id: str) -> Profile | None:
        """The live profile `profile_id` resolves to, following merges."""
        for _ in range(8):
            found = self.profiles([profile_id]).get(profile_id)
            if found is None or not found.mergedInto:
                return found
            profile_id = found.mergedInto
        return None

    def owner_of(self, identifier: Identifier) -> Profile | None:
        """The live profile an identifier belongs to (merges followed), or None."""
        owner = self.lookup([identifier]).owners.get(identifier)
        return self.profile(owner) if owner else None

    def items_of(
        self, profile_id: str, prefix: str, newest_first: bool = True, limit: int | None = None
    ) -> list[dict[str, Any]]:
        pages = self._items(
            "query",
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": f"profile#{profile_id}"}, ":prefix": {"S": prefix}},
            ScanIndexForward=not newest_first,
            ConsistentRead=True,
            **({"Limit": limit} if limit is not None else {}),
        )
        return list(itertools.islice(pages, limit))

    def timeline(self, profile_ids: Iterable[str], limit: int) -> list[TimelineEntry]:
        entries = [
            TimelineEntry.model_validate_json(item["entry"]["S"])
            for profile_id in profile_ids
            for item in self.items_of(profile_id, "event#", limit=limit)
        ]
        return sorted(entries, key=lambda e: (e.timestamp, e.messageId), reverse=True)[:limit]

    def timeline_since(self, profile_ids: Iterable[str], since: str) -> list[TimelineEntry]:
        """Every timeline entry of these profiles from `since` (an ISO time) on, oldest first, read
        strongly consistent (journeys' wait_for looks for an event that arrived before it began)."""
        entries = [
            TimelineEntry.model_validate_json(item["entry"]["S"])
            for profile_id in dict.fromkeys(profile_ids)
            for item in self._items(
                "query",
                # Timeline sort keys are `event#<timestamp>#<messageId>`; "~" sorts after every digit,
                # so the range holds exactly the entries from `since` on (merge# items sort after it).
                KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
                ExpressionAttributeValues={
                    ":pk": {"S": f"profile#{profile_id}"},
                    ":from": {"S": f"event#{since}"},
                    ":to": {"S": "event#~"},
                },
                ConsistentRead=True,
            )
        ]
        return sorted(entries, key=lambda e: (e.timestamp, e.messageId))

    def merges(self, profile_id: str) -> list[MergeRecord]:
        return [
            MergeRecord.model_validate_json(i["record"]["S"]) for i in self.items_of(profile_id, "merge#")
        ]

    # -- writes ----------------------------------------------------------------------------------
    def _transact(self, actions: list[dict[str, Any]]) -> None:
        if len(actions) > _TRANSACTION:
            raise ValueError(f"{len(actions)} writes do not fit one transaction of {_TRANSACTION}")
        try:
            self._db.transact_write_items(TransactItems=actions)
        except Exception as error:
            if _lost_a_race(error):
                raise ConcurrentChangeError(str(error)) from error
            raise

    def record(
        self, profile_id: str, change: EventChange, claims: list[Identifier], rules: IdentityRules
    ) -> None:
        names: dict[str, str] = {}
        if len(change.traits) > _FAST_TRAITS:
            raise FullPathNeededError(f"{len(change.traits)} traits: too many for one update expression")
        growth = growth_bytes(change.traits, change.track_event, claims)
        if growth > PROFILE_MAX_BYTES:
            raise FullPathNeededError("the event alone would pass the profile's size bound")
        values: dict[str, Any] = {
            ":at": {"S": change.at},
            ":updated": {"S": clock.iso(clock.now())},
            ":one": {"N": "1"},
            ":empty": {"L": []},
            ":growth": {"N": str(growth)},
            ":size_room": {"N": str(PROFILE_MAX_BYTES - growth)},
        }
        sets = ["latestEventAt = :at", "updatedAt = :updated"]
        conditions = [
            "attribute_exists(pk)",
            "attribute_not_exists(mergedInto)",
            "(attribute_not_exists(latestEventAt) OR latestEventAt <= :at)",
            # A profile written before storedBytes existed has none: the full path sizes it.
            "storedBytes <= :size_room",
        ]
        for n, (name, value) in enumerate(change.traits.items()):
            names[f"#t{n}"] = name
            values[f":t{n}"] = {"S": trait_text(value)}
            sets += [f"traits.#t{n} = :t{n}", f"traitTimes.#t{n} = :at"]
        if change.track_event:
            names["#event"] = change.track_event
            sets.append("lastEvents.#event = :at")
        if change.timezone:  # the condition below makes this event the profile's latest
            names["#tz"] = "timezone"  # a reserved word in expressions
            values[":tz"] = {"S": change.timezone}
            sets.append("#tz = :tz")
        by_type: dict[str, list[Identifier]] = {}
        for identifier in claims:
            by_type.setdefault(identifier.type, []).append(identifier)
        for n, (kind, new) in enumerate(by_type.items()):
            if len(new) > rules.limit(kind):
                raise FullPathNeededError(f"{len(new)} new {kind} identifiers exceed its limit")
            names[f"#ids{n}"] = f"ids_{kind}"
            values[f":ids{n}"] = {"L": [{"S": i.value} for i in new]}
            values[f":room{n}"] = {"N": str(rules.limit(kind) - len(new))}
            sets.append(f"#ids{n} = list_append(if_not_exists(#ids{n}, :empty), :ids{n})")
            conditions.append(f"(attribute_not_exists(#ids{n}) OR size(#ids{n}) <= :room{n})")
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": profile_key(profile_id),
            "UpdateExpression": "SET " + ", ".join(sets) + " ADD version :one, storedBytes :growth",
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "NONE",
        }
        if names:
            update["ExpressionAttributeNames"] = names
        actions = [
            {"Update": update},
            {"Put": {"TableName": self._table, "Item": timeline_item(change.timeline_for(profile_id))}},
            *(self._claim(identifier, None, profile_id) for identifier in claims),
        ]
        try:
            self._db.transact_write_items(TransactItems=actions)
        except Exception as error:
            if not _lost_a_race(error):
                raise
            reasons = getattr(error, "response", {}).get("CancellationReasons") or []
            if not reasons or reasons[0].get("Code") == "ConditionalCheckFailed":
                # The profile's condition failed (or the cause is not reported): the full path decides.
                raise FullPathNeededError(str(error)) from error
            raise ConcurrentChangeError(str(error)) from error

    def _claim(self, identifier: Identifier, expected: str | None, to: str) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": {**identifier_key(identifier), "profileId": {"S": to}},
        }
        if expected is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "profileId = :expected"
            put["ExpressionAttributeValues"] = {":expected": {"S": expected}}
        return {"Put": put}

    def commit(
        self,
        changed: list[Profile],
        pointers: list[Pointer],
        timeline: list[TimelineEntry],
        merges: list[MergeRecord],
    ) -> None:
        actions: list[dict[str, Any]] = []
        for profile in changed:
            put: dict[str, Any] = {"TableName": self._table, "Item": profile_item(profile)}
            if profile.version == 0:
                put["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                put["ConditionExpression"] = "version = :v AND attribute_not_exists(mergedInto)"
                put["ExpressionAttributeValues"] = {":v": {"N": str(profile.version)}}
            actions.append({"Put": put})
        actions += [self._claim(p.identifier, p.expected, p.to) for p in pointers]
        actions += [{"Put": {"TableName": self._table, "Item": timeline_item(e)}} for e in timeline]
        actions += [{"Put": {"TableName": self._table, "Item": merge_item(m)}} for m in merges]
        self._transact(actions)
        for profile in changed:
            profile.version += 1


class ProfileAdmin(DynamoProfileStore):
    """The Profile API's writes: erasure, unmerge, removing an identifier. Rare, and each is checked
    against concurrent changes like every other profile write."""

    def _all_items_of(self, profile_id: str) -> list[dict[str, Any]]:
        return list(
            self._items(
                "query",
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"profile#{profile_id}"}},
                ProjectionExpression="pk, sk",
                ConsistentRead=True,
            )
        )

    def erase(self, profile: Profile) -> list[str]:
        """Suppress the person's identifiers (hashed, first: an event arriving meanwhile is dropped),
        then delete the profile, every profile merged into
        it, their timelines and merge log, and the identifier index. The profile ids erased."""
        self._batch_write([{"PutRequest": {"Item": suppression_key(i)}} for i in profile.identifiers])
        erased = [profile.profileId, *profile.mergedFrom]
        keys = [key for profile_id in erased for key in self._all_items_of(profile_id)]
        keys += [identifier_key(i) for i in profile.identifiers]
        self._batch_write([{"DeleteRequest": {"Key": key}} for key in keys])
        # A consent write checks that its profile exists (shared/store/consent.py); one that committed
        # after the query above but before the profile's deletion would outlive the person: delete
        # the consent items again, now that no write can pass that check.
        consent = [{"pk": {"S": f"profile#{p}"}, "sk": {"S": "consent"}} for p in erased]
        self._batch_write([{"DeleteRequest": {"Key": key}} for key in consent])
        return erased

    def unmerge(self, survivor: Profile, record: MergeRecord) -> Profile:
        """Split a past merge: the merged profile comes back as it was, with the identifiers it brought."""
        current = self.profiles([record.merged.profileId]).get(record.merged.profileId)
        if current is None or current.mergedInto != survivor.profileId:
            raise ConcurrentChangeError(f"{record.merged.profileId} is not merged into {survivor.profileId}")
        restored = record.merged.model_copy(deep=True)
        restored.mergedInto = None
        restored.version = current.version
        restored.updatedAt = clock.iso(clock.now())
        moved = [i for i in restored.identifiers if i in survivor.identifiers]
        restored.identifiers = moved
        survivor.identifiers = [i for i in survivor.identifiers if i not in moved]
        gone = {restored.profileId, *restored.mergedFrom}
        survivor.mergedFrom = [p for p in survivor.mergedFrom if p not in gone]
        survivor.updatedAt = restored.updatedAt
        actions = [
            {"Put": self._versioned(survivor, "attribute_not_exists(mergedInto)")},
            {
                "Put": self._versioned(
                    restored, "mergedInto = :survivor", {":survivor": {"S": survivor.profileId}}
                )
            },
            *(self._claim(i, survivor.profileId, restored.profileId) for i in moved),
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": {k: v for k, v in merge_item(record).items() if k in ("pk", "sk")},
                }
            },
        ]
        self._transact(actions)
        survivor.version += 1
        restored.version += 1
        return restored

    def remove_identifier(self, profile: Profile, identifier: Identifier) -> None:
        profile.identifiers = [i for i in profile.identifiers if i != identifier]
        profile.updatedAt = clock.iso(clock.now())
        delete = {
            "TableName": self._table,
            "Key": identifier_key(identifier),
            "ConditionExpression": "profileId = :owner",
            "ExpressionAttributeValues": {":owner": {"S": profile.profileId}},
        }
        self._transact(
            [{"Put": self._versioned(profile, "attribute_not_exists(mergedInto)")}, {"Delete": delete}]
        )
        profile.version += 1

    def _versioned(
        self, profile: Profile, condition: str, values: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "TableName": self._table,
            "Item": profile_item(profile),
            "ConditionExpression": f"version = :v AND {condition}",
            "ExpressionAttributeValues": {":v": {"N": str(profile.version)}, **(values or {})},
        }
