"""Identity resolution (shared/identity/resolver.py) against the real profile store on moto DynamoDB.

The table is the topology's `profiles` table; every property example gets a fresh one (one moto for the
module: starting moto per example is slow). Invariants are checked on the table itself (a consistent
scan), not on what the resolver returned.
"""

from __future__ import annotations

import itertools
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st
from moto import mock_aws

from infra.local.engine import create_table
from infra.topology import TOPOLOGY
from shared import clock
from shared.identity.bounds import PROFILE_MAX_BYTES
from shared.identity.resolver import Resolution, ResolutionError, resolve
from shared.identity.rules import IdentityRules
from shared.models.profile import Identifier, Profile
from shared.store.profiles import (
    DynamoProfileStore,
    ProfileAdmin,
    identifier_max_bytes,
    profile_from_item,
    profile_key,
    suppression_key,
)
from tests.identifiers import anon, email, user

REGION = "us-east-1"
RULES = IdentityRules()
EVENT_BASE = datetime(2024, 6, 1, 9, 0, 0, tzinfo=UTC)
CLOCK_BASE = datetime(2024, 7, 1, 0, 0, 0, tzinfo=UTC)
PROPERTY_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_SESSION_TOKEN", "testing")
        env.delenv("AWS_PROFILE", raising=False)
        with mock_aws():
            yield boto3.client("dynamodb", region_name=REGION)


@pytest.fixture(scope="module", autouse=True)
def advancing_clock() -> Iterator[None]:
    # Every reading is a millisecond after the previous one: profiles created one after the other have
    # distinct createdAt, so the survivor of a merge (the oldest) is the one created first.
    ticks = itertools.count()  # next() on a count is atomic: safe across the concurrency test's threads
    clock.install(lambda: CLOCK_BASE + timedelta(milliseconds=next(ticks)))
    yield
    clock.reset()


def new_table(dynamodb: Any) -> str:
    return create_table(dynamodb, TOPOLOGY.table("profiles"), f"profiles-{uuid.uuid4().hex}")


@pytest.fixture
def store(dynamodb: Any) -> Iterator[DynamoProfileStore]:
    name = new_table(dynamodb)
    yield DynamoProfileStore(name, dynamodb)
    dynamodb.delete_table(TableName=name)


def at(seconds: int) -> datetime:
    return EVENT_BASE + timedelta(seconds=seconds)


def segment_call(identifiers: Sequence[Identifier], n: int, traits: dict[str, Any] | None = None) -> dict:
    """A Segment call naming `identifiers` (≤ 1 user_id, ≤ 2 anonymous ids, ≤ 1 email), sent at `at(n)`.
    Every call sets the trait `plan` to `plan-<n>`, so the newest event's value is known."""
    users = [i.value for i in identifiers if i.type == "user_id"]
    anons = [i.value for i in identifiers if i.type == "anonymous_id"]
    emails = [i.value for i in identifiers if i.type == "email"]
    assert len(users) <= 1 and len(anons) <= 2 and len(emails) <= 1, identifiers
    kind = "alias" if len(anons) == 2 else ("identify" if n % 2 == 0 else "track")
    call: dict[str, Any] = {"type": kind, "messageId": f"m-{n}", "timestamp": clock.iso(at(n))}
    if users:
        call["userId"] = users[0]
    if anons:
        call["anonymousId"] = anons[0]
    if len(anons) == 2:
        call["previousId"] = anons[1]
    stated = {"plan": f"plan-{n}", **(traits or {})}
    if emails:
        stated["email"] = emails[0]
    if kind == "identify":
        call["traits"] = stated
    else:
        call["context"] = {"traits": stated}
    if kind == "track":
        call["event"] = "Product Viewed"
    return call


@dataclass
class TableState:
    profiles: dict[str, Profile]
    index: dict[Identifier, str]  # identifier items: identifier → profileId
    other: list[dict[str, Any]] = field(default_factory=list)

    @property
    def live(self) -> dict[str, Profile]:
        return {p.profileId: p for p in self.profiles.values() if not p.mergedInto}

    @property
    def timeline_entries(self) -> int:
        return sum(1 for item in self.other if item["sk"]["S"].startswith("event#"))


