"""Identity resolution: find or create the profile an event belongs to, merging profiles it links.

The domain decides; the store (a `ProfileStore`, implemented in shared/store/profiles.py) reads and
commits atomically. Every commit is conditional, so two events racing on one customer make one of
them fail with `ConcurrentChangeError`; resolution then starts again from fresh reads.

Two paths:
- fast: every identifier of the event is unknown or already this profile's, and the event is the
  newest the profile has seen. One conditional write records it (traits, last events, timeline, new
  identifiers within their limits) without reading the profile: a known customer costs one batched
  read and one write. If any condition fails the event takes the full path.
- full: read the profiles, decide (create, attach, merge, refuse what would break a limit), commit
  every change in one transaction, each profile conditional on its version.

Rules (shared/identity/rules.py): identifiers are considered strongest first (priority). Each
identifier that leads to another profile merges that profile in, unless the union would break a
limit (at most one user_id, so two users never merge); then that profile and its identifier stay
apart. The survivor of a merge is the oldest profile (ties: the smaller id). Traits merge per trait,
the value set by the most recent event winning. A merged profile's identifiers are repointed to the
survivor and the merged id keeps resolving to it (`mergedInto`); the merge is logged with what the
merged profile was, so that it can be undone.

Erased people: their identifiers are suppressed (kept as hashes). An event loses only its suppressed
identifiers (and any the store cannot key): with what remains it lands on a live profile, or a new one,
so that a device or anonymous id an erased person shared with someone else keeps working for them. A
suppressed identifier is never attached to a profile again; an event naming nothing else is dropped.

Size: a profile's stored size is bounded (shared/identity/bounds.py). What would pass the bound is not
kept, with a warning; the event is still resolved.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared import clock
from shared.delivery.consent import parse_consent_payload
from shared.identity.bounds import Dropped, bound
from shared.identity.identifiers import identifiers_of, user_traits
from shared.identity.rules import IdentityRules
from shared.models.events import (
    DETAIL_MERGED,
    DETAIL_RESOLVED,
    SOURCE_IDENTITY,
    BusEvent,
    ProfilesMerged,
    ResolvedEvent,
)
from shared.models.policy import ConsentRecord, Policy
from shared.models.profile import Identifier, MergeRecord, Profile, TimelineEntry
from shared.models.types import iana_timezone

MAX_ATTEMPTS = 8


class ConcurrentChangeError(Exception):
    """A conditional write lost a race: read again and decide again."""


class FullPathNeededError(Exception):
    """The fast path's conditions do not hold (limit, out-of-order event, merged profile)."""


class ResolutionError(Exception):
    """Resolution kept losing races; the event is retried by its queue or bus."""


@dataclass
class Lookup:
    owners: dict[Identifier, str]  # identifier → the profile id it points to
    suppressed: set[Identifier]  # identifiers of erased people
    # Identifiers the store cannot keep (a key over its size limit): never matched, never attached.
    unstorable: set[Identifier] = field(default_factory=set)


@dataclass
class EventChange:
    """What one event records on its profile."""

    at: str  # the event's time (ISO)
    traits: dict[str, Any]
    track_event: str | None
    call: dict[str, Any]
    timezone: str | None = None  # the event's valid IANA `context.timezone`, if it has one

    def timeline_for(self, profile_id: str) -> TimelineEntry:
        return _timeline(self.call, profile_id, self.at)


@dataclass
class Pointer:
    """Point `identifier` at `to`, if it still points at `expected` (None: nowhere)."""

    identifier: Identifier
    expected: str | None
    to: str


class ProfileStore(Protocol):
    def lookup(self, identifiers: Iterable[Identifier]) -> Lookup: ...

    def record(
        self, profile_id: str, change: EventChange, claims: list[Identifier], rules: IdentityRules
    ) -> None:
        """Fast path: one conditional write. `FullPathNeededError` when a condition on the profile
        fails (including: it might pass `bounds.PROFILE_MAX_BYTES` with what the write adds),
        `ConcurrentChangeError` when a claim was lost."""
        ...

    def profiles(self, profile_ids: Iterable[str]) -> dict[str, Profile]: ...

    def commit(
        self,
        changed: list[Profile],
        pointers: list[Pointer],
        timeline: list[TimelineEntry],
        merges: list[MergeRecord],
    ) -> None:
        """Full path: all of it in one transaction; each profile conditional on its version (0: must
        not exist), each pointer on its expected owner."""
        ...


