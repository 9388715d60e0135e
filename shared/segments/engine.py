"""Segment evaluation in the event path: pure functions, no I/O.

A profile's `SegmentState` holds aggregates bounded by the catalogue, never by the profile's history:
per event key (an event name, with a `where` digest when a condition filters it) the count, first
and last time and the K most recent times inside the longest window (K: the largest `at_least`, or
`at_most + 1`, of a windowed condition on that key); per computed trait a running aggregate, or UTC-day
buckets for a windowed one. Aggregates merge (two profiles' states combine into the merged
profile's), and the same functions of them give membership, computed values and the next moment at
which something changes by time alone (a window expiring), which the caller schedules.

An event's time is `min(timestamp, now)`: a device clock running ahead never keeps someone in a
window. Every ISO time here is `shared.clock.iso` (UTC, milliseconds, `Z`), so times compare as
strings.

The catalogue is compiled once (`_plan`, cached per catalogue object): which keys, computed traits and
segments each event name touches, so that an event evaluates only the segments it can change.
"""

from __future__ import annotations

import hashlib
import json
import math
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

from shared import clock
from shared.identity.identifiers import user_traits
from shared.journeys.conditions import condition_holds, lookup, property_conditions_hold
from shared.models.journey import Condition
from shared.models.profile import Profile, TimelineEntry
from shared.models.segments import (
    OUTBOX_OLDER_BYTES,
    SEEN_LIMIT,
    AllNode,
    AnyNode,
    AnyNodeType,
    AudienceIntent,
    AudienceMessage,
    ComputedNode,
    ComputedTrait,
    EventAggregate,
    EventNode,
    Extreme,
    HashedIdentifier,
    NoEventSinceNode,
    NotNode,
    SegmentChange,
    SegmentDefinition,
    SegmentState,
    TraitAggregate,
    TraitBucket,
    TraitsNode,
    event_key,
)
from shared.segments.catalogue import SegmentCatalogue
from shared.segments.hashing import hashes_by_kind

Reason = Literal["event", "time", "merge", "unmerge", "erasure"]
OPT_OUT_TRAIT = "unsubscribed"  # the consent model replaces this when it lands
# A first / last value larger than this (as JSON) is not kept: the state is one DynamoDB item.
MAX_KEPT_VALUE_BYTES = 256
# A number beyond ±10^15 is no plausible amount; leaving it out keeps sums (exact fractions) and the
# state bounded (`state_size_bound`).
MAX_NUMBER = 10**15
_MS = timedelta(milliseconds=1)
_NO_EVENTS = EventAggregate()


@dataclass(frozen=True)
class Decision:
    state: SegmentState  # the state to write (version unchanged; the store bumps it)
    write: bool  # False when nothing changed (no write at all)
    changes: list[SegmentChange]  # entered / exited, in catalogue order
    intents: list[AudienceIntent]  # ad-platform requests to make
    recheck_at: datetime | None  # when to schedule a time-only re-check (None: none / already scheduled)


# -- the compiled catalogue ------------------------------------------------------------------------


@dataclass
class _KeySpec:
    key: str
    event: str
    where: dict[str, Condition]
    keep: int = 0  # how many recent times windowed conditions need
    window: int | None = None  # the longest window (seconds) of a condition on this key


@dataclass
class _Plan:
    keys: dict[str, _KeySpec] = field(default_factory=dict)
    keys_by_event: dict[str, list[_KeySpec]] = field(default_factory=dict)
    traits_by_event: dict[str, list[ComputedTrait]] = field(default_factory=dict)
    segments_by_event: dict[str, list[int]] = field(default_factory=dict)
    trait_segments: list[int] = field(default_factory=list)  # read profile traits
    timed_segments: list[int] = field(default_factory=list)  # may change by time alone
    audience_segments: list[int] = field(default_factory=list)
    windowed_traits: list[ComputedTrait] = field(default_factory=list)
    computed: dict[str, ComputedTrait] = field(default_factory=dict)
    node_keys: dict[int, str] = field(default_factory=dict)  # id(EventNode) -> its aggregate key
    segment_ids: set[str] = field(default_factory=set)
    synced_keys: set[str] = field(default_factory=set)


def _now_operand(conditions: Iterable[Condition]) -> bool:
    return any(c.op in ("before", "after") and c.value == "now" for c in conditions)


# Plans by catalogue object (a catalogue reloaded after a change gets its own plan). By id, held
# weakly: a frozen model with lists is not hashable, and an id is reused once its object is gone.
_PLANS: dict[int, tuple[weakref.ref[SegmentCatalogue], _Plan]] = {}


def _plan(catalogue: SegmentCatalogue) -> _Plan:
    cached = _PLANS.get(id(catalogue))
    if cached is not None and cached[0]() is catalogue:
        return cached[1]
    if len(_PLANS) >= 8:
        _PLANS.clear()
    plan = _Plan(computed={t.id: t for t in catalogue.computed})
    for trait in catalogue.computed:
        plan.traits_by_event.setdefault(trait.event, []).append(trait)
        if trait.within is not None:
            plan.windowed_traits.append(trait)

    def spec(event: str, where: dict[str, Condition]) -> _KeySpec:
        key = event_key(event, where)
        if key not in plan.keys:
            plan.keys[key] = _KeySpec(key=key, event=event, where=dict(where))
            plan.keys_by_event.setdefault(event, []).append(plan.keys[key])
        return plan.keys[key]

    for index, segment in enumerate(catalogue.segments):
        events: set[str] = set()
        timed = False
        for node in segment.nodes():
            if isinstance(node, EventNode):
                key = spec(node.event, node.where)
                plan.node_keys[id(node)] = key.key
                events.add(node.event)
                if node.within is not None:
                    timed = True
                    key.keep = max(key.keep, node.keep)
                    key.window = max(key.window or 0, node.within)
            elif isinstance(node, NoEventSinceNode):
                for name in (node.no_event_since.event, node.no_event_since.since):
                    spec(name, {})
                    events.add(name)
            elif isinstance(node, ComputedNode):
                for trait_id, condition in node.computed.items():
                    trait = plan.computed[trait_id]
                    events.add(trait.event)
                    timed = timed or trait.within is not None or _now_operand([condition])
            elif isinstance(node, TraitsNode):
                if index not in plan.trait_segments:
                    plan.trait_segments.append(index)
                timed = timed or _now_operand(node.traits.values())
        for name in events:
            plan.segments_by_event.setdefault(name, []).append(index)
        if timed:
            plan.timed_segments.append(index)
        if segment.audiences:
            plan.audience_segments.append(index)
        plan.segment_ids.add(segment.id)
        plan.synced_keys.update(synced_key(a.platform, a.audience, segment.id) for a in segment.audiences)
    _PLANS[id(catalogue)] = (weakref.ref(catalogue), plan)
    return plan