def read_table(dynamodb: Any, table: str) -> TableState:
    state = TableState(profiles={}, index={})
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page["Items"]:
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            if sk == "profile":
                profile = profile_from_item(item)
                state.profiles[profile.profileId] = profile
            elif sk == "identifier":
                _, kind, value = pk.split("#", 2)
                state.index[Identifier(type=kind, value=value)] = item["profileId"]["S"]
            else:
                state.other.append(item)
        if "LastEvaluatedKey" not in page:
            return state
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def assert_consistent(state: TableState, rules: IdentityRules = RULES) -> None:
    """The invariants that hold whatever the events and their order."""
    live = state.live
    merges = {
        (item["pk"]["S"].removeprefix("profile#"), item["sk"]["S"].rsplit("#", 1)[1])
        for item in state.other
        if item["sk"]["S"].startswith("merge#")
    }
    holders: dict[Identifier, list[str]] = {}
    for profile in live.values():
        assert len(profile.values_of("user_id")) <= 1, f"{profile.profileId} holds two user_ids"
        for kind in {i.type for i in profile.identifiers}:
            assert len(profile.values_of(kind)) <= rules.limit(kind), f"{profile.profileId}: {kind} limit"
        assert len(set(profile.identifiers)) == len(profile.identifiers), f"{profile.profileId} repeats one"
        for identifier in profile.identifiers:
            holders.setdefault(identifier, []).append(profile.profileId)
    shared = {i: owners for i, owners in holders.items() if len(owners) > 1}
    assert not shared, f"identifiers on two live profiles: {shared}"
    for identifier, owner in state.index.items():
        assert owner in live, f"{identifier} points at {owner}, which is not a live profile"
        assert identifier in live[owner].identifiers, f"{identifier} points at {owner}, which lacks it"
    for identifier, owners in holders.items():
        assert state.index.get(identifier) == owners[0], f"{identifier} on {owners[0]} is not indexed to it"
    for profile in state.profiles.values():
        if profile.mergedInto:
            assert profile.mergedInto in state.profiles, f"{profile.profileId}: dangling mergedInto"
            assert profile.profileId in state.profiles[profile.mergedInto].mergedFrom
            survivor, hops = profile, 0
            while survivor.mergedInto and hops < len(state.profiles):
                survivor, hops = state.profiles[survivor.mergedInto], hops + 1
            assert not survivor.mergedInto, f"{profile.profileId}: mergedInto never reaches a live profile"
            into = state.profiles[profile.mergedInto]
            assert (into.createdAt, into.profileId) < (profile.createdAt, profile.profileId), "not the oldest"
            assert (profile.mergedInto, profile.profileId) in merges, f"{profile.profileId}: merge not logged"


def components(events: Sequence[Sequence[Identifier]]) -> set[frozenset[Identifier]]:
    """Connected components of the identifier graph: two identifiers are linked when an event names both."""
    parent: dict[Identifier, Identifier] = {}

    def root(i: Identifier) -> Identifier:
        while parent.setdefault(i, i) != i:
            i = parent[i]
        return i

    for named in events:
        for other in named[1:]:
            parent[root(other)] = root(named[0])
        root(named[0])
    groups: dict[Identifier, set[Identifier]] = {}
    for identifier in parent:
        groups.setdefault(root(identifier), set()).add(identifier)
    return {frozenset(g) for g in groups.values()}


def resolved(call: dict[str, Any], store: DynamoProfileStore, rules: IdentityRules, when: datetime) -> str:
    """The id of the profile the call resolves to (it must resolve to one)."""
    profile_id = resolve(call, store, rules, when).profile_id
    assert profile_id is not None
    return profile_id


class DynamoRequests:
    """Counts the DynamoDB requests a client sends (a botocore event hook)."""

    def __init__(self, client: Any):
        self.operations: list[str] = []
        client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)

    def during(self, action: Callable[[], Any]) -> tuple[Any, list[str]]:
        self.operations.clear()
        result = action()
        return result, list(self.operations)


# -- 1. properties: any order of any events ------------------------------------------------------


