"""Identity resolution against a store that keeps the commit contract (shared/identity/resolver.py)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared import clock
from shared.identity.resolver import MAX_ATTEMPTS, ConcurrentChangeError, ResolutionError, resolve
from shared.models.profile import Identifier, Profile
from tests.unit.fakes import FakeProfileStore

pytestmark = pytest.mark.usefixtures("fixed_clock")

EVENT_TIME = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)
OLD = "2024-01-01T00:00:00.000Z"
NEWER = "2024-03-01T00:00:00.000Z"


def user(value: str) -> Identifier:
    return Identifier(type="user_id", value=value)


def anon(value: str) -> Identifier:
    return Identifier(type="anonymous_id", value=value)


def email(value: str) -> Identifier:
    return Identifier(type="email", value=value)


def token(value: str) -> Identifier:
    return Identifier(type="device_token", value=value)


def ids(prefix: str = "p-new") -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter):04d}"


def track(event: str = "Product Added", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, **fields}


def identify(**fields: Any) -> dict[str, Any]:
    return {"type": "identify", **fields}


def group(**fields: Any) -> dict[str, Any]:
    return {"type": "group", **fields}


def alias(**fields: Any) -> dict[str, Any]:
    return {"type": "alias", **fields}


@pytest.fixture
def store() -> FakeProfileStore:
    return FakeProfileStore()


# -- creating and finding --------------------------------------------------------------------------


def test_an_unknown_customer_gets_a_new_profile_with_every_identifier(store: FakeProfileStore) -> None:
    call = identify(userId="u-1", anonymousId="a-1", traits={"email": "ada@example.com"})

    resolution = resolve(call, store, EVENT_TIME, new_profile_id=lambda: "p-1")

    assert resolution.profile.profileId == "p-1"
    assert resolution.merged == []
    assert set(store.docs["p-1"].identifiers) == {user("u-1"), anon("a-1"), email("ada@example.com")}
    assert {i: p for i, p in store.index.items()} == {
        user("u-1"): "p-1",
        anon("a-1"): "p-1",
        email("ada@example.com"): "p-1",
    }


def test_a_new_profile_is_stamped_with_the_clock(store: FakeProfileStore, fixed_clock: datetime) -> None:
    resolve(track(anonymousId="a-1"), store, EVENT_TIME, new_profile_id=lambda: "p-1")

    stored = store.docs["p-1"]
    assert stored.createdAt == stored.updatedAt == clock.iso(fixed_clock)
    assert stored.version == 1


def test_a_known_identifier_resolves_to_its_profile(store: FakeProfileStore) -> None:
    store.seed("p-1", anon("a-1"), created_at=OLD)

    resolution = resolve(track(anonymousId="a-1"), store, EVENT_TIME, new_profile_id=ids())

    assert resolution.profile.profileId == "p-1"
    assert list(store.docs) == ["p-1"]


def test_new_identifiers_of_a_known_customer_are_attached_and_claimed(store: FakeProfileStore) -> None:
    store.seed("p-1", anon("a-1"), created_at=OLD)
    call = identify(anonymousId="a-1", userId="u-1", context={"device": {"token": "tok-1"}})

    resolve(call, store, EVENT_TIME, new_profile_id=ids())

    assert store.docs["p-1"].identifiers == [anon("a-1"), user("u-1"), token("tok-1")]
    assert store.index[user("u-1")] == store.index[token("tok-1")] == "p-1"


def test_an_identifier_of_a_merged_profile_resolves_to_the_survivor(store: FakeProfileStore) -> None:
    store.seed("p-1", anon("a-1"), created_at=OLD, mergedFrom=["p-0"])
    store.seed("p-0", anon("a-0"), created_at=NEWER, mergedInto="p-1")

    resolution = resolve(track(anonymousId="a-0"), store, EVENT_TIME, new_profile_id=ids())

    assert resolution.profile.profileId == "p-1"
    assert store.docs["p-0"].lastEvents == {}


def test_an_event_naming_no_identifier_is_refused(store: FakeProfileStore) -> None:
    with pytest.raises(ValueError, match="names no identifier"):
        resolve(track(), store, EVENT_TIME)


# -- what an event tells -----------------------------------------------------------------------------


def test_a_track_event_records_when_it_happened(store: FakeProfileStore) -> None:
    resolve(track(anonymousId="a-1"), store, EVENT_TIME, new_profile_id=lambda: "p-1")

    assert store.docs["p-1"].lastEvents == {"Product Added": "2024-05-01T09:00:00.000Z"}


def test_an_older_event_arriving_late_does_not_move_the_last_time_back(store: FakeProfileStore) -> None:
    store.seed("p-1", anon("a-1"), created_at=OLD, lastEvents={"Product Added": "2024-05-01T09:00:00.000Z"})

    resolve(track(anonymousId="a-1"), store, EVENT_TIME - timedelta(hours=1), new_profile_id=ids())

    assert store.docs["p-1"].lastEvents["Product Added"] == "2024-05-01T09:00:00.000Z"


def test_an_identify_event_records_traits_with_its_own_over_the_context_ones(store: FakeProfileStore) -> None:
    call = identify(
        userId="u-1",
        traits={"firstName": "Ada", "plan": "pro"},
        context={"traits": {"plan": "free", "country": "UK"}},
    )

    resolve(call, store, EVENT_TIME, new_profile_id=lambda: "p-1")

    assert store.docs["p-1"].traits == {"firstName": "Ada", "plan": "pro", "country": "UK"}
    assert store.docs["p-1"].lastEvents == {}


def test_new_traits_update_the_known_ones(store: FakeProfileStore) -> None:
    store.seed("p-1", user("u-1"), created_at=OLD, traits={"firstName": "Ada", "plan": "free"})

    resolve(identify(userId="u-1", traits={"plan": "pro"}), store, EVENT_TIME, new_profile_id=ids())

    assert store.docs["p-1"].traits == {"firstName": "Ada", "plan": "pro"}


def test_a_groups_traits_are_not_copied_to_the_users_profile(store: FakeProfileStore) -> None:
    store.seed("p-1", user("u-1"), created_at=OLD, traits={"firstName": "Ada"})
    call = group(userId="u-1", groupId="acme", traits={"email": "billing@acme.com", "name": "Acme"})

    resolve(call, store, EVENT_TIME, new_profile_id=ids())

    assert store.docs["p-1"].traits == {"firstName": "Ada"}


def test_a_groups_email_is_neither_claimed_nor_linking(store: FakeProfileStore) -> None:
    # Given Ada's and Bob's profiles, Bob's known by the email Acme's billing uses
    store.seed("p-ada", user("u-ada"), created_at=OLD)
    store.seed("p-bob", email("billing@acme.com"), created_at=NEWER)

    # When Ada joins the Acme group
    call = group(userId="u-ada", groupId="acme", traits={"email": "billing@acme.com"})
    resolution = resolve(call, store, EVENT_TIME, new_profile_id=ids())

    # Then her profile neither takes the group's email nor merges Bob's
    assert resolution.merged == []
    assert store.docs["p-ada"].identifiers == [user("u-ada")]
    assert store.index[email("billing@acme.com")] == "p-bob"


def test_the_users_traits_in_a_groups_context_are_recorded(store: FakeProfileStore) -> None:
    call = group(userId="u-1", groupId="acme", context={"traits": {"firstName": "Ada"}})

    resolve(call, store, EVENT_TIME, new_profile_id=lambda: "p-1")

    assert store.docs["p-1"].traits == {"firstName": "Ada"}


# -- alias -----------------------------------------------------------------------------------------


def test_an_alias_links_the_previous_ids_profile_with_the_users(store: FakeProfileStore) -> None:
    # Given the visitor's anonymous profile and, separately, the user's profile
    store.seed("p-anon", anon("a-1"), created_at=OLD, lastEvents={"Product Added": OLD})
    store.seed("p-user", user("u-1"), created_at=NEWER, traits={"plan": "pro"})

    # When the site aliases the anonymous id to the user id
    resolution = resolve(alias(previousId="a-1", userId="u-1"), store, EVENT_TIME, new_profile_id=ids())

    # Then both ids lead to one profile holding what each knew
    assert resolution.merged == ["p-user"]
    survivor = store.owner_of(anon("a-1"))
    assert survivor is not None and survivor == store.owner_of(user("u-1"))
    assert (survivor.traits, survivor.lastEvents) == ({"plan": "pro"}, {"Product Added": OLD})


def test_an_alias_gives_an_anonymous_profile_its_user_id(store: FakeProfileStore) -> None:
    store.seed("p-anon", anon("a-1"), created_at=OLD)

    resolution = resolve(alias(previousId="a-1", userId="u-1"), store, EVENT_TIME, new_profile_id=ids())

    assert resolution.profile.profileId == "p-anon"
    assert store.index[user("u-1")] == "p-anon"


def test_an_alias_of_an_unknown_previous_id_claims_it_for_the_user(store: FakeProfileStore) -> None:
    store.seed("p-user", user("u-1"), created_at=OLD)

    resolve(alias(previousId="a-1", userId="u-1"), store, EVENT_TIME, new_profile_id=ids())

    assert store.index[anon("a-1")] == "p-user"


def test_an_alias_never_joins_two_users(two_users: FakeProfileStore) -> None:
    call = alias(previousId="a-bob", userId="u-ada")

    resolution = resolve(call, two_users, EVENT_TIME, new_profile_id=ids())

    assert resolution.merged == []
    assert two_users.index[anon("a-bob")] == "p-bob"


# -- merging ---------------------------------------------------------------------------------------


@pytest.fixture
def two_profiles(store: FakeProfileStore) -> FakeProfileStore:
    """The same person seen twice: on the web (anonymous, older) and by email (newer)."""
    store.seed(
        "p-web",
        anon("a-1"),
        created_at=OLD,
        updatedAt=OLD,
        traits={"firstName": "Ada", "plan": "free"},
        lastEvents={
            "Product Added": "2024-02-01T00:00:00.000Z",
            "Order Completed": "2024-01-05T00:00:00.000Z",
        },
    )
    store.seed(
        "p-mail",
        email("ada@example.com"),
        token("tok-1"),
        created_at=NEWER,
        updatedAt=NEWER,
        traits={"plan": "pro"},
        lastEvents={"Order Completed": "2024-03-05T00:00:00.000Z"},
    )
    return store


LINKING_CALL = identify(anonymousId="a-1", traits={"email": "ada@example.com"})


def test_an_event_linking_two_profiles_merges_them_into_the_oldest(two_profiles: FakeProfileStore) -> None:
    resolution = resolve(LINKING_CALL, two_profiles, EVENT_TIME, new_profile_id=ids())

    assert resolution.profile.profileId == "p-web"
    assert resolution.merged == ["p-mail"]
    assert two_profiles.docs["p-web"].mergedInto is None
    assert two_profiles.docs["p-web"].mergedFrom == ["p-mail"]


def test_the_merged_profile_points_at_the_survivor(two_profiles: FakeProfileStore) -> None:
    resolve(LINKING_CALL, two_profiles, EVENT_TIME, new_profile_id=ids())

    assert two_profiles.docs["p-mail"].mergedInto == "p-web"
    assert [p.profileId for p in two_profiles.live()] == ["p-web"]


def test_the_survivor_is_the_oldest_whichever_identifier_the_event_names_first(
    store: FakeProfileStore,
) -> None:
    store.seed("p-a", anon("a-1"), created_at=NEWER)
    store.seed("p-z", email("ada@example.com"), created_at=OLD)

    resolution = resolve(LINKING_CALL, store, EVENT_TIME, new_profile_id=ids())

    assert resolution.profile.profileId == "p-z"


def test_a_merge_unites_the_identifiers(two_profiles: FakeProfileStore) -> None:
    resolve(LINKING_CALL, two_profiles, EVENT_TIME, new_profile_id=ids())

    survivor = two_profiles.docs["p-web"]
    assert set(survivor.identifiers) == {anon("a-1"), email("ada@example.com"), token("tok-1")}
    for identifier in survivor.identifiers:
        assert two_profiles.owner_of(identifier).profileId == "p-web"  # type: ignore[union-attr]


def test_a_merge_keeps_the_latest_time_of_every_event(two_profiles: FakeProfileStore) -> None:
    resolve(LINKING_CALL, two_profiles, EVENT_TIME, new_profile_id=ids())

    assert two_profiles.docs["p-web"].lastEvents == {
        "Product Added": "2024-02-01T00:00:00.000Z",
        "Order Completed": "2024-03-05T00:00:00.000Z",
    }


def test_a_merge_keeps_the_traits_of_the_most_recently_updated_profile(
    two_profiles: FakeProfileStore,
) -> None:
    resolve(LINKING_CALL, two_profiles, EVENT_TIME, new_profile_id=ids())

    assert two_profiles.docs["p-web"].traits == {
        "firstName": "Ada",
        "plan": "pro",
        "email": "ada@example.com",
    }


def test_merging_a_profile_that_had_merges_keeps_their_history(store: FakeProfileStore) -> None:
    store.seed("p-old", anon("a-1"), created_at=OLD)
    store.seed("p-mid", email("ada@example.com"), created_at=NEWER, mergedFrom=["p-gone"])
    store.seed("p-gone", anon("a-9"), created_at="2024-04-01T00:00:00.000Z", mergedInto="p-mid")

    resolution = resolve(LINKING_CALL, store, EVENT_TIME, new_profile_id=ids())

    assert resolution.profile.mergedFrom == ["p-mid", "p-gone"]
    assert store.owner_of(anon("a-9")).profileId == "p-old"  # type: ignore[union-attr]


# -- users are never joined ------------------------------------------------------------------------


@pytest.fixture
def two_users(store: FakeProfileStore) -> FakeProfileStore:
    store.seed("p-ada", user("u-ada"), anon("a-ada"), email("ada@example.com"), created_at=OLD)
    store.seed("p-bob", user("u-bob"), anon("a-bob"), email("bob@example.com"), created_at=NEWER)
    return store


def test_an_event_naming_two_users_profiles_merges_nothing(two_users: FakeProfileStore) -> None:
    call = identify(userId="u-ada", anonymousId="a-bob")

    resolution = resolve(call, two_users, EVENT_TIME, new_profile_id=ids())

    assert resolution.merged == []
    assert {p.profileId for p in two_users.live()} == {"p-ada", "p-bob"}


def test_an_event_naming_two_users_profiles_goes_to_its_own_users_profile(
    two_users: FakeProfileStore,
) -> None:
    call = identify(userId="u-bob", traits={"email": "ada@example.com"})

    resolution = resolve(call, two_users, EVENT_TIME, new_profile_id=ids())

    assert resolution.profile.profileId == "p-bob"
    assert email("ada@example.com") not in two_users.docs["p-bob"].identifiers
    assert two_users.index[email("ada@example.com")] == "p-ada"


def test_a_second_user_id_is_never_put_on_a_users_profile(two_users: FakeProfileStore) -> None:
    resolve(identify(userId="u-carol", anonymousId="a-ada"), two_users, EVENT_TIME, new_profile_id=ids())

    assert two_users.docs["p-ada"].values_of("user_id") == ["u-ada"]
    assert user("u-carol") not in two_users.index or two_users.index[user("u-carol")] != "p-ada"


def test_an_anonymous_profile_linked_to_a_user_takes_the_user_id(store: FakeProfileStore) -> None:
    store.seed("p-anon", anon("a-1"), created_at=OLD)

    resolution = resolve(identify(userId="u-1", anonymousId="a-1"), store, EVENT_TIME, new_profile_id=ids())

    assert resolution.profile.profileId == "p-anon"
    assert resolution.profile.user_id == "u-1"
    assert store.index[user("u-1")] == "p-anon"


def test_a_user_first_seen_on_another_users_device_gets_a_profile_of_their_own(
    two_users: FakeProfileStore,
) -> None:
    # Given Ada's browser (anonymous id a-ada), where Carol, who has no profile yet, logs in
    call = identify(userId="u-carol", anonymousId="a-ada", traits={"email": "carol@example.com"})

    # When the identify event is resolved
    resolution = resolve(call, two_users, EVENT_TIME, new_profile_id=lambda: "p-carol")

    # Then Carol has her own profile with her user id and email; the device id stays Ada's
    assert resolution.profile.profileId == "p-carol"
    assert set(two_users.docs["p-carol"].identifiers) == {user("u-carol"), email("carol@example.com")}
    assert two_users.index[anon("a-ada")] == "p-ada"


def test_a_users_email_and_traits_never_land_on_another_users_profile(two_users: FakeProfileStore) -> None:
    call = identify(
        userId="u-carol", anonymousId="a-ada", traits={"email": "carol@example.com", "firstName": "Carol"}
    )

    resolve(call, two_users, EVENT_TIME, new_profile_id=lambda: "p-carol")

    ada = two_users.docs["p-ada"]
    assert email("carol@example.com") not in ada.identifiers
    assert "firstName" not in ada.traits


def test_an_anonymous_event_naming_two_users_profiles_creates_no_unreachable_profile(
    two_users: FakeProfileStore,
) -> None:
    # Given Ada's browser, where someone (not logged in) types Bob's email
    call = track(anonymousId="a-ada", context={"traits": {"email": "bob@example.com"}})

    # When the event is resolved
    resolution = resolve(call, two_users, EVENT_TIME, new_profile_id=lambda: "p-orphan")

    # Then it belongs to a profile that one of its identifiers leads back to
    reachable = {two_users.owner_of(i).profileId for i in (anon("a-ada"), email("bob@example.com"))}  # type: ignore[union-attr]
    assert resolution.profile.profileId in reachable
    assert "p-orphan" not in two_users.docs
    # and, email outranking an anonymous id, to Bob's
    assert resolution.profile.profileId == two_users.owner_of(email("bob@example.com")).profileId  # type: ignore[union-attr]


# -- races ---------------------------------------------------------------------------------------


def test_a_lost_race_is_resolved_again_from_fresh_reads(store: FakeProfileStore) -> None:
    # Given another event for the same device claims a-1 between our reads and our commit
    def concurrent_writer(s: FakeProfileStore) -> None:
        s.seed("p-other", anon("a-1"), created_at=OLD)

    store.interfere_once(concurrent_writer)

    resolution = resolve(track(anonymousId="a-1"), store, EVENT_TIME, new_profile_id=ids())

    assert store.commit_attempts == 2
    assert resolution.profile.profileId == "p-other"
    assert list(store.docs) == ["p-other"]
    assert store.docs["p-other"].lastEvents == {"Product Added": "2024-05-01T09:00:00.000Z"}


def test_a_profile_changed_meanwhile_is_not_overwritten(store: FakeProfileStore) -> None:
    store.seed("p-1", anon("a-1"), created_at=OLD)

    def concurrent_writer(s: FakeProfileStore) -> None:
        resolve(
            identify(anonymousId="a-1", traits={"plan": "pro"}), s, EVENT_TIME, new_profile_id=ids("other")
        )

    store.interfere_once(concurrent_writer)

    resolve(identify(anonymousId="a-1", traits={"firstName": "Ada"}), store, EVENT_TIME, new_profile_id=ids())

    assert store.docs["p-1"].traits == {"plan": "pro", "firstName": "Ada"}
    assert store.docs["p-1"].version == 3


def test_resolution_gives_up_after_repeated_lost_races(store: FakeProfileStore) -> None:
    class AlwaysLosing(FakeProfileStore):
        def commit(self, changed: list[Profile], claims: dict[Identifier, str | None]) -> None:
            self.commit_attempts += 1
            raise ConcurrentChangeError("someone else wrote first")

    losing = AlwaysLosing()

    with pytest.raises(ResolutionError):
        resolve(track(anonymousId="a-1"), losing, EVENT_TIME, new_profile_id=ids())

    assert losing.commit_attempts == MAX_ATTEMPTS


# -- invariants over random event streams (hand-rolled: no hypothesis in this project) -------------


def _random_call(rng: random.Random) -> dict[str, Any]:
    call_type = rng.choice(["track", "identify", "group", "alias"])
    call: dict[str, Any] = {"type": call_type, "event": rng.choice(["Product Added", "Order Completed"])}
    if rng.random() < 0.4 or call_type == "alias":
        call["userId"] = rng.choice(["u-1", "u-2", "u-3"])
    if rng.random() < 0.8 or "userId" not in call:
        call["anonymousId"] = rng.choice(["a-1", "a-2", "a-3", "a-4"])
    if call_type == "alias":
        call["previousId"] = rng.choice(["a-1", "a-2", "a-3", "a-4"])
    context: dict[str, Any] = {}
    if rng.random() < 0.3:
        # The user's email: in an identify's traits, else in context.traits (a group's traits are its own)
        traits = {"email": rng.choice(["x@example.com", "y@example.com", "z@example.com"])}
        if call_type == "identify":
            call["traits"] = traits
        else:
            context["traits"] = traits
    if call_type == "group":
        call["groupId"] = "acme"
        call["traits"] = {"email": "billing@acme.com"}
    if rng.random() < 0.2:
        context["device"] = {"token": rng.choice(["tok-1", "tok-2"])}
    call["context"] = context
    return call


def _assert_consistent(store: FakeProfileStore) -> None:
    live = {p.profileId: p for p in store.live()}
    for profile in live.values():
        assert len(set(profile.values_of("user_id"))) <= 1, f"two users on {profile.profileId}"
        for identifier in profile.identifiers:
            owner = store.owner_of(identifier)
            assert owner is not None and owner.profileId == profile.profileId, f"{identifier} is astray"
        for merged in profile.mergedFrom:
            assert store.profile(merged).profileId == profile.profileId  # type: ignore[union-attr]
    for identifier in store.index:
        owner = store.owner_of(identifier)
        assert owner is not None and identifier in live[owner.profileId].identifiers


def _racing(
    call: dict[str, Any], at: datetime, new_id: Callable[[], str]
) -> Callable[[FakeProfileStore], None]:
    def writer(store: FakeProfileStore) -> None:
        resolve(call, store, at, new_profile_id=new_id)

    return writer


@pytest.mark.parametrize("seed", range(12))
def test_random_event_streams_keep_profiles_consistent(seed: int) -> None:
    # Every live profile has at most one user id; every identifier resolves to exactly the live profile
    # that lists it; merged ids resolve to their survivor -- also when resolutions race, and whatever
    # mix of track, identify, group and alias calls arrives.
    rng = random.Random(seed)
    store = FakeProfileStore()
    new_id = ids(f"p{seed}")
    for step in range(60):
        at = EVENT_TIME + timedelta(minutes=step)
        if rng.random() < 0.15:
            store.interfere_once(_racing(_random_call(rng), at, new_id))
        resolution = resolve(_random_call(rng), store, at, new_profile_id=new_id)
        assert resolution.profile.mergedInto is None
        assert store.profile(resolution.profile.profileId).profileId == resolution.profile.profileId  # type: ignore[union-attr]
        _assert_consistent(store)
    assert email("billing@acme.com") not in store.index  # a group's email is never the user's