# -- small helpers ---------------------------------------------------------------------------------


def message_digest(message_id: str) -> str:
    """What `seen` keeps of a messageId: short and of fixed size (a messageId may be 256 bytes)."""
    return hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:16]


def _event_time(call: Mapping[str, Any], now: datetime) -> datetime:
    raw = call.get("timestamp")
    moment = now
    if isinstance(raw, datetime):
        moment = raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    elif isinstance(raw, str):
        try:
            moment = clock.parse(raw)
        except ValueError:
            moment = now
    return min(moment, now)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) <= MAX_NUMBER
    )


def _property_value(trait: ComputedTrait, properties: Mapping[str, Any]) -> tuple[bool, Any]:
    """(found, value): the first of the trait's property names present (a number, for sum/min/max)."""
    for name in trait.property:
        value = lookup(properties, name)
        if value is None:
            continue
        if trait.aggregate in ("sum", "min", "max"):
            if _is_number(value):
                return True, value
            continue
        if trait.aggregate in ("first", "last") and len(_json_bytes(value)) > MAX_KEPT_VALUE_BYTES:
            continue
        return True, value
    return False, None


def _json_bytes(value: Any) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
    except (TypeError, ValueError):
        return b"x" * (MAX_KEPT_VALUE_BYTES + 1)


def _fraction(text: str | None) -> Fraction:
    return Fraction(text) if text else Fraction(0)


def _number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