@st.composite
def named_identifiers(draw: st.DrawFn, pool: Sequence[Identifier]) -> list[Identifier]:
    """1–3 identifiers of `pool` that one Segment call can name (≤ 1 user_id, ≤ 2 anonymous ids,
    ≤ 1 email)."""
    users = [i for i in pool if i.type == "user_id"]
    anons = [i for i in pool if i.type == "anonymous_id"]
    emails = [i for i in pool if i.type == "email"]
    chosen: list[Identifier] = []
    with_user, with_email = draw(st.booleans()), draw(st.booleans())
    if users and with_user:
        chosen.append(draw(st.sampled_from(users)))
    if anons:
        chosen += draw(st.lists(st.sampled_from(anons), max_size=2, unique=True))
    if emails and with_email:
        chosen.append(draw(st.sampled_from(emails)))
    chosen = chosen[:3]
    return chosen or [draw(st.sampled_from(list(pool)))]


@st.composite
def customers(draw: st.DrawFn, every_one_a_user: bool) -> list[list[Identifier]]:
    """Each customer's own identifiers, disjoint: ≤ 1 user_id, ≤ 3 anonymous ids, ≤ 2 emails (within the
    default limits even all on one profile)."""
    owned: list[list[Identifier]] = []
    for c in range(draw(st.integers(1, 3))):
        mine = [user(f"u-{c}")] if every_one_a_user or draw(st.booleans()) else []
        mine += [anon(f"a-{c}-{k}") for k in range(draw(st.integers(0, 3)))]
        mine += [email(f"c{c}.{k}@example.com") for k in range(draw(st.integers(0, 2)))]
        owned.append(mine or [anon(f"a-{c}-0")])
    return owned


@st.composite
def non_conflicting(draw: st.DrawFn) -> tuple[list[list[Identifier]], list[int]]:
    """Events each naming identifiers of one customer, and the order they arrive in."""
    owned = draw(customers(every_one_a_user=False))
    events = draw(
        st.lists(
            st.sampled_from(owned).flatmap(lambda mine: named_identifiers(mine)), min_size=3, max_size=12
        )
    )
    return events, draw(st.permutations(range(len(events))))


@st.composite
def conflicting(draw: st.DrawFn) -> tuple[list[list[Identifier]], list[int]]:
    """Events naming any identifiers: of customers who each have their own user_id, and of shared devices
    (anonymous ids used by several users)."""
    owned = draw(customers(every_one_a_user=True))
    devices = [anon(f"shared-{k}") for k in range(draw(st.integers(1, 2)))]
    pool = [i for mine in owned for i in mine] + devices
    events = draw(st.lists(named_identifiers(pool), min_size=3, max_size=14))
    return events, draw(st.permutations(range(len(events))))


def resolve_all(
    store: DynamoProfileStore, events: Sequence[Sequence[Identifier]], order: Sequence[int]
) -> list[Resolution]:
    resolutions = [resolve(segment_call(events[n], n), store, RULES, at(n)) for n in order]
    merges = sum(len(r.merged) for r in resolutions)
    target(merges)  # steer generation towards examples that merge
    # --hypothesis-show-statistics: how often the examples merge, refuse, or arrive out of order
    event(f"merges: {min(merges, 3)}")
    event(f"refused: {any('not' in w for r in resolutions for w in r.warnings)}")
    event(f"out of order: {any(a > b for a, b in itertools.pairwise(order))}")
    return resolutions


@PROPERTY_SETTINGS
@given(scenario=non_conflicting())
def test_in_any_order_live_profiles_are_exactly_the_connected_identifiers(
    dynamodb: Any, scenario: tuple[list[list[Identifier]], list[int]]
) -> None:
    events, order = scenario
    table = new_table(dynamodb)
    store = DynamoProfileStore(table, dynamodb)
    try:
        resolutions = resolve_all(store, events, order)

        state = read_table(dynamodb, table)
        assert all(r.profile_id for r in resolutions)
        assert_consistent(state)
        live = state.live
        assert {frozenset(p.identifiers) for p in live.values()} == components(events)
        sent = sorted({i for named in events for i in named}, key=lambda i: (i.type, i.value))
        owners = store.lookup(sent).owners
        for identifier in sent:
            holder = next(p for p in live.values() if identifier in p.identifiers)
            assert owners[identifier] == holder.profileId
        for profile in live.values():
            mine = [n for n, named in enumerate(events) if set(named) <= set(profile.identifiers)]
            # Per trait and per event name the newest event wins, whatever the arrival order.
            assert profile.traits["plan"] == f"plan-{max(mine)}"
            assert profile.latestEventAt == clock.iso(at(max(mine)))
            tracks = [n for n in mine if segment_call(events[n], n)["type"] == "track"]
            assert profile.lastEvents == ({"Product Viewed": clock.iso(at(max(tracks)))} if tracks else {})
            # Every event is in the timeline of its customer (the profile and those merged into it), once.
            timeline = store.timeline([profile.profileId, *profile.mergedFrom], limit=100)
            assert sorted(e.messageId for e in timeline) == sorted(f"m-{n}" for n in mine)
    finally:
        dynamodb.delete_table(TableName=table)


