"""Who an erasure was about, in a form that can travel on the bus: the erased profile ids and the
SHA-256 of each identifier (never a value), so that whatever else holds the person's events (the local
failure list, say) can find and forget them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import Field

from shared.identity.identifiers import identifiers_of
from shared.identity.rules import IdentityRules
from shared.models.base import Model
from shared.models.profile import Identifier


def identifier_hash(identifier: Identifier) -> str:
    return f"{identifier.type}#{hashlib.sha256(identifier.value.encode('utf-8')).hexdigest()}"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class ErasedPerson(Model):
    """The detail of a `profile.erased` event."""

    erasedProfileIds: list[str]
    identifierHashes: list[str] = Field(
        default_factory=list, description="`<type>#<sha256 of value>` of each identifier erased"
    )

    @classmethod
    def of(cls, profile_ids: Iterable[str], identifiers: Iterable[Identifier]) -> ErasedPerson:
        return cls(
            erasedProfileIds=list(profile_ids),
            identifierHashes=sorted({identifier_hash(i) for i in identifiers}),
        )

    def named_in(self, bus_event: dict[str, Any], rules: IdentityRules) -> bool:
        """Whether an EventBridge event carries one of the erased profile ids, or a Segment call in it
        (a raw call, or the call inside a resolved event) names one of the erased identifiers."""
        data = (bus_event.get("detail") or {}).get("data")
        if not isinstance(data, dict):
            return False
        profile_ids = set(self.erasedProfileIds)
        if any(value in profile_ids for value in _strings(data)):
            return True
        hashes = set(self.identifierHashes)
        calls = [data, data.get("event")]
        return any(
            identifier_hash(identifier) in hashes
            for call in calls
            if isinstance(call, dict)
            for identifier in identifiers_of(call, rules)[0]
        )