@dataclass
class Resolution:
    profile_id: str | None
    merged: list[str] = field(default_factory=list)  # profile ids merged into it by this event
    suppressed: bool = False  # every identifier the event names is an erased person's: dropped
    warnings: list[str] = field(default_factory=list)
    suppressed_identifiers: int = 0  # an erased person's identifiers left out (the event may still land)
    dropped: Dropped = field(default_factory=Dropped)  # what did not fit the profile's size bound
    consent_recorded: int = 0  # consent choices of the call's `context.consent` stored (or older)
    consent_ignored: int = 0  # its entries the policy does not declare (left out, never an error)


def _timeline(call: dict[str, Any], profile_id: str, at: str) -> TimelineEntry:
    kind = str(call.get("type", ""))
    data = call.get("properties") if kind in ("track", "page", "screen") else call.get("traits")
    return TimelineEntry(
        profileId=profile_id,
        type=kind,
        # Ingest keeps fields the spec does not name (an identify may carry `"event": 5`): only text names.
        name=next((v for v in (call.get("event"), call.get("name")) if isinstance(v, str) and v), None),
        timestamp=at,
        messageId=str(call.get("messageId", "")),
        data=data if isinstance(data, dict) else {},
    )


def _change(call: dict[str, Any], at: str) -> EventChange:
    # A trait needs a name: DynamoDB (and every destination) refuses an empty one.
    traits = {name: value for name, value in user_traits(call).items() if name}
    track_event = call.get("event") if call.get("type") == "track" else None
    context = call.get("context")
    timezone = iana_timezone(context.get("timezone")) if isinstance(context, dict) else None
    return EventChange(at=at, traits=traits, track_event=track_event, call=call, timezone=timezone)


def apply_change(profile: Profile, change: EventChange) -> None:
    """An event's change on a profile, per trait and per event name: the most recent time wins."""
    for name, value in change.traits.items():
        if profile.traitTimes.get(name, "") <= change.at:
            profile.traits[name] = value
            profile.traitTimes[name] = change.at
    if change.track_event and profile.lastEvents.get(change.track_event, "") < change.at:
        profile.lastEvents[change.track_event] = change.at
    if change.timezone and (profile.latestEventAt or "") <= change.at:  # only the latest event's zone
        profile.timezone = change.timezone
    profile.latestEventAt = max(profile.latestEventAt or change.at, change.at)
    profile.updatedAt = clock.iso(clock.now())


def merge_into(survivor: Profile, loser: Profile) -> None:
    for identifier in loser.identifiers:
        if identifier not in survivor.identifiers:
            survivor.identifiers.append(identifier)
    for name, value in loser.traits.items():
        when = loser.traitTimes.get(name, "")
        if survivor.traitTimes.get(name, "") < when or name not in survivor.traits:
            survivor.traits[name] = value
            survivor.traitTimes[name] = when
    for name, when in loser.lastEvents.items():
        survivor.lastEvents[name] = max(when, survivor.lastEvents.get(name, when))
    if loser.timezone and (
        not survivor.timezone or (survivor.latestEventAt or "") < (loser.latestEventAt or "")
    ):
        survivor.timezone = loser.timezone  # the zone of whichever was seen more recently
    if loser.latestEventAt:
        survivor.latestEventAt = max(survivor.latestEventAt or loser.latestEventAt, loser.latestEventAt)
    survivor.mergedFrom = list(dict.fromkeys([*survivor.mergedFrom, loser.profileId, *loser.mergedFrom]))
    loser.mergedInto = survivor.profileId


def fits(rules: IdentityRules, base: Iterable[Identifier], extra: Iterable[Identifier] = ()) -> bool:
    """Whether `extra` may join `base` within the limits. A type `base` already holds past its limit
    (a limit lowered since) may stay so, but not grow."""

    def counts(identifiers: set[Identifier]) -> dict[str, int]:
        result: dict[str, int] = {}
        for identifier in identifiers:
            result[identifier.type] = result.get(identifier.type, 0) + 1
        return result

    before_set = set(base)
    before, after = counts(before_set), counts(before_set | set(extra))
    return all(count <= max(rules.limit(kind), before.get(kind, 0)) for kind, count in after.items())