@PROPERTY_SETTINGS
@given(scenario=conflicting())
def test_in_any_order_two_users_never_share_a_profile_and_the_index_stays_consistent(
    dynamodb: Any, scenario: tuple[list[list[Identifier]], list[int]]
) -> None:
    events, order = scenario
    table = new_table(dynamodb)
    store = DynamoProfileStore(table, dynamodb)
    try:
        resolutions = resolve_all(store, events, order)

        state = read_table(dynamodb, table)
        assert all(r.profile_id for r in resolutions)
        assert_consistent(state)
        assert state.timeline_entries == len(events)
        for n, resolution in zip(order, resolutions, strict=True):
            # The profile an event went to still resolves to a live profile, whose timeline has the event.
            assert resolution.profile_id is not None
            customer = store.profile(resolution.profile_id)
            assert customer is not None
            timeline = store.timeline([customer.profileId, *customer.mergedFrom], limit=100)
            assert f"m-{n}" in {e.messageId for e in timeline}
        sent = {i for named in events for i in named}
        refused = any("not attached" in w for r in resolutions for w in r.warnings)
        assert refused or sent <= set(state.index), f"lost: {sent - set(state.index)}"
    finally:
        dynamodb.delete_table(TableName=table)


# -- 2. concurrency ------------------------------------------------------------------------------


class OneRequestAtATime:
    """The DynamoDB client, one request at a time across threads.

    DynamoDB applies each request atomically. moto does not under threads: `transact_write_items` snapshots
    the whole table and, when a transaction is cancelled, restores that snapshot, undoing what other threads
    wrote meanwhile. Serialising requests restores per-request atomicity; the races that matter here (between
    a lookup, the profile reads and the commit of one resolution) still interleave freely."""

    def __init__(self, client: Any, lock: threading.Lock):
        self._client, self._lock = client, lock

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return locked


# Combinations that make threads race to create each customer and then to merge what they created.
RACING_COMBINATIONS = ("a", "e", "ae", "ua", "ue", "uae")


def racing_events(customer_count: int, stagger: int) -> list[list[tuple[int, list[Identifier]]]]:
    """Per thread, (event number, identifiers) for every customer, each thread with its own combination of
    the customer's identifiers. Thread t starts with customer `t * stagger`: with 0 every thread races on
    the same customer at once (separate profiles for `a` and `e`, then merges), otherwise fewer threads
    meet on each customer, in other interleavings."""
    letters = {
        "u": lambda c: user(f"u-{c}"),
        "a": lambda c: anon(f"a-{c}"),
        "e": lambda c: email(f"c{c}@x.io"),
    }
    number = itertools.count()
    per_thread: list[list[tuple[int, list[Identifier]]]] = []
    for t, combination in enumerate(RACING_COMBINATIONS):
        order = [(c + t * stagger) % customer_count for c in range(customer_count)]
        per_thread.append([(next(number), [letters[x](c) for x in combination]) for c in order])
    return per_thread


@pytest.fixture
def fine_grained_thread_switching() -> Iterator[None]:
    # Threads switch far more often than every 5 ms: more interleavings between one resolution's requests.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("fine_grained_thread_switching")
