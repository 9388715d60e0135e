"""A profile's size bound and the store's key limits: no event fails for good because a profile is full
or an identifier is long (shared/identity/bounds.py, the resolver, against the in-memory store)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.identity.bounds import PROFILE_MAX_BYTES, bound, profile_bytes, trait_bytes
from shared.identity.resolver import resolve
from shared.identity.rules import IdentityRules
from shared.models.profile import Identifier, Profile
from shared.store.profiles import PARTITION_KEY_MAX_BYTES, identifier_max_bytes
from tests.identifiers import anon, user
from tests.unit.fakes import FakeProfileStore

pytestmark = pytest.mark.usefixtures("fixed_clock")

RULES = IdentityRules()
START = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)
THIRTY_KB = 30 * 1024
_ids = itertools.count(1)


def identify(n: int, **fields: Any) -> dict[str, Any]:
    return {"type": "identify", "messageId": f"m-{n}", "userId": "u-1", **fields}


def twenty_big_identifies(store: FakeProfileStore) -> list[Any]:
    return [
        resolve(
            identify(n, traits={f"blob{n}": "x" * THIRTY_KB}),
            store,
            RULES,
            START + timedelta(seconds=n),
            lambda: f"p-{next(_ids)}",
        )
        for n in range(20)
    ]


def test_twenty_30_kb_identifies_all_land_and_the_profile_stays_within_its_bound() -> None:
    store = FakeProfileStore()

    resolutions = twenty_big_identifies(store)

    (profile,) = store.live()
    assert {r.profile_id for r in resolutions} == {profile.profileId}
    assert profile_bytes(profile) <= PROFILE_MAX_BYTES
    kept = len(profile.traits)
    assert 0 < kept < 20
    assert sum(r.dropped.traits for r in resolutions) == 20 - kept
    # every event is still on the timeline
    assert len(store.timeline_of(profile.profileId)) == 20


def test_what_does_not_fit_is_reported_by_count_and_size_never_by_value() -> None:
    store = FakeProfileStore()

    last = twenty_big_identifies(store)[-1]

    assert last.dropped.traits == 1
    assert last.dropped.bytes >= THIRTY_KB
    assert last.warnings == [
        f"1 traits and 0 event names ({last.dropped.bytes} bytes) not kept: "
        "the profile would pass its size bound"
    ]
    assert "blob19" not in last.warnings[0] and "xxx" not in last.warnings[0]


def test_a_small_trait_still_lands_on_a_full_profile() -> None:
    # The customer who unsubscribes after filling their profile must be unsubscribed.
    store = FakeProfileStore()
    twenty_big_identifies(store)

    late = resolve(identify(99, traits={"unsubscribed": True}), store, RULES, START + timedelta(hours=1))

    (profile,) = store.live()
    assert late.dropped.traits == 0
    assert profile.traits["unsubscribed"] is True


def test_bound_keeps_what_the_profile_had_and_drops_the_largest_growth_first() -> None:
    before = Profile(
        profileId="p-1",
        traits={"plan": "free"},
        traitTimes={"plan": "2024-01-01T00:00:00.000Z"},
        createdAt="2024-01-01T00:00:00.000Z",
        updatedAt="2024-01-01T00:00:00.000Z",
        version=1,
    )
    after = before.model_copy(deep=True)
    after.traits.update(plan="pro", small="s", big="b" * 1000)
    after.traitTimes.update(plan="t", small="t", big="t")
    limit = profile_bytes(after) - 1

    dropped = bound(after, before, limit)

    assert (dropped.traits, dropped.bytes) == (1, trait_bytes("big", "b" * 1000))
    assert after.traits == {"plan": "pro", "small": "s"}
    assert "big" not in after.traitTimes


def test_bound_restores_a_grown_trait_to_its_value_and_time_before() -> None:
    before = Profile(
        profileId="p-1",
        traits={"bio": "short"},
        traitTimes={"bio": "old"},
        createdAt="c",
        updatedAt="c",
        version=1,
    )
    after = before.model_copy(deep=True)
    after.traits["bio"] = "long" * 1000
    after.traitTimes["bio"] = "new"

    bound(after, before, profile_bytes(before))

    assert (after.traits, after.traitTimes) == ({"bio": "short"}, {"bio": "old"})


# -- identifiers and the store's key limit ------------------------------------------------------------


def test_the_longest_identifier_the_key_allows_is_matched_and_attached() -> None:
    store = FakeProfileStore()
    longest = "a" * identifier_max_bytes("anonymous_id")
    assert len(f"identifier#anonymous_id#{longest}".encode()) == PARTITION_KEY_MAX_BYTES

    resolution = resolve(
        {"type": "track", "event": "E", "messageId": "m-1", "userId": "u-1", "anonymousId": longest},
        store,
        RULES,
        START,
        lambda: "p-1",
    )

    assert resolution.warnings == []
    assert store.docs["p-1"].identifiers == [user("u-1"), anon(longest)]


def test_an_identifier_one_byte_past_the_key_limit_is_left_out_and_the_event_still_lands() -> None:
    store = FakeProfileStore()
    # multi-byte characters: the limit is in UTF-8 bytes, not characters
    too_long = "é" * (identifier_max_bytes("anonymous_id") // 2) + "a"
    assert len(f"identifier#anonymous_id#{too_long}".encode()) == PARTITION_KEY_MAX_BYTES + 1

    resolution = resolve(
        {"type": "track", "event": "E", "messageId": "m-1", "userId": "u-1", "anonymousId": too_long},
        store,
        RULES,
        START,
        lambda: "p-1",
    )

    assert resolution.profile_id == "p-1"
    assert store.docs["p-1"].identifiers == [user("u-1")]
    assert resolution.warnings == ["1 anonymous_id identifier left out: too long to be stored as a key"]


def test_an_event_whose_only_identifier_is_too_long_is_dropped_with_a_warning() -> None:
    store = FakeProfileStore()
    emoji = "😀" * 600  # 2,400 bytes: past any key

    resolution = resolve(
        {"type": "track", "event": "E", "messageId": "m", "anonymousId": emoji}, store, RULES, START
    )

    assert resolution.profile_id is None
    assert resolution.warnings == [
        "1 anonymous_id identifier left out: too long to be stored as a key",
        "the event names no usable identifier: dropped",
    ]
    assert store.writes == []


def test_an_identifier_over_1024_characters_is_a_valid_identifier() -> None:
    # It used to fail the model (max 1,024 characters) before the store could leave it out.
    assert Identifier(type="email", value="a" * 1100 + "@example.com").value.endswith("@example.com")
