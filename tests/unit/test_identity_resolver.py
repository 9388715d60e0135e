"""Identity resolution (shared/identity/resolver.py) against a store keeping DynamoProfileStore's contract."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import clock
from shared.identity.resolver import (
    MAX_ATTEMPTS,
    ConcurrentChangeError,
    EventChange,
    Pointer,
    Resolution,
    ResolutionError,
    age,
    apply_change,
    fits,
    merge_into,
    resolve,
)
from shared.identity.rules import CustomIdentifier, IdentityRules
from shared.models.profile import Identifier, MergeRecord, Profile, TimelineEntry
from tests.identifiers import anon, email, token, user
from tests.unit.conftest import FIXED_NOW
from tests.unit.fakes import FakeProfileStore

pytestmark = pytest.mark.usefixtures("fixed_clock")

RULES = IdentityRules()
EVENT_TIME = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)
AT = clock.iso(EVENT_TIME)  # "2024-05-01T09:00:00.000Z"
NOW = clock.iso(FIXED_NOW)
OLD = "2024-01-01T00:00:00.000Z"
NEWER = "2024-03-01T00:00:00.000Z"
LATER = "2024-06-01T00:00:00.000Z"  # after EVENT_TIME: an event at EVENT_TIME then arrives out of order


def ids(prefix: str = "p-new") -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter):04d}"


_message_ids = itertools.count(1)


def _call(call_type: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": call_type, "messageId": f"m-{next(_message_ids)}", **fields}


def track(event: str = "Product Added", **fields: Any) -> dict[str, Any]:
    return _call("track", {"event": event, **fields})


def identify(**fields: Any) -> dict[str, Any]:
    return _call("identify", fields)


def group(**fields: Any) -> dict[str, Any]:
    return _call("group", fields)


def alias(**fields: Any) -> dict[str, Any]:
    return _call("alias", fields)


def run(
    call: dict[str, Any],
    store: FakeProfileStore,
    at: datetime = EVENT_TIME,
    rules: IdentityRules = RULES,
    new_profile_id: Callable[[], str] | None = None,
) -> Resolution:
    return resolve(call, store, rules, at, new_profile_id or ids())


@pytest.fixture
def store() -> FakeProfileStore:
    return FakeProfileStore()


# -- a new customer --------------------------------------------------------------------------------


def test_an_unknown_customer_gets_a_new_profile_with_every_identifier(store: FakeProfileStore) -> None:
    # Given nobody known
    call = identify(userId="u-1", anonymousId="a-1", traits={"email": "Ada@Example.com"})

    # When a customer identifies
    resolution = run(call, store, new_profile_id=lambda: "p-1")

    # Then one profile is created, owning all three identifiers, in one commit
    assert resolution == Resolution("p-1")
    assert set(store.docs["p-1"].identifiers) == {user("u-1"), anon("a-1"), email("ada@example.com")}
    assert store.index == {user("u-1"): "p-1", anon("a-1"): "p-1", email("ada@example.com"): "p-1"}
    assert store.writes == ["commit"]


def test_a_new_profile_is_stamped_with_the_clock_and_stored_at_version_1(store: FakeProfileStore) -> None:
    run(track(anonymousId="a-1"), store, new_profile_id=lambda: "p-1")

    stored = store.docs["p-1"]
    assert stored.createdAt == stored.updatedAt == NOW
    assert stored.version == 1


def test_a_new_profile_records_what_the_event_tells(store: FakeProfileStore) -> None:
    call = track(anonymousId="a-1", properties={"sku": "A1"}, context={"traits": {"plan": "pro"}})

    run(call, store, new_profile_id=lambda: "p-1")

    stored = store.docs["p-1"]
    assert (stored.traits, stored.traitTimes) == ({"plan": "pro"}, {"plan": AT})
    assert stored.lastEvents == {"Product Added": AT}
    assert stored.latestEventAt == AT
    assert store.timeline_of("p-1") == [
        TimelineEntry(
            profileId="p-1",
            type="track",
            name="Product Added",
            timestamp=AT,
            messageId=call["messageId"],
            data={"sku": "A1"},
        )
    ]


def test_an_identify_event_records_its_own_traits_over_the_context_ones(store: FakeProfileStore) -> None:
    call = identify(
        userId="u-1",
        traits={"firstName": "Ada", "plan": "pro"},
        context={"traits": {"plan": "free", "country": "UK"}},
    )

    run(call, store, new_profile_id=lambda: "p-1")

    assert store.docs["p-1"].traits == {"firstName": "Ada", "plan": "pro", "country": "UK"}
    assert store.docs["p-1"].lastEvents == {}
    assert store.timeline_of("p-1")[0].data == {"firstName": "Ada", "plan": "pro"}


@pytest.mark.parametrize("extra", [{"event": 5}, {"event": True}, {"name": [1]}, {"name": {"a": 1}}])
def test_an_extra_event_or_name_that_is_not_text_does_not_fail_the_event(
    store: FakeProfileStore, extra: dict[str, Any]
) -> None:
    # Ingest keeps fields the spec does not name on an identify: a numeric `event` was answered 200,
    # then failed identity for good, and the unsubscribe it carried was lost.
    call = identify(userId="u-1", traits={"unsubscribed": True}, **extra)

    resolution = run(call, store, new_profile_id=lambda: "p-1")

    assert resolution.profile_id == "p-1"
    assert store.docs["p-1"].traits == {"unsubscribed": True}
    assert store.timeline_of("p-1")[0].name is None


def test_an_event_naming_no_identifier_is_dropped_with_a_warning(store: FakeProfileStore) -> None:
    resolution = run(track(), store)

    assert resolution.profile_id is None
    assert resolution.warnings == ["the event names no usable identifier: dropped"]
    assert (store.reads, store.writes, store.docs) == ([], [], {})


# -- a known customer: the fast path ---------------------------------------------------------------


@pytest.fixture
def known(store: FakeProfileStore) -> FakeProfileStore:
    """Ada, seen before on the web, her newest event an hour before EVENT_TIME."""
    store.seed(
        "p-1",
        anon("a-1"),
        created_at=OLD,
        traits={"firstName": "Ada", "plan": "free"},
        traitTimes={"firstName": OLD, "plan": OLD},
        lastEvents={"Product Added": OLD},
        latestEventAt="2024-05-01T08:00:00.000Z",
    )
    return store


def test_a_known_customer_costs_one_read_and_one_write(known: FakeProfileStore) -> None:
    # When her next event arrives
    call = track(anonymousId="a-1")
    resolution = run(call, known)

    # Then it is recorded by the fast path: no profile read, no full commit
    assert resolution == Resolution("p-1")
    assert known.reads == ["lookup"]
    assert known.writes == ["record"]
    stored = known.docs["p-1"]
    assert stored.lastEvents == {"Product Added": AT}
    assert (stored.latestEventAt, stored.updatedAt, stored.version) == (AT, NOW, 2)
    assert [e.messageId for e in known.timeline_of("p-1")] == [call["messageId"]]


def test_the_fast_path_sets_each_trait_with_the_events_time(known: FakeProfileStore) -> None:
    run(identify(anonymousId="a-1", traits={"plan": "pro", "city": "London"}), known)

    stored = known.docs["p-1"]
    assert stored.traits == {"firstName": "Ada", "plan": "pro", "city": "London"}
    assert stored.traitTimes == {"firstName": OLD, "plan": AT, "city": AT}
    assert known.writes == ["record"]


def test_a_new_identifier_of_a_known_customer_is_attached_on_the_fast_path(known: FakeProfileStore) -> None:
    call = identify(anonymousId="a-1", userId="u-1", context={"device": {"token": "tok-1"}})

    run(call, known)

    assert known.docs["p-1"].identifiers == [anon("a-1"), user("u-1"), token("tok-1")]
    assert known.index[user("u-1")] == known.index[token("tok-1")] == "p-1"
    assert known.writes == ["record"]


def test_an_older_event_takes_the_full_path_and_the_newest_value_of_each_trait_wins(
    store: FakeProfileStore,
) -> None:
    # Given a profile whose plan was set in June and whose name was set in January
    store.seed(
        "p-1",
        anon("a-1"),
        created_at=OLD,
        traits={"plan": "pro", "firstName": "Ada"},
        traitTimes={"plan": LATER, "firstName": OLD},
        lastEvents={"Product Added": LATER},
        latestEventAt=LATER,
    )

    # When an event from May arrives late
    call = track(anonymousId="a-1", context={"traits": {"plan": "free", "firstName": "Augusta", "city": "X"}})
    resolution = run(call, store)

    # Then it cannot take the fast path; only the traits it set more recently change
    assert resolution.profile_id == "p-1"
    assert store.writes == ["record", "commit"]
    stored = store.docs["p-1"]
    assert stored.traits == {"plan": "pro", "firstName": "Augusta", "city": "X"}
    assert stored.traitTimes == {"plan": LATER, "firstName": AT, "city": AT}
    assert stored.lastEvents == {"Product Added": LATER}
    assert stored.latestEventAt == LATER
    assert len(store.timeline_of("p-1")) == 1


def test_a_groups_traits_are_not_copied_to_the_users_profile(store: FakeProfileStore) -> None:
    store.seed("p-1", user("u-1"), created_at=OLD, traits={"firstName": "Ada"})
    call = group(userId="u-1", groupId="acme", traits={"email": "billing@acme.com", "name": "Acme"})

    run(call, store)

    assert store.docs["p-1"].traits == {"firstName": "Ada"}


def test_a_groups_email_is_neither_claimed_nor_linking(store: FakeProfileStore) -> None:
    # Given Ada's and Bob's profiles, Bob's known by the email Acme's billing uses
    store.seed("p-ada", user("u-ada"), created_at=OLD)
    store.seed("p-bob", email("billing@acme.com"), created_at=NEWER)

    # When Ada joins the Acme group
    call = group(userId="u-ada", groupId="acme", traits={"email": "billing@acme.com"})
    resolution = run(call, store)

    # Then her profile neither takes the group's email nor merges Bob's
    assert resolution == Resolution("p-ada")
    assert store.docs["p-ada"].identifiers == [user("u-ada")]
    assert store.index[email("billing@acme.com")] == "p-bob"


def test_the_users_traits_in_a_groups_context_are_recorded(store: FakeProfileStore) -> None:
    run(
        group(userId="u-1", groupId="acme", context={"traits": {"firstName": "Ada"}}),
        store,
        new_profile_id=lambda: "p-1",
    )

    assert store.docs["p-1"].traits == {"firstName": "Ada"}


# -- merging ---------------------------------------------------------------------------------------


@pytest.fixture
def two_profiles(store: FakeProfileStore) -> FakeProfileStore:
    """The same person seen twice, anonymously: on the web (older) and by email on a phone (newer)."""
    store.seed(
        "p-web",
        anon("a-1"),
        created_at=OLD,
        traits={"firstName": "Ada", "plan": "free", "city": "Paris"},
        traitTimes={"firstName": OLD, "plan": OLD, "city": "2024-04-01T00:00:00.000Z"},
        lastEvents={
            "Product Added": "2024-02-01T00:00:00.000Z",
            "Order Completed": "2024-01-05T00:00:00.000Z",
        },
        latestEventAt="2024-02-01T00:00:00.000Z",
    )
    store.seed(
        "p-mail",
        email("ada@example.com"),
        token("tok-1"),
        created_at=NEWER,
        traits={"plan": "pro", "city": "Lyon"},
        traitTimes={"plan": NEWER, "city": NEWER},
        lastEvents={"Order Completed": "2024-03-05T00:00:00.000Z"},
        latestEventAt="2024-03-05T00:00:00.000Z",
    )
    return store


def linking_call() -> dict[str, Any]:
    return track("Page Viewed", anonymousId="a-1", context={"traits": {"email": "ada@example.com"}})


def test_an_event_linking_two_anonymous_profiles_merges_them_into_the_oldest(
    two_profiles: FakeProfileStore,
) -> None:
    resolution = run(linking_call(), two_profiles)

    assert resolution == Resolution("p-web", merged=["p-mail"])
    assert two_profiles.docs["p-web"].mergedInto is None
    assert two_profiles.docs["p-web"].mergedFrom == ["p-mail"]
    assert two_profiles.docs["p-mail"].mergedInto == "p-web"
    assert [p.profileId for p in two_profiles.live()] == ["p-web"]


def test_a_merge_repoints_the_merged_profiles_identifiers_to_the_survivor(
    two_profiles: FakeProfileStore,
) -> None:
    run(linking_call(), two_profiles)

    survivor = two_profiles.docs["p-web"]
    assert set(survivor.identifiers) == {anon("a-1"), email("ada@example.com"), token("tok-1")}
    assert set(two_profiles.index.values()) == {"p-web"}


def test_a_merge_is_logged_with_what_the_merged_profile_was(two_profiles: FakeProfileStore) -> None:
    before = two_profiles.docs["p-mail"].model_copy(deep=True)

    run(linking_call(), two_profiles)

    assert two_profiles.merges_into("p-web") == [MergeRecord(survivor="p-web", merged=before, at=NOW)]


def test_a_merge_keeps_the_most_recently_set_value_of_each_trait(two_profiles: FakeProfileStore) -> None:
    run(linking_call(), two_profiles)

    survivor = two_profiles.docs["p-web"]
    # plan: set in March on the phone, in January on the web; city: set in April on the web
    assert survivor.traits == {"firstName": "Ada", "plan": "pro", "city": "Paris", "email": "ada@example.com"}
    assert survivor.traitTimes == {
        "firstName": OLD,
        "plan": NEWER,
        "city": "2024-04-01T00:00:00.000Z",
        "email": AT,
    }


def test_a_merge_keeps_the_latest_time_of_every_event(two_profiles: FakeProfileStore) -> None:
    run(linking_call(), two_profiles)

    survivor = two_profiles.docs["p-web"]
    assert survivor.lastEvents == {
        "Product Added": "2024-02-01T00:00:00.000Z",
        "Order Completed": "2024-03-05T00:00:00.000Z",
        "Page Viewed": AT,
    }
    assert survivor.latestEventAt == AT


def test_a_merge_records_the_event_on_the_survivors_timeline_only(two_profiles: FakeProfileStore) -> None:
    call = linking_call()

    run(call, two_profiles)

    assert [e.messageId for e in two_profiles.timeline_of("p-web")] == [call["messageId"]]
    assert two_profiles.timeline_of("p-mail") == []


def test_the_survivor_is_the_oldest_whichever_identifier_is_strongest(store: FakeProfileStore) -> None:
    store.seed("p-a", anon("a-1"), created_at=OLD)
    store.seed("p-z", email("ada@example.com"), created_at=NEWER)

    resolution = run(linking_call(), store)

    assert resolution.profile_id == "p-a"


def test_between_profiles_created_at_once_the_smaller_id_survives(store: FakeProfileStore) -> None:
    store.seed("p-b", anon("a-1"), created_at=OLD)
    store.seed("p-a", email("ada@example.com"), created_at=OLD)

    resolution = run(linking_call(), store)

    assert resolution == Resolution("p-a", merged=["p-b"])


def test_merging_a_profile_that_had_merges_keeps_their_history(store: FakeProfileStore) -> None:
    # Given p-gone merged into p-mid earlier (its identifier repointed), and p-old
    store.seed("p-old", anon("a-1"), created_at=OLD)
    store.seed("p-mid", email("ada@example.com"), anon("a-9"), created_at=NEWER, mergedFrom=["p-gone"])
    store.seed("p-gone", anon("a-9"), created_at="2024-04-01T00:00:00.000Z", mergedInto="p-mid")

    # When an event links p-old and p-mid
    resolution = run(linking_call(), store)

    # Then p-old holds the whole history, and every old id and identifier resolves to it
    assert resolution == Resolution("p-old", merged=["p-mid"])
    assert store.docs["p-old"].mergedFrom == ["p-mid", "p-gone"]
    assert store.index[anon("a-9")] == "p-old"
    assert store.profile("p-gone").profileId == "p-old"  # type: ignore[union-attr]


def test_an_event_naming_three_profiles_merges_all_into_the_oldest(store: FakeProfileStore) -> None:
    store.seed("p-1", anon("a-1"), created_at=NEWER)
    store.seed("p-2", email("ada@example.com"), created_at=OLD)
    store.seed("p-3", token("tok-1"), created_at=LATER)
    call = track(
        anonymousId="a-1", context={"traits": {"email": "ada@example.com"}, "device": {"token": "tok-1"}}
    )

    resolution = run(call, store)

    assert resolution.profile_id == "p-2"
    assert sorted(resolution.merged) == ["p-1", "p-3"]
    assert set(store.index.values()) == {"p-2"}
    assert len(store.merges_into("p-2")) == 2


# -- alias -----------------------------------------------------------------------------------------


def test_an_alias_links_the_previous_ids_profile_with_the_users(store: FakeProfileStore) -> None:
    # Given the visitor's anonymous profile and, separately, the user's profile
    store.seed("p-anon", anon("a-1"), created_at=OLD, lastEvents={"Product Added": OLD})
    store.seed("p-user", user("u-1"), created_at=NEWER, traits={"plan": "pro"}, traitTimes={"plan": NEWER})

    # When the site aliases the anonymous id to the user id
    resolution = run(alias(previousId="a-1", userId="u-1"), store)

    # Then both ids lead to one profile holding what each knew
    assert resolution == Resolution("p-anon", merged=["p-user"])
    assert store.index[anon("a-1")] == store.index[user("u-1")] == "p-anon"
    survivor = store.docs["p-anon"]
    assert (survivor.traits, survivor.lastEvents) == ({"plan": "pro"}, {"Product Added": OLD})


def test_an_alias_gives_an_anonymous_profile_its_user_id(store: FakeProfileStore) -> None:
    store.seed("p-anon", anon("a-1"), created_at=OLD)

    resolution = run(alias(previousId="a-1", userId="u-1"), store)

    assert resolution == Resolution("p-anon")
    assert store.index[user("u-1")] == "p-anon"
    assert store.writes == ["record"]


def test_an_alias_of_an_unknown_previous_id_claims_it_for_the_user(store: FakeProfileStore) -> None:
    store.seed("p-user", user("u-1"), created_at=OLD)

    run(alias(previousId="a-1", userId="u-1"), store)

    assert store.index[anon("a-1")] == "p-user"


# -- users are never joined ------------------------------------------------------------------------


@pytest.fixture
def two_users(store: FakeProfileStore) -> FakeProfileStore:
    store.seed("p-ada", user("u-ada"), anon("a-ada"), email("ada@example.com"), created_at=OLD)
    store.seed("p-bob", user("u-bob"), anon("a-bob"), email("bob@example.com"), created_at=NEWER)
    return store


def test_an_event_naming_two_users_profiles_merges_nothing(two_users: FakeProfileStore) -> None:
    resolution = run(identify(userId="u-ada", anonymousId="a-bob"), two_users)

    assert resolution.profile_id == "p-ada"
    assert resolution.merged == []
    assert resolution.warnings == ["not merged with the profile of its anonymous_id: a limit would break"]
    assert {p.profileId for p in two_users.live()} == {"p-ada", "p-bob"}
    assert two_users.index[anon("a-bob")] == "p-bob"


def test_an_alias_never_joins_two_users(two_users: FakeProfileStore) -> None:
    resolution = run(alias(previousId="a-bob", userId="u-ada"), two_users)

    assert resolution.merged == []
    assert two_users.index[anon("a-bob")] == "p-bob"


def test_an_event_naming_two_users_profiles_goes_to_its_own_users_profile(
    two_users: FakeProfileStore,
) -> None:
    resolution = run(identify(userId="u-bob", traits={"email": "ada@example.com"}), two_users)

    assert resolution.profile_id == "p-bob"
    assert email("ada@example.com") not in two_users.docs["p-bob"].identifiers
    assert two_users.index[email("ada@example.com")] == "p-ada"


def test_a_new_user_on_another_users_device_gets_a_profile_of_their_own(two_users: FakeProfileStore) -> None:
    # Given Ada's browser (anonymous id a-ada), where Carol, who has no profile yet, logs in
    call = identify(
        userId="u-carol", anonymousId="a-ada", traits={"email": "carol@example.com", "firstName": "C"}
    )

    # When the identify event is resolved
    resolution = run(call, two_users, new_profile_id=lambda: "p-carol")

    # Then Carol has her own profile with her user id and email; the device id stays Ada's
    assert resolution.profile_id == "p-carol"
    assert set(two_users.docs["p-carol"].identifiers) == {user("u-carol"), email("carol@example.com")}
    assert two_users.index[anon("a-ada")] == "p-ada"
    # and nothing of Carol's lands on Ada's profile
    ada = two_users.docs["p-ada"]
    assert (ada.values_of("user_id"), ada.traits, ada.version) == (["u-ada"], {}, 1)


def test_an_anonymous_event_naming_two_users_goes_to_its_strongest_identifiers_profile(
    two_users: FakeProfileStore,
) -> None:
    # Given Ada's browser, where someone (not logged in) types Bob's email
    call = track(anonymousId="a-ada", context={"traits": {"email": "bob@example.com"}})

    # When the event is resolved
    resolution = run(call, two_users, new_profile_id=lambda: "p-orphan")

    # Then, an email outranking an anonymous id, it is Bob's; no profile is created
    assert resolution.profile_id == "p-bob"
    assert resolution.merged == []
    assert "p-orphan" not in two_users.docs
    assert two_users.index[anon("a-ada")] == "p-ada"


# -- limits ----------------------------------------------------------------------------------------

FIVE_EMAILS = [email(f"ada{n}@example.com") for n in range(5)]


def test_a_sixth_email_is_not_attached_and_the_event_still_lands(store: FakeProfileStore) -> None:
    # Given a user whose profile has five emails, the default limit
    store.seed("p-1", user("u-1"), *FIVE_EMAILS, created_at=OLD)

    # When she identifies with a sixth
    resolution = run(identify(userId="u-1", traits={"email": "ada5@example.com", "plan": "pro"}), store)

    # Then the event is hers, its traits recorded, the sixth email left unattached with a warning
    assert resolution == Resolution("p-1", warnings=["email not attached: the profile is at its limit"])
    assert store.docs["p-1"].values_of("email") == [e.value for e in FIVE_EMAILS]
    assert email("ada5@example.com") not in store.index
    assert store.docs["p-1"].traits["plan"] == "pro"
    assert store.writes == ["record", "commit"]


def test_a_new_email_past_the_limit_outranks_a_weaker_anonymous_id(store: FakeProfileStore) -> None:
    # Given an anonymous visitor's profile with five emails
    store.seed("p-1", anon("a-1"), *FIVE_EMAILS, created_at=OLD)

    # When the visitor types a sixth
    call = identify(anonymousId="a-1", traits={"email": "ada5@example.com"})
    resolution = run(call, store, new_profile_id=lambda: "p-new")

    # Then, as the README documents, the stronger identifier decides: the email gets a profile of its
    # own, and the weaker anonymous id stays where it was
    assert resolution == Resolution(
        "p-new", warnings=["not merged with the profile of its anonymous_id: a limit would break"]
    )
    assert store.docs["p-new"].identifiers == [email("ada5@example.com")]
    assert store.index[anon("a-1")] == "p-1"


def test_a_merge_that_would_pass_a_limit_is_refused(store: FakeProfileStore) -> None:
    # Given two profiles with three emails each
    store.seed("p-1", anon("a-1"), *FIVE_EMAILS[:3], created_at=OLD)
    store.seed("p-2", *(email(f"bob{n}@example.com") for n in range(3)), created_at=NEWER)

    # When an event names the anonymous id of one and an email of the other
    call = track(anonymousId="a-1", context={"traits": {"email": "bob0@example.com"}})
    resolution = run(call, store)

    # Then they stay apart and the event goes to the profile of its strongest identifier
    assert resolution == Resolution(
        "p-2", warnings=["not merged with the profile of its anonymous_id: a limit would break"]
    )
    assert {p.profileId for p in store.live()} == {"p-1", "p-2"}
    assert store.index[anon("a-1")] == "p-1"


def test_a_configured_limit_holds_on_the_fast_path(store: FakeProfileStore) -> None:
    rules = IdentityRules(limits={"device_token": 1})
    store.seed("p-1", user("u-1"), token("tok-1"), created_at=OLD)

    resolution = run(identify(userId="u-1", context={"device": {"token": "tok-2"}}), store, rules=rules)

    assert resolution.warnings == ["device_token not attached: the profile is at its limit"]
    assert store.docs["p-1"].values_of("device_token") == ["tok-1"]
    assert token("tok-2") not in store.index


def test_a_profile_past_a_lowered_limit_still_receives_its_own_events(store: FakeProfileStore) -> None:
    # Given a profile with three emails, then the email limit lowered to two
    store.seed("p-1", anon("a-1"), *FIVE_EMAILS[:3], created_at=OLD, latestEventAt=LATER)
    rules = IdentityRules(limits={"email": 2})

    # When an older event of hers arrives (the full path)
    resolution = run(track(anonymousId="a-1"), store, rules=rules, new_profile_id=lambda: "p-orphan")

    # Then it is still hers
    assert resolution.profile_id == "p-1"
    assert all(p.identifiers for p in store.live())


# -- blocked values and suppressed identifiers -------------------------------------------------------


@pytest.mark.parametrize("blocked", ["anonymous", "00000000-0000-0000-0000-000000000000", "null", "0"])
def test_a_blocked_anonymous_id_is_not_an_identifier(store: FakeProfileStore, blocked: str) -> None:
    resolution = run(identify(userId="u-1", anonymousId=blocked), store, new_profile_id=lambda: "p-1")

    assert resolution.profile_id == "p-1"
    assert store.docs["p-1"].identifiers == [user("u-1")]
    assert resolution.warnings == ["anonymous_id left out of matching: a blocked placeholder value"]


def test_two_users_sending_the_all_zero_device_id_are_not_linked(store: FakeProfileStore) -> None:
    zeros = "00000000-0000-0000-0000-000000000000"
    run(identify(userId="u-1", anonymousId=zeros, context={"device": {"id": zeros}}), store)

    run(
        identify(anonymousId="a-2", traits={"email": "b@example.com"}, context={"device": {"id": zeros}}),
        store,
    )

    assert len(store.live()) == 2
    assert all(i.value != zeros for i in store.index)


def test_an_event_with_only_blocked_identifiers_is_dropped_with_a_warning(store: FakeProfileStore) -> None:
    resolution = run(track(anonymousId="undefined", userId="NULL"), store)

    assert resolution.profile_id is None
    assert resolution.warnings == [
        "user_id left out of matching: a blocked placeholder value",
        "anonymous_id left out of matching: a blocked placeholder value",
        "the event names no usable identifier: dropped",
    ]
    assert (store.reads, store.writes, store.docs) == ([], [], {})


def test_an_event_naming_an_erased_persons_identifier_lands_without_it(two_users: FakeProfileStore) -> None:
    # Given Carol erased (her email suppressed), Ada's browser still known
    two_users.suppress(email("carol@example.com"))

    # When an event names both
    call = identify(anonymousId="a-ada", traits={"email": "carol@example.com", "plan": "pro"})
    resolution = run(call, two_users)

    # Then it loses only the suppressed email: it lands on Ada's profile, which never gets the email
    assert resolution.profile_id == "p-ada"
    assert resolution.suppressed_identifiers == 1
    assert resolution.warnings == ["1 email identifier left out: suppressed (an erased person's)"]
    assert email("carol@example.com") not in two_users.index
    assert email("carol@example.com") not in two_users.docs["p-ada"].identifiers


def test_a_purchase_on_a_device_an_erased_person_shared_lands_on_the_buyers_profile(
    store: FakeProfileStore,
) -> None:
    # Given Bob, who shops on the family iPad that Alice, now erased, also used
    ipad = Identifier(type="device_id", value="ipad-1")
    store.seed("p-bob", user("u-bob"), created_at=OLD)
    store.suppress(user("u-alice"), ipad)

    # When Bob buys from the iPad
    call = track("Order Completed", userId="u-bob", context={"device": {"id": "ipad-1"}})
    resolution = run(call, store)

    # Then the purchase is Bob's (his journey can end) and the iPad is attached to no profile
    assert resolution.profile_id == "p-bob"
    assert store.docs["p-bob"].lastEvents == {"Order Completed": AT}
    assert store.docs["p-bob"].identifiers == [user("u-bob")]
    assert ipad not in store.index


def test_an_event_with_a_suppressed_and_a_new_identifier_gets_a_new_profile_without_the_suppressed(
    store: FakeProfileStore,
) -> None:
    store.suppress(anon("a-alice"))

    call = identify(anonymousId="a-alice", traits={"email": "new@example.com"})
    resolution = run(call, store, new_profile_id=lambda: "p-new")

    assert resolution.profile_id == "p-new"
    assert store.docs["p-new"].identifiers == [email("new@example.com")]
    assert anon("a-alice") not in store.index


def test_an_event_whose_only_identifiers_are_suppressed_is_dropped(two_users: FakeProfileStore) -> None:
    two_users.suppress(anon("a-gone"), email("gone@example.com"))

    resolution = run(identify(anonymousId="a-gone", traits={"email": "gone@example.com"}), two_users)

    assert resolution.profile_id is None
    assert resolution.suppressed
    assert resolution.suppressed_identifiers == 2
    assert two_users.writes == []
    assert {anon("a-gone"), email("gone@example.com")}.isdisjoint(two_users.index)


# -- races -----------------------------------------------------------------------------------------


def test_a_lost_claim_is_resolved_again_from_fresh_reads(store: FakeProfileStore) -> None:
    # Given another event for the same device creates its profile between our reads and our commit
    store.interfere_once(lambda s: s.seed("p-other", anon("a-1"), created_at=OLD))

    # When our event is resolved
    resolution = run(track(anonymousId="a-1"), store, new_profile_id=lambda: "p-mine")

    # Then our commit fails, and the retry finds the new profile and records on it
    assert resolution == Resolution("p-other")
    assert store.writes == ["commit", "record"]
    assert list(store.docs) == ["p-other"]
    assert store.docs["p-other"].lastEvents == {"Product Added": AT}


def test_a_claim_lost_on_the_fast_path_is_resolved_again(known: FakeProfileStore) -> None:
    # Given another event of Ada's attaches the same new email first
    def concurrent_event(s: FakeProfileStore) -> None:
        run(identify(anonymousId="a-1", traits={"email": "ada@example.com"}), s)

    known.interfere_once(concurrent_event)

    # When ours is resolved
    resolution = run(identify(anonymousId="a-1", traits={"email": "ada@example.com", "plan": "pro"}), known)

    # Then the retry records it without claiming anything
    assert resolution == Resolution("p-1")
    assert known.writes == ["record", "record", "record"]  # ours (lost), theirs, ours again
    assert known.docs["p-1"].identifiers == [anon("a-1"), email("ada@example.com")]
    assert known.docs["p-1"].traits["plan"] == "pro"


def test_an_event_for_a_profile_merged_meanwhile_lands_on_the_survivor(store: FakeProfileStore) -> None:
    # Given p-1 is merged into the older p-0 between our read and our write
    store.seed("p-1", anon("a-1"), created_at=NEWER)
    store.seed("p-0", email("ada@example.com"), created_at=OLD)

    def concurrent_merge(s: FakeProfileStore) -> None:
        run(identify(anonymousId="a-1", traits={"email": "ada@example.com"}), s)

    store.interfere_once(concurrent_merge)

    # When our event for p-1 is written
    resolution = run(track(anonymousId="a-1"), store)

    # Then the fast path refuses the merged profile and the retry finds the survivor
    assert resolution == Resolution("p-0")
    assert store.docs["p-0"].lastEvents == {"Product Added": AT}
    assert store.docs["p-1"].lastEvents == {}


def test_a_profile_changed_meanwhile_is_not_overwritten(two_profiles: FakeProfileStore) -> None:
    # Given the survivor-to-be records another event between our reads and our merge
    two_profiles.interfere_once(lambda s: run(identify(anonymousId="a-1", traits={"vip": True}), s))

    # When our merge commits
    resolution = run(linking_call(), two_profiles)

    # Then its first commit fails on p-web's version, and the retry keeps both events' changes
    assert resolution.merged == ["p-mail"]
    assert two_profiles.writes == ["commit", "record", "commit"]
    assert two_profiles.docs["p-web"].traits["vip"] is True
    assert two_profiles.docs["p-web"].values_of("email") == ["ada@example.com"]


def test_resolution_gives_up_after_repeated_lost_races() -> None:
    class AlwaysLosing(FakeProfileStore):
        def commit(
            self,
            changed: list[Profile],
            pointers: list[Pointer],
            timeline: list[TimelineEntry],
            merges: list[MergeRecord],
        ) -> None:
            self.writes.append("commit")
            raise ConcurrentChangeError("someone else wrote first")

    losing = AlwaysLosing()

    with pytest.raises(ResolutionError):
        run(track(anonymousId="a-1"), losing)

    assert losing.writes == ["commit"] * MAX_ATTEMPTS
    assert losing.docs == {}


def test_a_retried_resolution_reports_each_warning_once(store: FakeProfileStore) -> None:
    store.seed("p-1", user("u-1"), *FIVE_EMAILS, created_at=OLD)
    store.interfere_once(lambda s: None)  # the fast path attempt
    store.interfere_once(lambda s: run(identify(userId="u-1", traits={"vip": True}), s))  # beats our commit

    resolution = run(identify(userId="u-1", traits={"email": "ada5@example.com"}), store)

    assert resolution.warnings == ["email not attached: the profile is at its limit"]


@pytest.mark.xfail(
    strict=True,
    reason="resolver.py _full_path raises ConcurrentChangeError for every owner that is merged, but the "
    "previous resolver left identifiers pointing at merged profiles (lookups followed mergedInto); "
    "events naming those identifiers now fail MAX_ATTEMPTS times and end in ResolutionError",
)
def test_an_identifier_still_pointing_at_a_merged_profile_resolves_to_the_survivor(
    store: FakeProfileStore,
) -> None:
    # Given a merge stored by the previous version: a-0 still points at the merged p-0
    store.seed("p-1", anon("a-1"), created_at=OLD, mergedFrom=["p-0"])
    store.seed("p-0", anon("a-0"), created_at=NEWER, mergedInto="p-1")
    store.index[anon("a-0")] = "p-0"

    resolution = run(track(anonymousId="a-0"), store)

    assert resolution.profile_id == "p-1"


# -- the pieces --------------------------------------------------------------------------------------


def _profile(profile_id: str = "p-1", **fields: Any) -> Profile:
    return Profile(profileId=profile_id, createdAt=fields.pop("createdAt", OLD), updatedAt=OLD, **fields)


def test_applying_an_older_change_keeps_newer_traits_and_times() -> None:
    profile = _profile(
        traits={"plan": "pro"}, traitTimes={"plan": LATER}, lastEvents={"Viewed": LATER}, latestEventAt=LATER
    )

    apply_change(
        profile, EventChange(at=AT, traits={"plan": "free", "city": "X"}, track_event="Viewed", call={})
    )

    assert (profile.traits, profile.traitTimes) == ({"plan": "pro", "city": "X"}, {"plan": LATER, "city": AT})
    assert (profile.lastEvents, profile.latestEventAt) == ({"Viewed": LATER}, LATER)


def test_applying_a_change_made_at_the_same_time_takes_its_values() -> None:
    profile = _profile(traits={"plan": "pro"}, traitTimes={"plan": AT})

    apply_change(profile, EventChange(at=AT, traits={"plan": "free"}, track_event=None, call={}))

    assert profile.traits == {"plan": "free"}


def test_merging_keeps_a_trait_whose_time_is_unknown_only_where_the_survivor_lacks_it() -> None:
    survivor = _profile("p-1", traits={"plan": "pro"}, traitTimes={"plan": OLD})
    loser = _profile("p-2", traits={"plan": "free", "city": "X"})  # stored before traits had times

    merge_into(survivor, loser)

    assert survivor.traits == {"plan": "pro", "city": "X"}
    assert (loser.mergedInto, survivor.mergedFrom) == ("p-1", ["p-2"])


def test_fits_counts_each_identifier_once_against_its_types_limit() -> None:
    rules = IdentityRules(limits={"email": 2})

    assert fits(rules, [email("a@x.io")], [email("a@x.io"), email("b@x.io"), anon("a-1")])
    assert not fits(rules, [email("a@x.io"), email("b@x.io")], [email("c@x.io")])
    assert not fits(rules, [user("u-1")], [user("u-2")])


def test_a_type_already_past_a_lowered_limit_may_stay_so_but_not_grow() -> None:
    rules = IdentityRules(limits={"email": 1})
    over = [email("a@x.io"), email("b@x.io")]

    assert fits(rules, over, [anon("a-1")])
    assert fits(rules, over, [email("a@x.io")])
    assert not fits(rules, over, [email("c@x.io")])


def test_the_oldest_profile_then_the_smaller_id_comes_first() -> None:
    profiles = [
        _profile("p-b", createdAt=OLD),
        _profile("p-c", createdAt=NEWER),
        _profile("p-a", createdAt=OLD),
    ]

    assert [p.profileId for p in sorted(profiles, key=age)] == ["p-a", "p-b", "p-c"]


# -- invariants over event streams -----------------------------------------------------------------

LOYALTY = CustomIdentifier(type="loyalty_id", trait="loyaltyId", external_id_type="loyalty")
STREAM_RULES = [
    IdentityRules(custom=[LOYALTY]),
    IdentityRules(
        limits={"anonymous_id": 2, "email": 2, "device_token": 1}, default_limit=2, custom=[LOYALTY]
    ),
]


def _random_call(rng: random.Random, message_id: str) -> dict[str, Any]:
    call_type = rng.choice(["track", "track", "identify", "group", "alias"])
    call: dict[str, Any] = {"type": call_type, "messageId": message_id}
    if call_type == "track":
        call["event"] = rng.choice(["Product Added", "Order Completed"])
    if rng.random() < 0.4 or call_type == "alias":
        call["userId"] = rng.choice(["u-1", "u-2", "u-3", "null"])
    if rng.random() < 0.8 or "userId" not in call:
        call["anonymousId"] = rng.choice(["a-1", "a-2", "a-3", "a-4", "anonymous"])
    if call_type == "alias":
        call["previousId"] = rng.choice(["a-1", "a-2", "a-3", "a-4"])
    traits: dict[str, Any] = {}
    if rng.random() < 0.3:
        traits["email"] = rng.choice(["x@example.com", "Y@example.com ", "z@example.com", "not-an-email"])
    if rng.random() < 0.15:
        traits["phone"] = rng.choice(["+1 415-555-2671", "(415) 555-2671", "12"])
    if rng.random() < 0.1:
        traits["loyaltyId"] = rng.choice(["L-1", "L-2"])
    if rng.random() < 0.3:
        traits["plan"] = rng.choice(["free", "pro"])
    context: dict[str, Any] = {}
    # The user's traits: in an identify's traits, else in context.traits (a group's traits are its own)
    if call_type == "identify":
        call["traits"] = traits
    elif traits:
        context["traits"] = traits
    if call_type == "group":
        call["groupId"] = "acme"
        call["traits"] = {"email": "billing@acme.com"}
    if rng.random() < 0.2:
        context["device"] = {
            "token": rng.choice(["tok-1", "tok-2", "tok-3"]),
            "id": rng.choice(["dev-1", "00000000-0000-0000-0000-000000000000"]),
        }
    if rng.random() < 0.05:
        context["externalIds"] = [
            {"type": "loyalty", "id": rng.choice(["L-1", "L-3"]), "collection": "users"}
        ]
    call["context"] = context
    return call


def _assert_consistent(store: FakeProfileStore, rules: IdentityRules, events: int) -> None:
    live = {p.profileId: p for p in store.live()}
    for profile in live.values():
        assert len(profile.values_of("user_id")) <= 1, f"two users on {profile.profileId}"
        assert fits(rules, profile.identifiers), f"{profile.profileId} is past a limit"
        assert profile.identifiers, f"{profile.profileId} cannot be found by any identifier"
        for identifier in profile.identifiers:
            assert store.index.get(identifier) == profile.profileId, f"{identifier} is astray"
    for identifier, owner in store.index.items():
        assert owner in live and identifier in live[owner].identifiers, f"{identifier} points at {owner}"
        assert not rules.is_blocked(identifier.value)
    for profile in store.docs.values():
        if profile.mergedInto:
            survivor = store.profile(profile.profileId)
            assert survivor is not None and profile.profileId in survivor.mergedFrom
    assert len(store.timeline) == events, "an event was lost or recorded twice"
    assert email("billing@acme.com") not in store.index  # a group's email is never the user's


def _stream(
    store: FakeProfileStore,
    rules: IdentityRules,
    calls: list[tuple[dict[str, Any], datetime, dict[str, Any] | None]],
    new_id: Callable[[], str],
) -> None:
    """Resolve each call (some racing another, resolved just before the first write), checking the
    invariants after each."""
    resolved = 0

    def resolve_and_count(call: dict[str, Any], at: datetime) -> None:
        nonlocal resolved
        resolution = resolve(call, store, rules, at, new_id)
        if resolution.profile_id is not None:
            resolved += 1
            assert store.docs[resolution.profile_id].mergedInto is None
            assert not resolution.suppressed

    def racer(call: dict[str, Any], at: datetime) -> Callable[[FakeProfileStore], None]:
        return lambda _: resolve_and_count(call, at)

    for call, at, racing in calls:
        if racing is not None:
            store.interfere_once(racer(racing, at))
        resolve_and_count(call, at)
        _assert_consistent(store, rules, resolved)


@pytest.mark.parametrize("seed", range(12))
def test_random_event_streams_keep_profiles_consistent(seed: int) -> None:
    # Every live profile has at most one user id and keeps its limits; every identifier points at the
    # live profile that lists it; merged ids resolve to their survivor; no event is lost -- whatever
    # mix of calls arrives, in whatever order, and also when resolutions race.
    rng = random.Random(seed)
    rules = STREAM_RULES[seed % 2]
    calls = []
    for step in range(60):
        late = rng.randrange(1, 90) if rng.random() < 0.25 else 0  # one event in four out of order
        at = EVENT_TIME + timedelta(minutes=step - late)
        racing = _random_call(rng, f"r-{step}") if rng.random() < 0.15 else None
        calls.append((_random_call(rng, f"m-{step}"), at, racing))

    _stream(FakeProfileStore(), rules, calls, ids(f"p{seed}"))


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    seeds=st.lists(
        st.tuples(st.integers(0, 2**32), st.integers(0, 119), st.booleans()), min_size=1, max_size=25
    ),
    strict_limits=st.booleans(),
)
def test_any_event_stream_keeps_profiles_consistent(
    seeds: list[tuple[int, int, bool]], strict_limits: bool
) -> None:
    # The same invariants, over streams hypothesis searches (and shrinks when one breaks).
    rules = STREAM_RULES[strict_limits]
    calls = [
        (
            _random_call(random.Random(seed), f"m-{n}"),
            EVENT_TIME + timedelta(minutes=minute),
            _random_call(random.Random(~seed), f"r-{n}") if races else None,
        )
        for n, (seed, minute, races) in enumerate(seeds)
    ]

    _stream(FakeProfileStore(), rules, calls, ids("p"))