@pytest.mark.parametrize("round_number", range(8))
def test_threads_racing_on_the_same_customers_end_with_one_profile_per_customer(
    dynamodb: Any, round_number: int
) -> None:
    customer_count = 3
    table = new_table(dynamodb)
    lock = threading.Lock()
    per_thread = racing_events(customer_count, stagger=round_number % customer_count)
    start = threading.Barrier(len(per_thread))
    failures: list[BaseException] = []
    redelivered: list[BaseException] = []

    def run(events: list[tuple[int, list[Identifier]]]) -> None:
        store = DynamoProfileStore(table, OneRequestAtATime(dynamodb, lock))
        start.wait()
        try:
            for n, named in events:
                for _ in range(5):  # the bus redelivers an event whose resolution failed
                    try:
                        resolve(segment_call(named, n), store, RULES, at(n))
                        break
                    except ResolutionError as error:
                        redelivered.append(error)
                else:
                    raise AssertionError(f"event {n} never resolved: {redelivered[-1]!r}")
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(events,)) for events in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not failures, failures
    state = read_table(dynamodb, table)
    assert_consistent(state)
    all_events = [(n, named) for events in per_thread for n, named in events]
    assert {i for _, named in all_events for i in named} == set(state.index), "an identifier was lost"
    assert state.timeline_entries == len(all_events), "an event is missing from the timelines, or twice"
    expected = {
        frozenset({user(f"u-{c}"), anon(f"a-{c}"), email(f"c{c}@x.io")}) for c in range(customer_count)
    }
    assert {frozenset(p.identifiers) for p in state.live.values()} == expected
    for profile in state.live.values():
        newest = max(n for n, named in all_events if set(named) <= set(profile.identifiers))
        assert profile.traits["plan"] == f"plan-{newest}"
    dynamodb.delete_table(TableName=table)


# -- 3. focused behaviours -----------------------------------------------------------------------


@pytest.fixture
def counted(dynamodb: Any) -> Iterator[tuple[DynamoProfileStore, DynamoRequests]]:
    client = boto3.client("dynamodb", region_name=REGION)
    name = new_table(dynamodb)
    yield DynamoProfileStore(name, client), DynamoRequests(client)
    dynamodb.delete_table(TableName=name)


def test_a_known_customer_without_a_new_identifier_costs_one_read_and_one_write(
    counted: tuple[DynamoProfileStore, DynamoRequests],
) -> None:
    store, requests = counted
    known = resolve(segment_call([user("u-1"), anon("a-1")], 0), store, RULES, at(0))

    resolution, operations = requests.during(
        lambda: resolve(segment_call([anon("a-1")], 1), store, RULES, at(1))
    )

    assert resolution.profile_id == known.profile_id
    assert operations == ["BatchGetItem", "TransactWriteItems"]


def test_a_new_identifier_on_a_known_customer_takes_the_fast_path(
    counted: tuple[DynamoProfileStore, DynamoRequests],
) -> None:
    store, requests = counted
    known = resolve(segment_call([anon("a-1")], 0), store, RULES, at(0))

    resolution, operations = requests.during(
        lambda: resolve(segment_call([anon("a-1"), email("ada@example.com")], 1), store, RULES, at(1))
    )

    assert resolution.profile_id == known.profile_id
    assert store.lookup([email("ada@example.com")]).owners == {email("ada@example.com"): known.profile_id}
    print(f"new identifier on a known customer: {len(operations)} requests {operations}")
    assert len(operations) <= 2


def test_a_merge_costs_at_most_four_requests(counted: tuple[DynamoProfileStore, DynamoRequests]) -> None:
    store, requests = counted
    first = resolve(segment_call([anon("a-1")], 0), store, RULES, at(0))
    second = resolve(segment_call([email("ada@example.com")], 1), store, RULES, at(1))

    resolution, operations = requests.during(
        lambda: resolve(segment_call([anon("a-1"), email("ada@example.com")], 2), store, RULES, at(2))
    )

    assert resolution.profile_id == first.profile_id
    assert resolution.merged == [second.profile_id]
    print(f"merge: {len(operations)} requests {operations}")
    assert len(operations) <= 4


def test_an_out_of_order_event_keeps_the_newest_value_of_each_trait(store: DynamoProfileStore) -> None:
    newer = segment_call([user("u-1")], 10, traits={"name": "Ada", "plan": "pro"})
    older = segment_call([user("u-1")], 2, traits={"plan": "free", "city": "Paris"})
    profile_id = resolved(newer, store, RULES, at(10))

    resolve(older, store, RULES, at(2))

    profile = store.profile(profile_id)
    assert profile is not None
    assert profile.traits == {"name": "Ada", "plan": "pro", "city": "Paris"}
    assert profile.traitTimes["plan"] == clock.iso(at(10))
    assert profile.traitTimes["city"] == clock.iso(at(2))
    assert profile.latestEventAt == clock.iso(at(10))
    timeline = store.timeline([profile_id], limit=10)
    assert [e.messageId for e in timeline] == ["m-10", "m-2"]


