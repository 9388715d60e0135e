"""Identity resolution: find or create the profile an event belongs to, merging when it links two.

The domain decides; the store (a `ProfileStore`, implemented in shared/store/profiles.py) reads and
commits atomically. Every commit is conditional, so two events racing on the same customer make
one of them fail with `ConcurrentChangeError`; resolution then starts again from fresh reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from shared import clock
from shared.identity.identifiers import identifiers_of, user_traits
from shared.models.profile import Identifier, Profile

MAX_ATTEMPTS = 8
# Which identifier decides where an event goes when its identifiers lead to different users.
PRIORITY = ["user_id", "email", "device_token", "anonymous_id"]


class ConcurrentChangeError(Exception):
    """A conditional write lost a race: read again and decide again."""


class ResolutionError(Exception):
    """Resolution kept losing races; the event is retried by its queue or bus."""


class ProfileStore(Protocol):
    def owners(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        """Profile id each known identifier points to."""
        ...

    def profiles(self, profile_ids: Iterable[str]) -> dict[str, Profile]: ...

    def commit(self, changed: list[Profile], claims: dict[Identifier, str | None]) -> None:
        """Write the changed profiles (each conditional on its version) and point each claimed
        identifier at its profile (conditional on it still pointing where it did: None = nowhere)."""
        ...


class Resolution:
    def __init__(self, profile: Profile, merged: list[str]):
        self.profile = profile
        self.merged = merged  # profile ids merged into it by this event


def _live(store: ProfileStore, profile_ids: Iterable[str]) -> tuple[dict[str, Profile], dict[str, str]]:
    """The surviving profiles behind `profile_ids` (merge pointers followed), and for each id asked
    for, the id of the profile it now resolves to."""
    live: dict[str, Profile] = {}
    points_to: dict[str, str] = {}
    pending = set(profile_ids)
    for _ in range(MAX_ATTEMPTS):
        if not pending:
            break
        fetched = store.profiles(pending)
        pending = set()
        for profile in fetched.values():
            if profile.mergedInto:
                points_to[profile.profileId] = profile.mergedInto
                if profile.mergedInto not in live:
                    pending.add(profile.mergedInto)
            else:
                live[profile.profileId] = profile
    canonical = {}
    for profile_id in profile_ids:
        current = profile_id
        while current in points_to:
            current = points_to[current]
        if current in live:
            canonical[profile_id] = current
    return live, canonical


def _apply(profile: Profile, call: dict[str, Any], at: datetime) -> None:
    """What an event tells about its profile: traits, and when it last did this event."""
    when = clock.iso(at)
    traits = {**((call.get("context") or {}).get("traits") or {}), **user_traits(call)}
    profile.traits.update(traits)
    if call.get("type") == "track" and call.get("event"):
        previous = profile.lastEvents.get(call["event"])
        profile.lastEvents[call["event"]] = max(previous, when) if previous else when
    profile.updatedAt = clock.iso(clock.now())


def _merge(survivor: Profile, losers: list[Profile]) -> None:
    for loser in sorted(losers, key=lambda p: p.updatedAt):
        for identifier in loser.identifiers:
            if identifier not in survivor.identifiers:
                survivor.identifiers.append(identifier)
        # The most recently updated profile's traits win.
        if loser.updatedAt > survivor.updatedAt:
            survivor.traits = {**survivor.traits, **loser.traits}
        else:
            survivor.traits = {**loser.traits, **survivor.traits}
        for name, when in loser.lastEvents.items():
            survivor.lastEvents[name] = max(when, survivor.lastEvents.get(name, when))
        survivor.mergedFrom = list(dict.fromkeys([*survivor.mergedFrom, loser.profileId, *loser.mergedFrom]))
        loser.mergedInto = survivor.profileId


def resolve(
    call: dict[str, Any],
    store: ProfileStore,
    event_time: datetime,
    new_profile_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Resolution:
    identifiers = identifiers_of(call)
    if not identifiers:
        raise ValueError("the event names no identifier")
    for _ in range(MAX_ATTEMPTS):
        raw_owners = store.owners(identifiers)
        live, canonical = _live(store, set(raw_owners.values()))
        owners = {i: canonical[p] for i, p in raw_owners.items() if p in canonical}
        try:
            return _resolve_once(call, store, event_time, identifiers, owners, live, new_profile_id)
        except ConcurrentChangeError:
            continue
    raise ResolutionError(f"gave up after {MAX_ATTEMPTS} conflicting attempts")


def _resolve_once(
    call: dict[str, Any],
    store: ProfileStore,
    event_time: datetime,
    identifiers: list[Identifier],
    owners: dict[Identifier, str],
    live: dict[str, Profile],
    new_profile_id: Callable[[], str],
) -> Resolution:
    """One attempt. `owners` maps each known identifier of the event to its live profile id.
    Identifiers of merged profiles keep pointing at the merged id: lookups follow `mergedInto`,
    so a merge writes only the profiles and never has to repoint a customer's whole history."""
    now = clock.iso(clock.now())
    merged: list[str] = []
    event_user = next((i.value for i in identifiers if i.type == "user_id"), None)
    user_ids = {p.user_id for p in live.values() if p.user_id}
    if event_user:
        user_ids.add(event_user)

    if not live:
        target = Profile(profileId=new_profile_id(), createdAt=now, updatedAt=now, version=0)
        changed = [target]
    elif len(user_ids) > 1:
        # Never two user ids on one profile. An event with a user id goes to that user's profile,
        # else to one with no user id yet, else (a new user on a shared device) to a new profile.
        # An event without one goes to the profile of its highest-priority identifier.
        own = [p for p in live.values() if event_user and p.user_id == event_user]
        free = sorted((p for p in live.values() if not p.user_id), key=_age)
        if own or (event_user and free):
            target = (own or free)[0]
        elif event_user:
            target = Profile(profileId=new_profile_id(), createdAt=now, updatedAt=now, version=0)
        else:
            first = min(owners, key=lambda i: PRIORITY.index(i.type))
            target = live[owners[first]]
        changed = [target]
    else:
        target, *losers = sorted(live.values(), key=_age)
        _merge(target, losers)
        merged = [p.profileId for p in losers]
        changed = [target, *losers]

    claims: dict[Identifier, str | None] = {}
    for identifier in identifiers:
        owner = owners.get(identifier)
        if owner is not None and owner != target.profileId and owner not in merged:
            continue  # it belongs to another user's profile
        if identifier.type == "user_id" and target.user_id not in (None, identifier.value):
            continue
        if identifier not in target.identifiers:
            target.identifiers.append(identifier)
        if owner is None:
            claims[identifier] = None
    _apply(target, call, event_time)
    store.commit(changed, claims)
    return Resolution(target, merged)


def _age(profile: Profile) -> tuple[str, str]:
    # The survivor of a merge is the oldest profile; ties go to the smaller id. Deterministic.
    return (profile.createdAt, profile.profileId)