def age(profile: Profile) -> tuple[str, str]:
    # The survivor of a merge is the oldest profile; ties go to the smaller id. Deterministic.
    return (profile.createdAt, profile.profileId)


def resolve(
    call: dict[str, Any],
    store: ProfileStore,
    rules: IdentityRules,
    event_time: datetime,
    new_profile_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Resolution:
    identifiers, warnings = identifiers_of(call, rules)
    if not identifiers:
        return Resolution(None, warnings=[*warnings, "the event names no usable identifier: dropped"])
    change = _change(call, clock.iso(event_time))
    for _ in range(MAX_ATTEMPTS):
        lookup = store.lookup(identifiers)
        # An erased person's identifier is left out, not the event: a device or an anonymous id
        # shared with someone else keeps working for them, and is never attached to anyone again.
        usable = [i for i in identifiers if i not in lookup.suppressed and i not in lookup.unstorable]
        notes = [*warnings, *_left_out(identifiers, lookup)]
        suppressed = sum(1 for i in identifiers if i in lookup.suppressed)
        if not usable:
            if suppressed:
                return Resolution(None, suppressed=True, warnings=notes, suppressed_identifiers=suppressed)
            return Resolution(None, warnings=[*notes, "the event names no usable identifier: dropped"])
        owners = {i: p for i, p in lookup.owners.items() if i in usable}
        distinct = set(owners.values())
        try:
            if len(distinct) == 1:
                profile_id = next(iter(distinct))
                unowned = [i for i in usable if i not in owners]
                try:
                    store.record(profile_id, change, unowned, rules)
                    return Resolution(profile_id, warnings=notes, suppressed_identifiers=suppressed)
                except FullPathNeededError:
                    pass
            resolution = _full_path(usable, owners, store, rules, change, new_profile_id, notes)
            resolution.suppressed_identifiers = suppressed
            return resolution
        except ConcurrentChangeError:
            continue
    raise ResolutionError(f"gave up after {MAX_ATTEMPTS} conflicting attempts")


def _left_out(identifiers: list[Identifier], lookup: Lookup) -> list[str]:
    """A warning per identifier type left out: counts and types only, never a value."""
    notes: list[str] = []
    for reason, left in (
        ("suppressed (an erased person's)", lookup.suppressed),
        ("too long to be stored as a key", lookup.unstorable),
    ):
        counts: dict[str, int] = {}
        for identifier in identifiers:
            if identifier in left:
                counts[identifier.type] = counts.get(identifier.type, 0) + 1
        notes += [
            f"{n} {kind} identifier{'s' if n > 1 else ''} left out: {reason}" for kind, n in counts.items()
        ]
    return notes


def _full_path(
    identifiers: list[Identifier],
    owners: dict[Identifier, str],
    store: ProfileStore,
    rules: IdentityRules,
    change: EventChange,
    new_profile_id: Callable[[], str],
    warnings: list[str],
) -> Resolution:
    live = store.profiles(set(owners.values()))
    if any(p.mergedInto for p in live.values()) or set(live) != set(owners.values()):
        raise ConcurrentChangeError("a profile was merged or removed since the identifiers were read")

    accepted: list[Identifier] = []  # the event's unowned identifiers that will be attached
    group: list[Profile] = []
    for identifier in sorted(identifiers, key=lambda i: rules.rank(i.type)):
        owner = owners.get(identifier)
        on_group = [i for p in group for i in p.identifiers]
        if owner is None:
            if fits(rules, [*on_group, *accepted], [identifier]):
                accepted.append(identifier)
            else:
                warnings.append(f"{identifier.type} not attached: the profile is at its limit")
        elif owner not in {p.profileId for p in group}:
            candidate = live[owner]
            # The first profile is taken as it is (even past a limit lowered since); others must fit.
            base, extra = (
                (candidate.identifiers, accepted)
                if not group
                else ([*on_group, *accepted], candidate.identifiers)
            )
            if fits(rules, base, extra):
                group.append(candidate)
            else:
                warnings.append(f"not merged with the profile of its {identifier.type}: a limit would break")

    on_merged = {i for p in group for i in p.identifiers}
    if any(identifier in on_merged for identifier in accepted):
        raise ConcurrentChangeError("an identifier read as new was claimed meanwhile")
    now = clock.iso(clock.now())
    if not group:
        group = [Profile(profileId=new_profile_id(), createdAt=now, updatedAt=now, version=0)]
    survivor, *losers = sorted(group, key=age)
    before = survivor.model_copy(deep=True) if survivor.version else None
    merges = [
        MergeRecord(survivor=survivor.profileId, merged=loser.model_copy(deep=True), at=now)
        for loser in losers
    ]
    pointers = [
        Pointer(i, loser.profileId, survivor.profileId) for loser in losers for i in loser.identifiers
    ]
    for loser in losers:
        merge_into(survivor, loser)
    for identifier in accepted:
        if identifier not in survivor.identifiers:
            survivor.identifiers.append(identifier)
        pointers.append(Pointer(identifier, None, survivor.profileId))
    apply_change(survivor, change)
    dropped = bound(survivor, before)
    if dropped:
        warnings.append(
            f"{dropped.traits} traits and {dropped.events} event names ({dropped.bytes} bytes) not kept: "
            f"the profile would pass its size bound"
        )
    store.commit([survivor, *losers], pointers, [change.timeline_for(survivor.profileId)], merges)
    return Resolution(
        survivor.profileId, merged=[p.profileId for p in losers], warnings=warnings, dropped=dropped
    )


class ConsentPort(Protocol):
    def record(self, profile_id: str, changes: Mapping[str, ConsentRecord]) -> bool:
        """Store each choice unless a newer one is stored; False when the profile does not exist."""
        ...


CONSENT_CALLS = ("identify", "track")


def resolve_with_consent(
    call: dict[str, Any],
    store: ProfileStore,
    rules: IdentityRules,
    event_time: datetime,
    consents: ConsentPort,
    policy: Callable[[], Policy],
) -> Resolution:
    """`resolve`, then the call's `context.consent` recorded on the profile it resolved to (identify and
    track calls), so that whatever reacts to `event.resolved` sees the choice. The choice's time is
    `receivedAt`, ingest's clock, not the device's. `policy` is read only for a call carrying consent.
    A store failure raises: the event is retried, and recording the same choice again changes nothing."""
    resolution = resolve(call, store, rules, event_time)
    context = call.get("context")
    consent = context.get("consent") if isinstance(context, dict) else None
    if resolution.profile_id is None or call.get("type") not in CONSENT_CALLS or not consent:
        return resolution
    if not isinstance(consent, dict):
        resolution.consent_ignored += 1
        resolution.warnings.append("context.consent ignored: not an object")
        return resolution
    at = call.get("receivedAt") or call["timestamp"]
    changes = parse_consent_payload(policy(), consent, source="identify", at=str(at), strict=False)
    if changes.ignored:
        resolution.consent_ignored += changes.ignored
        resolution.warnings.append(
            f"{changes.ignored} context.consent entries ignored: not declared in the policy"
        )
    if changes.records and consents.record(resolution.profile_id, changes.records):
        resolution.consent_recorded += len(changes.records)
    return resolution


def resolved_events(call: dict[str, Any], resolution: Resolution, correlation: str) -> list[BusEvent]:
    """What identity publishes for a resolved call: `profile.merged` (when it linked profiles) before
    `event.resolved`. Empty when the call landed on no profile (suppressed, or no identifier)."""
    if resolution.suppressed or resolution.profile_id is None:
        return []
    now = clock.iso(clock.now())
    outgoing = [
        BusEvent.publishing(
            SOURCE_IDENTITY,
            DETAIL_RESOLVED,
            correlation,
            now,
            ResolvedEvent(profileId=resolution.profile_id, userId=call.get("userId"), event=call),
        )
    ]
    if resolution.merged:
        merged = ProfilesMerged(survivor=resolution.profile_id, merged=resolution.merged)
        outgoing.insert(0, BusEvent.publishing(SOURCE_IDENTITY, DETAIL_MERGED, correlation, now, merged))
    return outgoing