def test_a_merge_logs_what_the_merged_profile_was(dynamodb: Any, store: DynamoProfileStore) -> None:
    older = resolved(segment_call([anon("a-1")], 0, traits={"plan": "free"}), store, RULES, at(0))
    newer = resolved(segment_call([email("ada@example.com")], 1, {"name": "Ada"}), store, RULES, at(1))
    loser = store.profile(newer)

    resolution = resolve(segment_call([anon("a-1"), email("ada@example.com")], 2), store, RULES, at(2))

    assert resolution.profile_id == older
    (record,) = store.merges(older)
    assert record.survivor == older
    assert record.merged == loser
    assert record.merged.mergedInto is None
    assert record.merged.identifiers == [email("ada@example.com")]
    assert record.merged.traits == {"plan": "plan-1", "name": "Ada", "email": "ada@example.com"}
    state = read_table(dynamodb, store._table)
    assert state.profiles[newer].mergedInto == older
    assert state.live[older].mergedFrom == [newer]
    assert state.index[email("ada@example.com")] == older


def test_an_event_naming_a_suppressed_identifier_lands_without_it(
    dynamodb: Any, store: DynamoProfileStore
) -> None:
    erased = email("gone@example.com")
    dynamodb.put_item(TableName=store._table, Item=suppression_key(erased))
    call = segment_call([user("u-9"), anon("a-9"), email("  Gone@Example.COM ")], 0)

    resolution = resolve(call, store, RULES, at(0))

    assert (resolution.suppressed, resolution.suppressed_identifiers) == (False, 1)
    state = read_table(dynamodb, store._table)
    assert state.index == {user("u-9"): resolution.profile_id, anon("a-9"): resolution.profile_id}
    assert state.live[str(resolution.profile_id)].identifiers == [user("u-9"), anon("a-9")]


def test_a_shared_devices_event_after_an_erasure_lands_on_the_other_users_profile(
    dynamodb: Any, store: DynamoProfileStore
) -> None:
    # Given Alice and Bob on one iPad (its device id stays Alice's: two users never merge), Alice erased
    ipad = {"context": {"device": {"id": "ipad-1"}}}
    alice = resolve({**segment_call([user("u-alice")], 0), **ipad}, store, RULES, at(0))
    bob = resolve({**segment_call([user("u-bob")], 1), **ipad}, store, RULES, at(1))
    ProfileAdmin(store._table, dynamodb).erase(store.profiles([str(alice.profile_id)])[str(alice.profile_id)])

    # When Bob buys on the iPad
    order = {**segment_call([user("u-bob")], 3), **ipad, "type": "track", "event": "Order Completed"}
    resolution = resolve(order, store, RULES, at(3))

    # Then it is Bob's purchase, and the iPad is attached to nobody
    assert resolution.profile_id == bob.profile_id
    state = read_table(dynamodb, store._table)
    assert state.live[str(bob.profile_id)].lastEvents["Order Completed"] == clock.iso(at(3))
    assert state.index == {user("u-bob"): bob.profile_id}


def test_an_event_naming_only_suppressed_identifiers_is_dropped_and_writes_nothing(
    dynamodb: Any, store: DynamoProfileStore
) -> None:
    erased = [email("gone@example.com"), anon("a-9")]
    for identifier in erased:
        dynamodb.put_item(TableName=store._table, Item=suppression_key(identifier))

    resolution = resolve(segment_call([anon("a-9"), email("  Gone@Example.COM ")], 0), store, RULES, at(0))

    assert (resolution.profile_id, resolution.suppressed) == (None, True)
    state = read_table(dynamodb, store._table)
    assert state.profiles == {} and state.index == {}
    assert len(state.other) == 2


def test_blocked_values_never_create_identifier_items(dynamodb: Any, store: DynamoProfileStore) -> None:
    blocked_only = {
        "type": "identify",
        "messageId": "m-0",
        "userId": "undefined",
        "anonymousId": "00000000-0000-0000-0000-000000000000",
        "traits": {"email": "null"},
    }
    with_one_real = {
        "type": "identify",
        "messageId": "m-1",
        "userId": "null",
        "anonymousId": "anonymous",
        "traits": {"email": "ada@example.com"},
    }

    dropped = resolve(blocked_only, store, RULES, at(0))
    kept = resolve(with_one_real, store, RULES, at(1))

    assert dropped.profile_id is None
    assert kept.profile_id is not None
    assert len(kept.warnings) == 2
    state = read_table(dynamodb, store._table)
    assert state.index == {email("ada@example.com"): kept.profile_id}
    assert state.live[kept.profile_id].identifiers == [email("ada@example.com")]


