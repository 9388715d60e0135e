"""Who an erasure was about (shared/identity/erasure.py): found in events by hashes, never values."""

from __future__ import annotations

from typing import Any

from shared.identity.erasure import ErasedPerson
from shared.identity.rules import IdentityRules
from tests.identifiers import email, phone, user

RULES = IdentityRules()
ADA = ErasedPerson.of(
    ["p-ada", "p-ada-old"], [user("u-ada"), email("ada@example.com"), phone("+14155552671")]
)


def bus_event(data: dict[str, Any]) -> dict[str, Any]:
    return {"detail-type": "customer.track", "detail": {"name": "track", "data": data}}


def test_the_erased_person_is_described_by_profile_ids_and_hashes_only() -> None:
    dumped = ADA.model_dump_json()

    assert "ada@example.com" not in dumped and "u-ada" not in dumped and "4155552671" not in dumped
    assert len(ADA.identifierHashes) == 3
    assert all(h.split("#")[0] in ("user_id", "email", "phone") for h in ADA.identifierHashes)


def test_a_raw_call_naming_an_identifier_as_sent_not_as_stored_is_found() -> None:
    call = {"type": "identify", "anonymousId": "a-9", "traits": {"phone": "(415) 555-2671"}}

    assert ADA.named_in(bus_event(call), RULES)


def test_a_resolved_event_for_a_merged_profile_of_the_person_is_found() -> None:
    resolved = {"profileId": "p-ada-old", "event": {"type": "track", "anonymousId": "a-9"}}

    assert ADA.named_in(bus_event(resolved), RULES)


def test_someone_elses_events_are_not_found() -> None:
    calls = [
        {"type": "track", "userId": "u-bob", "context": {"traits": {"email": "bob@example.com"}}},
        {"profileId": "p-bob", "event": {"type": "track", "userId": "u-bob"}},
    ]

    assert [ADA.named_in(bus_event(c), RULES) for c in calls] == [False, False]