def _day_start(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def _first_day(trait: ComputedTrait, now: datetime) -> str:
    """The oldest UTC day still in a windowed trait's window (today included)."""
    assert trait.days is not None
    return (now.astimezone(UTC).date() - timedelta(days=trait.days - 1)).isoformat()


# -- aggregates ------------------------------------------------------------------------------------


def _add_time(aggregate: EventAggregate, at: str, spec: _KeySpec, now: datetime) -> EventAggregate:
    recent = aggregate.recent
    if spec.keep and spec.window is not None:
        cutoff = _cutoff(now, spec.window)
        recent = sorted([*recent, at] if at > cutoff else recent, reverse=True)
        recent = [t for t in recent if t > cutoff][: spec.keep]
    return EventAggregate(
        count=aggregate.count + 1,
        first=at if aggregate.first is None else min(aggregate.first, at),
        last=at if aggregate.last is None else max(aggregate.last, at),
        recent=recent,
    )


def _merge_events(
    a: EventAggregate, b: EventAggregate, spec: _KeySpec | None, now: datetime
) -> EventAggregate:
    recent: list[str] = []
    if spec is not None and spec.keep and spec.window is not None:
        cutoff = _cutoff(now, spec.window)
        recent = [t for t in sorted([*a.recent, *b.recent], reverse=True) if t > cutoff][: spec.keep]
    firsts = [t for t in (a.first, b.first) if t is not None]
    lasts = [t for t in (a.last, b.last) if t is not None]
    return EventAggregate(
        count=a.count + b.count,
        first=min(firsts) if firsts else None,
        last=max(lasts) if lasts else None,
        recent=recent,
    )


def _add_value(bucket: TraitBucket, trait: ComputedTrait, at: str, digest: str, value: Any) -> dict[str, Any]:
    """The bucket's fields after one more event (only the field the trait's aggregate uses)."""
    kind = trait.aggregate
    if kind == "count":
        return {"count": bucket.count + 1}
    if kind == "sum":
        return {"sum": str(_fraction(bucket.sum) + Fraction(value))}
    if kind == "min":
        return {"min": value if bucket.min is None or value < bucket.min else bucket.min}
    if kind == "max":
        return {"max": value if bucket.max is None or value > bucket.max else bucket.max}
    point = Extreme(at=at, id=digest, value=value if trait.property else None)
    if kind == "first":
        current = bucket.first
        return {"first": point if current is None or (at, digest) < (current.at, current.id) else current}
    current = bucket.last
    return {"last": point if current is None or (at, digest) > (current.at, current.id) else current}


def _merge_buckets(a: TraitBucket, b: TraitBucket) -> dict[str, Any]:
    firsts = [p for p in (a.first, b.first) if p is not None]
    lasts = [p for p in (a.last, b.last) if p is not None]
    mins = [v for v in (a.min, b.min) if v is not None]
    maxes = [v for v in (a.max, b.max) if v is not None]
    return {
        "count": a.count + b.count,
        "sum": str(_fraction(a.sum) + _fraction(b.sum)) if (a.sum or b.sum) else None,
        "min": min(mins) if mins else None,
        "max": max(maxes) if maxes else None,
        "first": min(firsts, key=lambda p: (p.at, p.id)) if firsts else None,
        "last": max(lasts, key=lambda p: (p.at, p.id)) if lasts else None,
    }


def _add_to_trait(
    aggregate: TraitAggregate, trait: ComputedTrait, at: str, digest: str, value: Any, now: datetime
) -> TraitAggregate | None:
    """The trait's aggregate after one more event; None when the event is outside its window."""
    if trait.days is None:
        return aggregate.model_copy(update=_add_value(aggregate, trait, at, digest, value))
    first_day, day = _first_day(trait, now), at[:10]
    if day < first_day:
        return None
    days = {d: b for d, b in aggregate.days.items() if d >= first_day}
    bucket = days.get(day, TraitBucket())
    days[day] = bucket.model_copy(update=_add_value(bucket, trait, at, digest, value))
    return TraitAggregate(days=dict(sorted(days.items())))


def _merge_traits(
    a: TraitAggregate, b: TraitAggregate, trait: ComputedTrait | None, now: datetime
) -> TraitAggregate:
    if trait is None or trait.days is None:
        return TraitAggregate(**_merge_buckets(a, b))
    first_day = _first_day(trait, now)
    days: dict[str, TraitBucket] = {}
    for day in sorted({*a.days, *b.days}):
        if day < first_day:
            continue
        one, other = a.days.get(day), b.days.get(day)
        if one is None or other is None:
            days[day] = one or other  # type: ignore[assignment]
        else:
            days[day] = TraitBucket(**_merge_buckets(one, other))
    return TraitAggregate(days=days)


def _trait_value(aggregate: TraitAggregate | None, trait: ComputedTrait, now: datetime) -> Any:
    """The computed value now (count and sum are 0 without events; the others None)."""
    if aggregate is None:
        bucket = TraitBucket()
    elif trait.days is None:
        bucket = aggregate
    else:
        first_day = _first_day(trait, now)
        return _days_value([b for d, b in aggregate.days.items() if d >= first_day], trait)
    return _bucket_value(bucket, trait)


def _days_value(buckets: list[TraitBucket], trait: ComputedTrait) -> Any:
    """The value over a window's day buckets (computed without building a combined bucket: a
    90-day window is up to 90 of them)."""
    kind = trait.aggregate
    if kind == "count":
        return sum(b.count for b in buckets)
    if kind == "sum":
        return _number(sum((_fraction(b.sum) for b in buckets), Fraction(0)))
    if kind in ("min", "max"):
        values = [v for b in buckets if (v := getattr(b, kind)) is not None]
        return (min if kind == "min" else max)(values) if values else None
    points = [p for b in buckets if (p := (b.first if kind == "first" else b.last)) is not None]
    if not points:
        return None
    point = (min if kind == "first" else max)(points, key=lambda p: (p.at, p.id))
    return point.value if trait.property else point.at


def _bucket_value(bucket: TraitBucket, trait: ComputedTrait) -> Any:
    kind = trait.aggregate
    if kind == "count":
        return bucket.count
    if kind == "sum":
        return _number(_fraction(bucket.sum))
    if kind in ("min", "max"):
        return getattr(bucket, kind)
    point = bucket.first if kind == "first" else bucket.last
    if point is None:
        return None
    return point.value if trait.property else point.at


def _trait_change_at(
    aggregate: TraitAggregate | None, trait: ComputedTrait, now: datetime
) -> datetime | None:
    """When a windowed trait's value next changes by time alone: its oldest day leaving the window."""
    if trait.days is None or aggregate is None:
        return None
    first_day = _first_day(trait, now)
    days = [d for d in aggregate.days if d >= first_day]
    if not days:
        return None
    return _day_start(min(days)) + timedelta(days=trait.days)


# -- evaluation ------------------------------------------------------------------------------------


@dataclass
class _Context:
    """What conditions are evaluated against: event facts, computed values, traits, now."""

    now: datetime
    now_iso: str
    traits: Mapping[str, Any]
    computed: Mapping[str, Any]
    count: Callable[[EventNode], tuple[bool, datetime | None]]
    last: Callable[[str], str | None]
    trait_change_at: Callable[[str], datetime | None]


def _now_flip(condition: Condition, value: Any, ctx: _Context) -> datetime | None:
    """When a `before: now` / `after: now` condition on a fixed value next changes."""
    if condition.op not in ("before", "after") or condition.value != "now" or not isinstance(value, str):
        return None
    try:
        instant = clock.parse(value) if "T" in value else _day_start(date.fromisoformat(value).isoformat())
    except ValueError:
        return None
    if condition.op == "before":  # value < now: becomes true just after `instant`
        return instant + _MS if instant >= ctx.now else None
    return instant if instant > ctx.now else None  # value > now: false from `instant` on


def _holds(node: AnyNodeType, ctx: _Context) -> tuple[bool, datetime | None]:
    """Whether the node holds now, and the earliest time it may change by time alone (None: never)."""
    if isinstance(node, AllNode | AnyNode):
        children = [_holds(child, ctx) for child in (node.all if isinstance(node, AllNode) else node.any)]
        decisive = isinstance(node, AllNode)  # all: one false child decides; any: one true child
        value = all(v for v, _ in children) if decisive else any(v for v, _ in children)
        # The value changes by time when a child that makes it so changes. If a child that decides it
        # (a false one for all, a true one for any) never changes, the node never does.
        deciders = [flip for v, flip in children if v != decisive]
        if deciders:
            if any(flip is None for flip in deciders):
                return value, None
            return value, min(f for f in deciders if f is not None)
        flips = [flip for _, flip in children if flip is not None]
        return value, min(flips) if flips else None
    if isinstance(node, NotNode):
        value, flip = _holds(node.not_, ctx)
        return not value, flip
    if isinstance(node, TraitsNode):
        value = property_conditions_hold(node.traits, ctx.traits, {}, ctx.now)
        found = [_now_flip(c, lookup(ctx.traits, n), ctx) for n, c in node.traits.items()]
        return value, min((f for f in found if f is not None), default=None)
    if isinstance(node, ComputedNode):
        value = all(condition_holds(c, ctx.computed.get(n), n, {}, ctx.now) for n, c in node.computed.items())
        changes = [ctx.trait_change_at(n) for n in node.computed]
        changes += [_now_flip(c, ctx.computed.get(n), ctx) for n, c in node.computed.items()]
        return value, min((f for f in changes if f is not None), default=None)
    if isinstance(node, EventNode):
        return ctx.count(node)
    assert isinstance(node, NoEventSinceNode)
    last_event, last_since = ctx.last(node.no_event_since.event), ctx.last(node.no_event_since.since)
    if last_since is None:
        return last_event is None, None
    return last_event is None or last_event < last_since, None


@lru_cache(maxsize=64)
def _cutoff(now: datetime, seconds: int) -> str:
    """The oldest time still outside a window ending now (an event must be later to count)."""
    return clock.iso(now - timedelta(seconds=seconds))


def _window_count(
    node: EventNode, recent: list[str], count: int, now: datetime
) -> tuple[bool, datetime | None]:
    """An event count from the newest times (`recent`, newest first) or, without a window, `count`."""
    if node.within is None:
        return (count >= node.at_least if node.at_least is not None else count <= (node.at_most or 0)), None
    window = timedelta(seconds=node.within)
    cutoff = _cutoff(now, node.within)
    if node.at_least is not None:
        n = node.at_least
        if len(recent) >= n and recent[n - 1] > cutoff:
            return True, clock.parse(recent[n - 1]) + window  # leaves the window at t + within
        return False, None
    n = (node.at_most or 0) + 1
    if len(recent) >= n and recent[n - 1] > cutoff:
        return False, clock.parse(recent[n - 1]) + window
    return True, None


def _state_context(
    state: SegmentState, profile: Profile, computed: Mapping[str, Any], plan: _Plan, now: datetime
) -> _Context:
    def count(node: EventNode) -> tuple[bool, datetime | None]:
        key = plan.node_keys.get(id(node)) or node.key
        aggregate = state.events.get(key) or _NO_EVENTS
        return _window_count(node, aggregate.recent, aggregate.count, now)

    def last(event: str) -> str | None:
        aggregate = state.events.get(event)
        return aggregate.last if aggregate else None

    def change_at(trait_id: str) -> datetime | None:
        return _trait_change_at(state.traits.get(trait_id), plan.computed[trait_id], now)

    return _Context(now, clock.iso(now), profile.traits, computed, count, last, change_at)


def _computed_values(state: SegmentState, traits: Iterable[ComputedTrait], now: datetime) -> dict[str, Any]:
    return {t.id: _trait_value(state.traits.get(t.id), t, now) for t in traits}


def _with_values(current: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(current)
    for name, value in values.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def evaluate(
    state: SegmentState | None, profile: Profile, catalogue: SegmentCatalogue, now: datetime
) -> tuple[set[str], dict[str, Any], datetime | None]:
    """Members, computed values and the next time-only change, from the state's aggregates."""
    plan = _plan(catalogue)
    state = state or SegmentState(profileId=profile.profileId)
    computed = _with_values({}, _computed_values(state, catalogue.computed, now))
    ctx = _state_context(state, profile, computed, plan, now)
    members: set[str] = set()
    flips: list[datetime] = []
    for segment in catalogue.segments:
        value, flip = _holds(segment.when, ctx)
        if value:
            members.add(segment.id)
        if flip is not None:
            flips.append(flip)
    return members, computed, min(flips, default=None)


# -- audiences -------------------------------------------------------------------------------------


def synced_key(platform: str, audience: str, segment: str) -> str:
    return f"{platform}:{audience}:{segment}"


def _opted_out(profile: Profile) -> bool:
    return profile.traits.get(OPT_OUT_TRAIT) is True


def _audience_intents(
    segment: SegmentDefinition,
    member: bool,
    profile: Profile,
    synced: dict[str, dict[str, list[str]]],
    hashes: dict[str, dict[str, list[str]]],
    at: str,
) -> list[AudienceIntent]:
    """Diff of the hashes wanted in each of the segment's audiences against those last requested
    added; `synced` is updated in place. `hashes`: per platform, filled on first need."""
    intents: list[AudienceIntent] = []
    wanted_at_all = member and not _opted_out(profile)
    for sync in segment.audiences:
        key = synced_key(sync.platform, sync.audience, segment.id)
        if wanted_at_all and sync.platform not in hashes:
            hashes[sync.platform] = hashes_by_kind(profile, sync.platform)
        wanted = hashes[sync.platform] if wanted_at_all else {}
        before = synced.get(key, {})
        if before == wanted:
            continue
        had = {(kind, h) for kind, values in before.items() for h in values}
        want = {(kind, h) for kind, values in wanted.items() for h in values}
        for action, pairs in (("remove", sorted(had - want)), ("add", sorted(want - had))):
            if pairs:
                intents.append(
                    AudienceIntent(
                        platform=sync.platform,
                        audience=sync.audience,
                        action=action,  # type: ignore[arg-type]
                        segment=segment.id,
                        profileId=profile.profileId,
                        at=at,
                        identifiers=[HashedIdentifier(kind=kind, sha256=h) for kind, h in pairs],  # type: ignore[arg-type]
                    )
                )
        if wanted:
            synced[key] = {kind: list(values) for kind, values in wanted.items()}
        else:
            synced.pop(key, None)
    return intents


def _orphan_removals(
    synced: dict[str, dict[str, list[str]]], catalogue: SegmentCatalogue, profile_id: str, at: str
) -> list[AudienceIntent]:
    """Removal of hashes synced to an audience the catalogue no longer feeds from that segment."""
    fed = _plan(catalogue).synced_keys
    intents: list[AudienceIntent] = []
    for key in [k for k in synced if k not in fed]:
        intents.extend(_removals(key, synced.pop(key), profile_id, at))
    return intents


def _removals(key: str, hashes: dict[str, list[str]], profile_id: str, at: str) -> list[AudienceIntent]:
    platform, audience, segment = key.split(":", 2)
    identifiers = [
        HashedIdentifier(kind=kind, sha256=h) for kind, values in sorted(hashes.items()) for h in values
    ]  # type: ignore[arg-type]
    if not identifiers:
        return []
    return [
        AudienceIntent(
            platform=platform,  # type: ignore[arg-type]
            audience=audience,
            action="remove",
            segment=segment,
            profileId=profile_id,
            at=at,
            identifiers=identifiers,
        )
    ]


# -- decisions -------------------------------------------------------------------------------------


def _decide(
    before: SegmentState | None,
    state: SegmentState,
    profile: Profile,
    catalogue: SegmentCatalogue,
    now: datetime,
    reason: Reason,
    *,
    segments: Iterable[int] | None,  # which to evaluate (None: all)
    traits: Iterable[ComputedTrait] | None,  # which computed values to refresh (None: all)
    audiences_all: bool,
    aggregates_changed: bool,
    previous_segments: list[str] | None = None,
) -> Decision:
    plan = _plan(catalogue)
    at = clock.iso(now)
    full = segments is None
    computed = _with_values(
        {} if traits is None else state.computed,
        _computed_values(state, catalogue.computed if traits is None else traits, now),
    )
    ctx = _state_context(state, profile, computed, plan, now)
    was = set(state.segments if previous_segments is None else previous_segments)
    members = was & plan.segment_ids if not full else set()
    flips: list[datetime] = []
    indices = range(len(catalogue.segments)) if segments is None else sorted(set(segments))
    for index in indices:
        segment = catalogue.segments[index]
        value, flip = _holds(segment.when, ctx)
        (members.add if value else members.discard)(segment.id)
        if flip is not None:
            flips.append(flip)
    changes = [
        SegmentChange(
            profileId=profile.profileId, segment=s.id, entered=s.id in members, at=at, reason=reason
        )
        for s in catalogue.segments
        if (s.id in members) != (s.id in was)
    ]
    # Segments that left the catalogue: not a membership change anyone can act on; just forgotten.
    synced = {key: dict(value) for key, value in state.synced.items()}
    hashes: dict[str, dict[str, list[str]]] = {}
    changed_ids = {c.segment for c in changes}
    intents: list[AudienceIntent] = []
    for index in plan.audience_segments:
        segment = catalogue.segments[index]
        if audiences_all or segment.id in changed_ids:
            intents.extend(_audience_intents(segment, segment.id in members, profile, synced, hashes, at))
    if audiences_all:
        intents.extend(_orphan_removals(synced, catalogue, profile.profileId, at))

    # Windowed computed values change by time alone too (the Profile API shows them).
    refreshed = plan.windowed_traits if traits is None else [t for t in traits if t.days is not None]
    for trait in refreshed:
        if (flip := _trait_change_at(state.traits.get(trait.id), trait, now)) is not None:
            flips.append(flip)
    # The next time-only change: exact when every timed segment and windowed trait was evaluated;
    # otherwise the earlier of the new ones and the check already due (what was not evaluated has
    # not changed its own).
    exact = (full or set(plan.timed_segments) <= set(indices)) and (
        traits is None or all(t in refreshed for t in plan.windowed_traits)
    )
    due_before = state.nextCheck
    candidates = list(flips)
    if not exact and due_before is not None and due_before > at:
        candidates.append(clock.parse(due_before))
    next_check = clock.iso(min(candidates)) if candidates else None
    recheck_at = clock.parse(next_check) if next_check is not None and next_check != due_before else None

    new = state.model_copy(
        update={
            "computed": computed,
            "segments": sorted(members),
            "synced": synced,
            "nextCheck": next_check,
        }
    )
    old = before or SegmentState(profileId=profile.profileId)
    changed = (
        aggregates_changed
        or new.segments != old.segments
        or new.computed != old.computed
        or new.synced != old.synced
        or new.nextCheck != old.nextCheck
        or new.seen != old.seen
        or new.profileId != old.profileId
    )
    if changed:
        new = new.model_copy(update={"updatedAt": at})
    return Decision(
        state=new if changed else old, write=changed, changes=changes, intents=intents, recheck_at=recheck_at
    )


def _apply(
    state: SegmentState,
    plan: _Plan,
    name: str,
    properties: Mapping[str, Any],
    at_time: datetime,
    digest: str,
    now: datetime,
    seen_as: str | None = None,
) -> tuple[SegmentState, list[ComputedTrait]]:
    """The state after one track event (aggregates only), and the computed traits it touched.
    `digest` breaks first / last ties; `seen_as` (default `digest`) is what `seen` remembers."""
    at = clock.iso(at_time)
    events = state.events
    touched_keys = False
    for spec in plan.keys_by_event.get(name, []):
        if spec.where and not property_conditions_hold(spec.where, properties, {}, at_time):
            continue
        if not touched_keys:
            events, touched_keys = dict(events), True
        events[spec.key] = _add_time(events.get(spec.key) or EventAggregate(), at, spec, now)
    traits = state.traits
    touched: list[ComputedTrait] = []
    for trait in plan.traits_by_event.get(name, []):
        if trait.where and not property_conditions_hold(trait.where, properties, {}, at_time):
            continue
        value: Any = None
        if trait.property:
            found, value = _property_value(trait, properties)
            if not found:
                continue
        updated = _add_to_trait(traits.get(trait.id) or TraitAggregate(), trait, at, digest, value, now)
        if updated is None:
            continue
        if not touched:
            traits = dict(traits)
        traits[trait.id] = updated
        touched.append(trait)
    if not touched_keys and not touched:
        return state, []
    remembered = digest if seen_as is None else seen_as
    seen = [*state.seen, remembered][-SEEN_LIMIT:] if remembered else state.seen
    return state.model_copy(update={"events": events, "traits": traits, "seen": seen}), touched


def _carries_traits(call: Mapping[str, Any]) -> bool:
    return call.get("type") == "identify" or bool(user_traits(dict(call)))


def on_event(
    state: SegmentState | None,
    profile: Profile,
    call: dict[str, Any],
    catalogue: SegmentCatalogue,
    now: datetime,
) -> Decision:
    """A resolved event (track: aggregates, then the segments it can change; identify and any call
    carrying traits: the segments on traits, and every audience's identifiers)."""
    base = state or SegmentState(profileId=profile.profileId)
    if catalogue.empty:
        return Decision(base, False, [], [], None)
    plan = _plan(catalogue)
    message_id = call.get("messageId")
    digest = message_digest(str(message_id)) if message_id else ""
    # Ingest deduplicates per source (`<sourceId>#<messageId>`): two sources may each send a call
    # with the same messageId, and both are events. A retry is the same call from the same source.
    source = call.get("sourceId")
    seen_as = message_digest(f"{source}#{message_id}") if message_id and isinstance(source, str) else digest
    if seen_as and seen_as in base.seen:  # a retry of an event already counted
        return Decision(base, False, [], [], None)
    name = call.get("event") if call.get("type") == "track" else None
    current, touched = base, list[ComputedTrait]()
    if isinstance(name, str) and (name in plan.keys_by_event or name in plan.traits_by_event):
        raw = call.get("properties")
        properties: dict[str, Any] = raw if isinstance(raw, dict) else {}
        current, touched = _apply(base, plan, name, properties, _event_time(call, now), digest, now, seen_as)
    aggregates_changed = current is not base
    segments: set[int] = set()
    if aggregates_changed and isinstance(name, str):
        segments.update(plan.segments_by_event.get(name, []))
    carries = _carries_traits(call)
    if carries:
        segments.update(plan.trait_segments)
    traits: list[ComputedTrait] = list(touched)
    due = base.nextCheck is not None and base.nextCheck <= clock.iso(now)
    if due:
        segments.update(plan.timed_segments)
        traits.extend(t for t in plan.windowed_traits if t not in traits)
    # Hashes synced for an audience the catalogue no longer feeds from that segment (the segment, or
    # its audience, was removed): removed on the profile's next event, whatever the event.
    orphans = any(key not in plan.synced_keys for key in base.synced)
    if (
        not (segments or traits or aggregates_changed or carries or orphans)
        and base.profileId == profile.profileId
    ):
        return Decision(base, False, [], [], None)  # nothing this event can change
    if base.profileId != profile.profileId:  # the state of a profile merged meanwhile: all of it
        return _decide(
            state,
            current.model_copy(update={"profileId": profile.profileId}),
            profile,
            catalogue,
            now,
            "event",
            segments=None,
            traits=None,
            audiences_all=True,
            aggregates_changed=True,
        )
    return _decide(
        state,
        current,
        profile,
        catalogue,
        now,
        "event",
        segments=segments,
        traits=traits,
        audiences_all=carries or orphans,
        aggregates_changed=aggregates_changed,
    )


def _trimmed(state: SegmentState, plan: _Plan, now: datetime) -> SegmentState:
    """Windowed aggregates without what no window holds any more (a recheck shrinks the state)."""
    events = {}
    for key, aggregate in state.events.items():
        spec = plan.keys.get(key)
        if spec is None:  # no condition reads it any more
            continue
        events[key] = _merge_events(aggregate, EventAggregate(), spec, now)
    traits = {}
    for trait_id, running in state.traits.items():
        trait = plan.computed.get(trait_id)
        if trait is not None:
            traits[trait_id] = _merge_traits(running, TraitAggregate(), trait, now)
    return state.model_copy(update={"events": events, "traits": traits})


def on_recheck(
    state: SegmentState | None, profile: Profile, catalogue: SegmentCatalogue, now: datetime
) -> Decision:
    """A time-only re-check (the scheduled one, or any full re-evaluation: identifiers removed)."""
    base = state or SegmentState(profileId=profile.profileId)
    if catalogue.empty and not base.synced and not base.segments:
        return Decision(base, False, [], [], None)
    plan = _plan(catalogue)
    current = _trimmed(base, plan, now).model_copy(update={"profileId": profile.profileId})
    changed = current.events != base.events or current.traits != base.traits
    decision = _decide(
        state,
        current,
        profile,
        catalogue,
        now,
        "time",
        segments=None,
        traits=None,
        audiences_all=True,
        aggregates_changed=changed,
    )
    # The schedule that invoked this re-check is gone (ActionAfterCompletion DELETE): the next one is
    # always asked for, even when it is the time already stored (a function clock a few ms behind the
    # scheduler's finds nothing changed yet, and nothing else would ever check again).
    if decision.recheck_at is None and decision.state.nextCheck is not None:
        decision = Decision(
            decision.state,
            decision.write,
            decision.changes,
            decision.intents,
            clock.parse(decision.state.nextCheck),
        )
    return decision


def _combine(states: list[SegmentState], plan: _Plan, profile_id: str, now: datetime) -> SegmentState:
    events: dict[str, EventAggregate] = {}
    traits: dict[str, TraitAggregate] = {}
    synced: dict[str, dict[str, list[str]]] = {}
    seen: list[str] = []
    for state in states:
        for key, aggregate in state.events.items():
            spec = plan.keys.get(key)
            if spec is not None:
                events[key] = (
                    _merge_events(events[key], aggregate, spec, now)
                    if key in events
                    else _merge_events(aggregate, EventAggregate(), spec, now)
                )
        for trait_id, trait_aggregate in state.traits.items():
            trait = plan.computed.get(trait_id)
            if trait is not None:
                traits[trait_id] = _merge_traits(
                    traits.get(trait_id) or TraitAggregate(), trait_aggregate, trait, now
                )
        for key, hashes in state.synced.items():
            into = synced.setdefault(key, {})
            for kind, values in hashes.items():
                into[kind] = sorted(set(into.get(kind, [])) | set(values))
        seen.extend(d for d in state.seen if d not in seen)
    return SegmentState(
        profileId=profile_id,
        version=states[0].version if states else 0,
        events=events,
        traits=traits,
        synced=synced,
        seen=seen[-SEEN_LIMIT:],
        segments=states[0].segments if states else [],
        nextCheck=states[0].nextCheck if states else None,
    )


def on_merge(
    survivor: SegmentState | None,
    merged: list[SegmentState],
    profile: Profile,
    catalogue: SegmentCatalogue,
    now: datetime,
) -> Decision:
    """The survivor's state once the merged profiles' states are combined into it. `changes` also
    holds an exit for each segment a merged profile was in (that profile no longer exists) and, for
    each such segment the survivor is in neither before nor after the merge, an exit of the survivor:
    the journey router moves the merged profiles' runs under the survivor (`follow_merge`), so an exit
    of the merged id alone finds nothing left to end. Only the domain knows whether the survivor
    stays in the segment, which is why this exit is decided here and not guessed by the router. Its
    audience message (no intents) deletes a segment-members item that is not there: a no-op."""
    plan = _plan(catalogue)
    base = survivor or SegmentState(profileId=profile.profileId)
    combined = _combine([base, *merged], plan, profile.profileId, now)
    decision = _decide(
        survivor,
        combined,
        profile,
        catalogue,
        now,
        "merge",
        segments=None,
        traits=None,
        audiences_all=True,
        aggregates_changed=bool(merged),
    )
    at = clock.iso(now)
    gone = [
        SegmentChange(profileId=state.profileId, segment=segment, entered=False, at=at, reason="merge")
        for state in merged
        for segment in state.segments
        if catalogue.get(segment) is not None
    ]
    # A segment the survivor was in before and not after already has its exit in decision.changes.
    survivor_in = set(base.segments) | set(decision.state.segments)
    left = list(dict.fromkeys(change.segment for change in gone if change.segment not in survivor_in))
    carried = [
        SegmentChange(
            profileId=profile.profileId,
            segment=segment,
            entered=False,
            at=at,
            reason="merge",
            merged=[c.profileId for c in gone if c.segment == segment],
        )
        for segment in left
    ]
    return Decision(
        decision.state,
        decision.write,
        [*decision.changes, *carried, *gone],
        decision.intents,
        decision.recheck_at,
    )


def _replay(profile_id: str, history: Iterable[TimelineEntry], plan: _Plan, now: datetime) -> SegmentState:
    state = SegmentState(profileId=profile_id)
    entries = [e for e in history if e.type == "track" and e.name]
    # Oldest first, so that windows trim as they would have; the result does not depend on it.
    for entry in sorted(entries, key=lambda e: e.timestamp):
        call = {"timestamp": entry.timestamp}
        at_time = _event_time(call, now)
        state, _ = _apply(
            state, plan, entry.name or "", entry.data, at_time, message_digest(entry.messageId), now
        )
    return state


def on_rebuild(
    profile: Profile,
    history: Iterable[TimelineEntry],
    previous: SegmentState | None,
    catalogue: SegmentCatalogue,
    now: datetime,
) -> Decision:
    """A profile's state rebuilt from its timeline (after an unmerge): membership and audiences are
    diffed against `previous` (that profile's state before, if any)."""
    plan = _plan(catalogue)
    rebuilt = _replay(profile.profileId, history, plan, now)
    base = previous or SegmentState(profileId=profile.profileId)
    rebuilt = rebuilt.model_copy(
        update={
            "version": base.version,
            "synced": base.synced,
            "seen": [*base.seen, *(d for d in rebuilt.seen if d not in base.seen)][-SEEN_LIMIT:],
            "segments": base.segments,
            "nextCheck": base.nextCheck,
        }
    )
    return _decide(
        previous,
        rebuilt,
        profile,
        catalogue,
        now,
        "unmerge",
        segments=None,
        traits=None,
        audiences_all=True,
        aggregates_changed=True,
    )


def erasure_messages(states: list[SegmentState], now: datetime) -> list[AudienceMessage]:
    """For erased profiles: one message per segment each was in or had synced hashes for (entered
    false when it was a member), with the removal of every hash synced for it."""
    at = clock.iso(now)
    messages: list[AudienceMessage] = []
    for state in states:
        by_segment: dict[str, list[AudienceIntent]] = {s: [] for s in state.segments}
        for key, hashes in sorted(state.synced.items()):
            for intent in _removals(key, hashes, state.profileId, at):
                by_segment.setdefault(intent.segment, []).append(intent)
        for segment, intents in by_segment.items():
            messages.append(
                AudienceMessage(
                    profileId=state.profileId,
                    segment=segment,
                    entered=False if segment in state.segments else None,
                    at=at,
                    intents=intents,
                )
            )
    return messages


def on_erasure(states: list[SegmentState], now: datetime) -> list[AudienceIntent]:
    """The removal of every hash the erased profiles had synced, from every audience."""
    return [intent for message in erasure_messages(states, now) for intent in message.intents]


def audience_messages(decision: Decision) -> list[AudienceMessage]:
    """One message per (profile, segment) that changed (membership, intents or both), in order."""
    messages: dict[tuple[str, str], AudienceMessage] = {}
    for change in decision.changes:
        messages[(change.profileId, change.segment)] = AudienceMessage(
            profileId=change.profileId, segment=change.segment, entered=change.entered, at=change.at
        )
    for intent in decision.intents:
        key = (intent.profileId, intent.segment)
        if key not in messages:
            messages[key] = AudienceMessage(profileId=intent.profileId, segment=intent.segment, at=intent.at)
        messages[key].intents.append(intent)
    return list(messages.values())


# -- the reference: membership and computed values straight from the full history ------------------


def from_scratch(
    profile: Profile, history: Iterable[TimelineEntry], catalogue: SegmentCatalogue, now: datetime
) -> tuple[set[str], dict[str, Any]]:
    """Membership and computed values computed directly over every event (no aggregates): the
    reference the incremental path is tested against. An entry's time is min(timestamp, now)."""
    events: list[tuple[str, str, str, Mapping[str, Any]]] = []  # (name, at, digest, properties)
    for entry in history:
        if entry.type == "track" and entry.name:
            at = clock.iso(_event_time({"timestamp": entry.timestamp}, now))
            events.append((entry.name, at, message_digest(entry.messageId), entry.data))

    def matching(name: str, where: Mapping[str, Condition]) -> list[tuple[str, str, Mapping[str, Any]]]:
        return [
            (at, digest, props)
            for event, at, digest, props in events
            if event == name and (not where or property_conditions_hold(where, props, {}, clock.parse(at)))
        ]

    computed: dict[str, Any] = {}
    for trait in catalogue.computed:
        rows = matching(trait.event, trait.where)
        if trait.days is not None:
            first_day = _first_day(trait, now)
            rows = [r for r in rows if r[0][:10] >= first_day]
        values = [(at, digest, _property_value(trait, props)) for at, digest, props in rows]
        if trait.property:
            values = [v for v in values if v[2][0]]
        kind = trait.aggregate
        value: Any
        if kind == "count":
            value = len(values)
        elif kind == "sum":
            value = _number(sum((Fraction(v[2][1]) for v in values), Fraction(0)))
        elif kind in ("min", "max"):
            numbers = [v[2][1] for v in values]
            value = (min if kind == "min" else max)(numbers) if numbers else None
        else:
            ordered = sorted(values, key=lambda v: (v[0], v[1]))
            pick = (ordered[0] if kind == "first" else ordered[-1]) if ordered else None
            value = None if pick is None else (pick[2][1] if trait.property else pick[0])
        if value is not None:
            computed[trait.id] = value

    cutoff_cache: dict[int, str] = {}

    def holds(node: AnyNodeType) -> bool:
        if isinstance(node, AllNode):
            return all(holds(child) for child in node.all)
        if isinstance(node, AnyNode):
            return any(holds(child) for child in node.any)
        if isinstance(node, NotNode):
            return not holds(node.not_)
        if isinstance(node, TraitsNode):
            return property_conditions_hold(node.traits, profile.traits, {}, now)
        if isinstance(node, ComputedNode):
            return all(condition_holds(c, computed.get(n), n, {}, now) for n, c in node.computed.items())
        if isinstance(node, EventNode):
            rows = matching(node.event, node.where)
            if node.within is not None:
                cutoff = cutoff_cache.setdefault(node.within, clock.iso(now - timedelta(seconds=node.within)))
                rows = [r for r in rows if r[0] > cutoff]
            if node.at_least is not None:
                return len(rows) >= node.at_least
            return len(rows) <= (node.at_most or 0)
        assert isinstance(node, NoEventSinceNode)
        lasts = [
            max((at for at, _, _ in matching(n, {})), default=None)
            for n in (node.no_event_since.event, node.no_event_since.since)
        ]
        last_event, last_since = lasts
        if last_since is None:
            return last_event is None
        return last_event is None or last_event < last_since

    return {s.id for s in catalogue.segments if holds(s.when)}, computed


# -- size ------------------------------------------------------------------------------------------

# The most a catalogue may let one profile's state reach (`state_size_bound`): the state is one
# DynamoDB item (at most 400 KB, attribute names and the keys included), written whole on each change.
STATE_SIZE_CEILING = 350_000

_ISO = 26  # a quoted clock.iso time
_NUMBER = 40  # a count, a number ≤ MAX_NUMBER, or a float's repr, with room
# An exact sum of floats: the denominator is at most 2^1074 (324 digits), the numerator at most
# (MAX_NUMBER × count) × that: ~700 characters whatever the history.
_SUM = 720
_KEPT = MAX_KEPT_VALUE_BYTES + 8
_EXTREME = len('{"at":,"id":"","value":}') + _ISO + 16 + _KEPT


def _quoted(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8"))


def _bucket_bound(trait: ComputedTrait) -> int:
    field = {"count": _NUMBER, "sum": _SUM, "min": _NUMBER, "max": _NUMBER}.get(trait.aggregate, _EXTREME)
    return len('{"count":}') + field


def computed_trait_bound(trait: ComputedTrait) -> int:
    """What one computed trait adds to `state_size_bound`: its aggregate (one bucket per UTC day of
    its window, for a windowed one) and its value."""
    bucket = _bucket_bound(trait)
    size = (
        _quoted(trait.id)
        + 2
        + (bucket if trait.days is None else len('{"days":{}}') + trait.days * (15 + bucket))
    )
    value = _KEPT if trait.aggregate in ("first", "last") else _NUMBER
    return size + _quoted(trait.id) + 2 + value  # `computed`


def state_size_bound(catalogue: SegmentCatalogue, emails: int, phones: int) -> int:
    """An upper bound of a profile's state JSON (bytes) under this catalogue, for a profile with at
    most `emails` emails and `phones` phones (identity's limits): whatever its history, because the
    aggregates are bounded by the catalogue."""
    plan = _plan(catalogue)
    size = 600  # field names, braces, profileId (≤ 64), version, nextCheck, updatedAt
    size += SEEN_LIMIT * (16 + 3)
    for spec in plan.keys.values():
        size += _quoted(spec.key) + len(':{"count":,"first":,"last":,"recent":[]},') + _NUMBER + 2 * _ISO
        size += spec.keep * (_ISO + 1)
    size += sum(computed_trait_bound(trait) for trait in catalogue.computed)
    size += sum(_quoted(s.id) + 1 for s in catalogue.segments)
    for audience in catalogue.audiences():
        key = _quoted(synced_key(audience.platform, audience.audience, audience.segment))
        size += key + len(':{"email":[],"phone":[]},') + (emails + phones) * (64 + 3)
    # The outbox (shared/segments/service.py): the newest decision's effects (at most one change per
    # segment and, per audience, a removal and an add, each naming every identifier), and older ones
    # within OUTBOX_OLDER_BYTES.
    change = len('{"profileId":"","segment":"","entered":false,"at":"","reason":"unmerge"},') + 64 + _ISO
    one = len('{"cause":"","changes":[],"intents":[],"recheckAt":""},') + 16 + _ISO
    one += sum(change + len(s.id) for s in catalogue.segments)
    intent = len('{"platform":"google","audience":"","action":"remove","segment":"","profileId":"","at":"",')
    hashed = len('{"kind":"email","sha256":""},') + 64
    for audience in catalogue.audiences():
        each = (
            intent + len(audience.audience) + len(audience.segment) + 64 + _ISO + (emails + phones) * hashed
        )
        one += 2 * (each + len('"identifiers":[]},'))
    return size + len('"outbox":[]') + one + OUTBOX_OLDER_BYTES