def test_phone_numbers_in_different_formats_resolve_to_one_profile(
    dynamodb: Any, store: DynamoProfileStore
) -> None:
    formats = ["(415) 555-2671", "+1 415-555-2671", "415.555.2671", "+14155552671"]
    calls = [
        {"type": "identify", "messageId": f"m-{n}", "anonymousId": f"a-{n}", "traits": {"phone": phone}}
        for n, phone in enumerate(formats)
    ]

    profile_ids = {resolve(call, store, RULES, at(n)).profile_id for n, call in enumerate(calls)}

    assert len(profile_ids) == 1
    state = read_table(dynamodb, store._table)
    phones = {i: p for i, p in state.index.items() if i.type == "phone"}
    assert phones == {Identifier(type="phone", value="+14155552671"): profile_ids.pop()}
    assert len(state.live) == 1


def test_an_event_bringing_more_identifiers_of_a_type_than_its_limit_attaches_only_what_fits(
    dynamodb: Any, store: DynamoProfileStore
) -> None:
    rules = IdentityRules(limits={"anonymous_id": 1})
    known = resolved(segment_call([user("u-1")], 0), store, rules, at(0))
    alias = segment_call([user("u-1"), anon("a-new"), anon("a-old")], 1)  # anonymousId, previousId

    resolution = resolve(alias, store, rules, at(1))

    assert resolution.profile_id == known
    assert any("anonymous_id not attached" in w for w in resolution.warnings)
    state = read_table(dynamodb, store._table)
    assert_consistent(state, rules)
    assert state.live[known].identifiers == [user("u-1"), anon("a-new")]
    assert anon("a-old") not in state.index


# -- bugs found ----------------------------------------------------------------------------------


@pytest.fixture
def deep_recursion() -> Iterator[None]:
    # moto parses an UpdateExpression recursively, a level a clause: ~100 traits pass Python's default
    # recursion limit inside moto (which then cancels the transaction with the reason RecursionError).
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, 5000))
    yield
    sys.setrecursionlimit(before)


@pytest.mark.usefixtures("deep_recursion")
def test_the_fast_path_stays_within_the_dynamodb_expression_size_limit_for_many_traits(
    counted: tuple[DynamoProfileStore, DynamoRequests],
) -> None:
    store, _ = counted  # a store with its own client: the hook below stays on it
    resolve(segment_call([user("u-1")], 0), store, RULES, at(0))
    expressions: list[str] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        expressions.extend(
            action["Update"][key]
            for action in params["TransactItems"]
            if "Update" in action
            for key in ("UpdateExpression", "ConditionExpression")
        )

    store._db.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", capture)
    some = {f"trait_{k:03d}": k for k in range(50)}
    many = {f"trait_{k:03d}": -k for k in range(120)}  # Segment allows 32 KB a call: this is ~2 KB

    resolve(segment_call([user("u-1")], 1, traits=some), store, RULES, at(1))
    assert expressions, "50 traits take the fast path"
    resolve(segment_call([user("u-1")], 2, traits=many), store, RULES, at(2))

    assert max(len(e.encode()) for e in expressions) <= 4096, "DynamoDB: maximum length of an expression 4 KB"
    [profile] = store.profiles([store.lookup([user("u-1")]).owners[user("u-1")]]).values()
    assert profile.traits == {**profile.traits, **many}


class ClaimsMeanwhile(DynamoProfileStore):
    """The real store, with another event resolved (by another worker) between this resolution's lookup
    and its profile reads, once: the narrowest race of the full path, made deterministic."""

    def __init__(self, table: str, dynamodb: Any, meanwhile: Callable[[], None]):
        super().__init__(table, dynamodb)
        self._meanwhile: Callable[[], None] | None = meanwhile

    def profiles(self, profile_ids: Any) -> dict[str, Profile]:
        if self._meanwhile:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()
        return super().profiles(profile_ids)


