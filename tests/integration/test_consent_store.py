"""Consent and suppression records against moto: newest wins under concurrency, merged profiles are
read through their survivor, erasure leaves no consent behind and keeps suppressions."""

from __future__ import annotations

import threading
import uuid

from infra.local.engine import PREFIX, LocalEngine
from shared.models.policy import ConsentRecord, Suppression
from shared.models.profile import Identifier, Profile
from shared.store.consent import ConsentStore, consent_item_key
from shared.store.profiles import DynamoProfileStore, ProfileAdmin
from shared.store.suppressions import SuppressionStore, suppression_key
from tests.integration.conftest import client

TABLE = f"{PREFIX}-profiles"


def _profile(**fields: object) -> Profile:
    profile = Profile(
        profileId=f"p-{uuid.uuid4().hex[:12]}",
        createdAt="2026-11-01T00:00:00.000Z",
        updatedAt="2026-11-01T00:00:00.000Z",
        version=0,
        **fields,  # type: ignore[arg-type]
    )
    DynamoProfileStore(TABLE).commit([profile], [], [], [])
    return profile


def _record(subscribed: bool, at: str, source: str = "admin") -> ConsentRecord:
    return ConsentRecord(subscribed=subscribed, source=source, at=at)  # type: ignore[arg-type]


def test_a_choice_is_stored_and_read_back(engine: LocalEngine) -> None:
    profile = _profile()
    store = ConsentStore(TABLE)

    assert store.record(profile.profileId, {"marketing/email": _record(False, "2026-11-02T00:00:00.000Z")})

    assert store.consent(profile) == {"marketing/email": _record(False, "2026-11-02T00:00:00.000Z")}


def test_an_older_choice_never_replaces_a_newer_one(engine: LocalEngine) -> None:
    profile = _profile()
    store = ConsentStore(TABLE)
    store.record(profile.profileId, {"marketing/email": _record(False, "2026-11-03T00:00:00.000Z")})

    assert store.record(profile.profileId, {"marketing/email": _record(True, "2026-11-02T00:00:00.000Z")})

    assert store.consent(profile)["marketing/email"].subscribed is False


def test_at_an_equal_instant_the_later_write_wins(engine: LocalEngine) -> None:
    profile = _profile()
    store = ConsentStore(TABLE)
    store.record(profile.profileId, {"marketing/email": _record(False, "2026-11-03T00:00:00.000Z")})

    store.record(
        profile.profileId, {"marketing/email": _record(True, "2026-11-03T00:00:00.000Z", "one_click")}
    )

    assert store.consent(profile)["marketing/email"] == _record(True, "2026-11-03T00:00:00.000Z", "one_click")


def test_concurrent_writes_leave_the_newest_choice_of_every_key(engine: LocalEngine) -> None:
    profile = _profile()
    store = ConsentStore(TABLE)
    instants = [f"2026-11-05T00:00:{second:02d}.000Z" for second in range(12)]
    writes = [
        {"marketing/email": _record(n % 2 == 0, at), "marketing/push": _record(n % 3 == 0, at)}
        for n, at in enumerate(instants)
    ]
    start = threading.Barrier(len(writes))

    def write(changes: dict[str, ConsentRecord]) -> None:
        start.wait()
        store.record(profile.profileId, changes)

    threads = [threading.Thread(target=write, args=(w,)) for w in reversed(writes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    newest = writes[-1]
    assert store.consent(profile) == newest


def test_concurrent_writes_at_one_instant_leave_one_of_them_whole(engine: LocalEngine) -> None:
    profile = _profile()
    store = ConsentStore(TABLE)
    at = "2026-11-05T00:00:00.000Z"
    choices = [
        _record(n % 2 == 0, at, source) for n, source in enumerate(["admin", "one_click", "preferences"] * 3)
    ]
    start = threading.Barrier(len(choices))

    def write(choice: ConsentRecord) -> None:
        start.wait()
        store.record(profile.profileId, {"marketing/email": choice})

    threads = [threading.Thread(target=write, args=(c,)) for c in choices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert store.consent(profile)["marketing/email"] in choices


def test_a_write_for_an_unknown_profile_stores_nothing(engine: LocalEngine) -> None:
    missing = f"p-missing-{uuid.uuid4().hex[:8]}"

    written = ConsentStore(TABLE).record(
        missing, {"marketing/email": _record(False, "2026-11-02T00:00:00.000Z")}
    )

    assert written is False
    item = client("dynamodb").get_item(TableName=TABLE, Key=consent_item_key(missing)).get("Item")
    assert item is None


def test_a_merged_profiles_choice_is_read_through_its_survivor_newest_first(engine: LocalEngine) -> None:
    merged = _profile()
    survivor = _profile(mergedFrom=[merged.profileId])
    store = ConsentStore(TABLE)
    store.record(survivor.profileId, {"marketing/email": _record(True, "2026-11-02T00:00:00.000Z")})
    # The merged profile's choice is newer (say, an unsubscribe link of a mail sent before the merge).
    store.record(merged.profileId, {"marketing/email": _record(False, "2026-11-04T00:00:00.000Z")})
    store.record(merged.profileId, {"product_updates/push": _record(True, "2026-11-01T00:00:00.000Z")})

    consent = store.consent(survivor)

    assert consent["marketing/email"].subscribed is False
    assert consent["product_updates/push"].subscribed is True


def test_erasure_deletes_the_consent_and_a_later_write_leaves_no_orphan(engine: LocalEngine) -> None:
    profile = _profile(identifiers=[Identifier(type="email", value=f"e-{uuid.uuid4().hex[:8]}@example.com")])
    store = ConsentStore(TABLE)
    store.record(profile.profileId, {"marketing/email": _record(False, "2026-11-02T00:00:00.000Z")})
    admin = ProfileAdmin(TABLE)

    admin.erase(admin.profile(profile.profileId))  # type: ignore[arg-type]
    written = store.record(profile.profileId, {"marketing/push": _record(False, "2026-11-03T00:00:00.000Z")})

    assert written is False
    item = client("dynamodb").get_item(TableName=TABLE, Key=consent_item_key(profile.profileId)).get("Item")
    assert item is None


def test_a_suppression_is_found_whatever_the_letter_case_and_survives_erasure(engine: LocalEngine) -> None:
    address = f"bounce-{uuid.uuid4().hex[:8]}@example.com"
    profile = _profile(identifiers=[Identifier(type="email", value=address)])
    suppressions = SuppressionStore(TABLE)
    bounce = Suppression(reason="hard_bounce", at="2026-11-02T00:00:00.000Z")

    assert suppressions.suppress("email", f"  {address.upper()} ", bounce) is True
    admin = ProfileAdmin(TABLE)
    admin.erase(admin.profile(profile.profileId))  # type: ignore[arg-type]

    assert suppressions.suppressions("email", [address, "other@example.com"]) == {address: bounce}
    stored = client("dynamodb").get_item(TableName=TABLE, Key=suppression_key("email", address))["Item"]
    assert address not in str(stored)  # a hash, never the address


def test_a_repeated_suppression_keeps_the_first(engine: LocalEngine) -> None:
    address = f"twice-{uuid.uuid4().hex[:8]}@example.com"
    suppressions = SuppressionStore(TABLE)
    first = Suppression(reason="hard_bounce", at="2026-11-02T00:00:00.000Z")

    suppressions.suppress("email", address, first)
    again = suppressions.suppress(
        "email", address, Suppression(reason="hard_bounce", at="2026-11-09T00:00:00.000Z")
    )

    assert again is False
    assert suppressions.suppressions("email", [address]) == {address: first}