def test_an_identifier_claimed_by_a_merged_profile_meanwhile_is_read_again_not_an_error(
    dynamodb: Any, store: DynamoProfileStore
) -> None:
    user_profile = resolved(segment_call([user("u-1")], 0), store, RULES, at(0))
    device_profile = resolved(segment_call([anon("a-1")], 1), store, RULES, at(1))
    other_worker = DynamoProfileStore(store._table, dynamodb)

    def meanwhile_the_device_signs_up_with_an_email() -> None:
        # Fast path on the device's profile: it claims the email before the merge below reads profiles.
        resolve(segment_call([anon("a-1"), email("ada@example.com")], 2), other_worker, RULES, at(2))

    racing = ClaimsMeanwhile(store._table, dynamodb, meanwhile_the_device_signs_up_with_an_email)

    resolution = resolve(
        segment_call([user("u-1"), anon("a-1"), email("ada@example.com")], 3), racing, RULES, at(3)
    )

    assert resolution.profile_id == user_profile
    assert resolution.merged == [device_profile]
    state = read_table(dynamodb, store._table)
    assert_consistent(state)
    assert set(state.live[user_profile].identifiers) == {user("u-1"), anon("a-1"), email("ada@example.com")}


# -- size bound and key limits on DynamoDB (400 KB items, 2,048-byte partition and 1,024-byte sort keys) --


def test_twenty_30_kb_identifies_all_land_and_the_profile_item_stays_storable(
    dynamodb: Any, store: DynamoProfileStore
) -> None:
    resolutions = [
        resolve(segment_call([user("u-big")], n, {f"blob{n}": "x" * 30 * 1024}), store, RULES, at(n))
        for n in range(20)
    ]

    (profile_id,) = {r.profile_id for r in resolutions}
    assert sum(r.dropped.traits for r in resolutions) > 0
    state = read_table(dynamodb, store._table)
    assert state.timeline_entries == 20
    stored = dynamodb.get_item(TableName=store._table, Key=profile_key(str(profile_id)))["Item"]
    assert int(stored["storedBytes"]["N"]) <= PROFILE_MAX_BYTES
    # ... and a small change still lands, on the fast path or the full one
    late = resolve(segment_call([user("u-big")], 30, {"unsubscribed": True}), store, RULES, at(30))
    assert state.live[str(profile_id)].traits["plan"] == "plan-19"
    assert store.profiles([str(profile_id)])[str(profile_id)].traits["unsubscribed"] is True
    assert late.dropped.traits == 0


@pytest.mark.parametrize(("extra", "kept"), [(0, True), (1, False)])
def test_an_identifier_at_the_partition_key_limit_is_kept_and_one_byte_past_it_left_out(
    dynamodb: Any, store: DynamoProfileStore, extra: int, kept: bool
) -> None:
    value = "é" * (identifier_max_bytes("anonymous_id") // 2) + "a" * (
        identifier_max_bytes("anonymous_id") % 2
    )
    value += "a" * extra
    assert len(f"identifier#anonymous_id#{value}".encode()) == 2048 + extra

    resolution = resolve(segment_call([user("u-1"), anon(value)], 0), store, RULES, at(0))

    state = read_table(dynamodb, store._table)
    assert set(state.index) == ({user("u-1"), anon(value)} if kept else {user("u-1")})
    assert state.index[user("u-1")] == resolution.profile_id
    if kept:
        assert (
            resolve(segment_call([anon(value)], 1), store, RULES, at(1)).profile_id == resolution.profile_id
        )


@pytest.mark.parametrize("extra", [0, 1])
def test_a_message_id_at_and_one_byte_past_the_sort_key_limit_is_on_the_timeline(
    dynamodb: Any, store: DynamoProfileStore, extra: int
) -> None:
    call = segment_call([user("u-1")], 0)
    room = 1024 - len(f"event#{clock.iso(at(0))}#".encode())
    call["messageId"] = "😀" * (room // 4) + "m" * (room % 4 + extra)
    assert len(f"event#{clock.iso(at(0))}#{call['messageId']}".encode()) == 1024 + extra

    resolution = resolve(call, store, RULES, at(0))
    resolve(call, store, RULES, at(0))  # the same event again: still one entry

    (entry,) = store.timeline([str(resolution.profile_id)], 10)
    assert entry.messageId == call["messageId"]
