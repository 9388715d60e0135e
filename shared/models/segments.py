"""Segments, computed traits and ad audiences: what an author writes (`segments/*.yaml`), validated
here, and the per-profile state the segments function keeps (one item per profile).

This module is `segments.py`, not the `segment.py` DESIGN9 names: `shared/models/segment.py` already
holds the Segment Tracking API calls that ingest validates, and the condition models below import the
journey `Condition` (shared/models/journey.py), which would add ~50 ms to ingest's cold start.

A segment's `when` is a tree of condition nodes, each written as a mapping with one key:
`all` / `any` (a list of nodes), `not` (a node), `traits` / `computed` (name → journey Condition),
`event` (a count of an event, optionally with `where`, `within`, `at_least` / `at_most`) and
`no_event_since` ({event: A, since: B}). The dumped form validates back to the same definition (the
segment catalogue ships definitions that way, shared/segments/catalogue.py).
"""

from __future__ import annotations

import builtins
import hashlib
import json
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    model_serializer,
    model_validator,
)

from shared.models.base import Model
from shared.models.journey import Condition, DurationSeconds, EventName, Where, format_duration
from shared.models.types import ProfileId

SEGMENT_ID_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
SegmentId = Annotated[str, Field(pattern=SEGMENT_ID_PATTERN)]
ComputedTraitId = Annotated[str, Field(pattern=SEGMENT_ID_PATTERN)]
AudienceName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-_]{0,99}$")]
Platform = Literal["meta", "google"]
PLATFORMS: tuple[Platform, ...] = ("meta", "google")
DAY_SECONDS = 86400
# A windowed count keeps its most recent times (at_least, or at_most + 1): bounded, so that the
# state item stays far inside DynamoDB's 400 KB.
MAX_WINDOWED_COUNT = 100
# How many applied messageIds a state remembers: a retry (SQS / EventBridge redelivery, a handler's
# own retry) comes within minutes, far fewer than 64 events later.
SEEN_LIMIT = 64


class _Strict(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _no_trigger(where: dict[str, Condition], what: str) -> dict[str, Condition]:
    for name, condition in where.items():
        if condition.op == "same_as_trigger":
            raise ValueError(f"{what} {name!r}: same_as_trigger has no trigger in a segment")
    return where


# -- condition nodes -------------------------------------------------------------------------------


class AllNode(_Strict):
    """Every child holds."""

    all: list[Node] = Field(min_length=1)


class AnyNode(_Strict):
    """At least one child holds."""

    any: list[Node] = Field(min_length=1)


class NotNode(_Strict):
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    not_: Node = Field(alias="not")


class TraitsNode(_Strict):
    """Conditions on the profile's traits, checked as a journey branch checks them."""

    traits: Where = Field(min_length=1)

    @model_validator(mode="after")
    def _no_same_as_trigger(self) -> TraitsNode:
        _no_trigger(self.traits, "trait")
        return self


class ComputedNode(_Strict):
    """Conditions on computed traits (declared in computed_traits.yaml; checked by the catalogue)."""

    computed: dict[ComputedTraitId, Condition] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_same_as_trigger(self) -> ComputedNode:
        _no_trigger(self.computed, "computed trait")
        return self


class EventNode(_Strict):
    """How many times the profile did `event` (with `where` on its properties): at least `at_least`
    (default 1) or at most `at_most` times, in the last `within` (absent: all time). An event at t
    counts while now < t + within: it leaves the window at exactly t + within."""

    event: EventName
    where: Where = Field(default_factory=dict)
    within: DurationSeconds | None = None
    at_least: int | None = Field(default=None, ge=1)
    at_most: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_bound(self) -> EventNode:
        if self.at_least is not None and self.at_most is not None:
            raise ValueError("an event condition takes at_least or at_most, not both")
        if self.at_least is None and self.at_most is None:
            object.__setattr__(self, "at_least", 1)
        if self.within is not None and self.keep > MAX_WINDOWED_COUNT:
            raise ValueError(
                f"a count within a window keeps its most recent times: at_least at most {MAX_WINDOWED_COUNT},"
                f" at_most at most {MAX_WINDOWED_COUNT - 1}"
            )
        _no_trigger(self.where, "event property")
        return self

    @property
    def key(self) -> str:
        """The aggregate this condition reads: the event name, and a digest of `where` when it has one
        (the same condition in two segments shares one aggregate)."""
        return event_key(self.event, self.where)

    @property
    def keep(self) -> int:
        """How many of the most recent times the condition needs (0 without a window)."""
        if self.within is None:
            return 0
        return self.at_least if self.at_least is not None else (self.at_most or 0) + 1


class SinceSpec(_Strict):
    event: EventName
    since: EventName


class NoEventSinceNode(_Strict):
    """No `event` at or after the last `since` (same instant counts as since); when `since` never
    happened: `event` never happened either."""

    no_event_since: SinceSpec


def event_key(event: str, where: dict[str, Condition] | None = None) -> str:
    if not where:
        return event
    written = json.dumps({name: c.model_dump(mode="json") for name, c in where.items()}, sort_keys=True)
    return f"{event}#{hashlib.sha256(written.encode()).hexdigest()[:12]}"


_NODE_CLASSES: dict[str, type[_Strict]] = {
    "all": AllNode,
    "any": AnyNode,
    "not": NotNode,
    "traits": TraitsNode,
    "computed": ComputedNode,
    "event": EventNode,
    "no_event_since": NoEventSinceNode,
}


def _node_kind(value: Any) -> str | None:
    if isinstance(value, NotNode):
        return "not"
    for kind, cls in _NODE_CLASSES.items():
        if isinstance(value, cls):
            return kind
    if isinstance(value, dict):
        if "event" in value:
            return "event"
        return next((key for key in value if key in _NODE_CLASSES), None)
    return None


def _one_node(value: Any) -> Any:
    if isinstance(value, tuple(_NODE_CLASSES.values())):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"a condition is a mapping with one of {', '.join(_NODE_CLASSES)}; got {value!r}")
    if "event" in value:  # an event count: event with where / within / at_least / at_most
        return value
    kinds = [key for key in value if key in _NODE_CLASSES]
    if len(kinds) != 1 or len(value) != 1:
        raise ValueError(
            f"a condition is a mapping with exactly one of {', '.join(_NODE_CLASSES)};"
            f" got {sorted(map(str, value))}"
        )
    return value


Node = Annotated[
    Annotated[
        Union[  # noqa: UP007 — Tag needs each member annotated inside the union
            Annotated[AllNode, Tag("all")],
            Annotated[AnyNode, Tag("any")],
            Annotated[NotNode, Tag("not")],
            Annotated[TraitsNode, Tag("traits")],
            Annotated[ComputedNode, Tag("computed")],
            Annotated[EventNode, Tag("event")],
            Annotated[NoEventSinceNode, Tag("no_event_since")],
        ],
        Discriminator(_node_kind),
    ],
    BeforeValidator(_one_node),
]
AnyNodeType = AllNode | AnyNode | NotNode | TraitsNode | ComputedNode | EventNode | NoEventSinceNode


def walk(node: AnyNodeType) -> list[AnyNodeType]:
    """The node and every node under it, depth first."""
    found: list[AnyNodeType] = [node]
    if isinstance(node, AllNode):
        for child in node.all:
            found.extend(walk(child))
    elif isinstance(node, AnyNode):
        for child in node.any:
            found.extend(walk(child))
    elif isinstance(node, NotNode):
        found.extend(walk(node.not_))
    return found


# -- definitions -----------------------------------------------------------------------------------


class AudienceSync(_Strict):
    """An ad audience kept in step with a segment's membership."""

    platform: Platform
    audience: AudienceName

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.audience}"


class SegmentDefinition(_Strict):
    id: SegmentId
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    when: Node
    audiences: list[AudienceSync] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct_audiences(self) -> SegmentDefinition:
        keys = [a.key for a in self.audiences]
        if len(keys) != len(set(keys)):
            raise ValueError(
                f"an audience is listed twice: {sorted(k for k in set(keys) if keys.count(k) > 1)}"
            )
        return self

    def nodes(self) -> list[AnyNodeType]:
        return walk(self.when)


Aggregate = Literal["count", "sum", "min", "max", "first", "last"]


def _names(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class ComputedTrait(_Strict):
    """A value computed from a profile's events: count, sum, min/max, first/last of a property (the
    first of `property`'s names present in the event; numeric for sum/min/max), over all time or
    the last `within` UTC days (today included). first/last without `property` is the event's time."""

    id: ComputedTraitId
    event: EventName
    aggregate: Aggregate
    property: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]], BeforeValidator(_names)
    ] = Field(default_factory=list)
    where: Where = Field(default_factory=dict)
    within: DurationSeconds | None = None

    @model_validator(mode="after")
    def _fits(self) -> ComputedTrait:
        if self.aggregate == "count" and self.property:
            raise ValueError("a count takes no property (it counts the events)")
        if self.aggregate in ("sum", "min", "max") and not self.property:
            raise ValueError(f"{self.aggregate} needs a property (a name or a list of names)")
        if self.within is not None and self.within % DAY_SECONDS:
            raise ValueError(
                f"within {format_duration(self.within)!r}: a computed trait's window is whole days"
            )
        _no_trigger(self.where, "event property")
        return self

    @builtins.property  # `property` is a field here
    def days(self) -> int | None:
        return None if self.within is None else self.within // DAY_SECONDS


class Audience(Model):
    """One ad audience and the segment that feeds it (what the audiences function works from)."""

    platform: Platform
    audience: AudienceName
    segment: SegmentId


# -- per-profile state -----------------------------------------------------------------------------


class _Compact(Model):
    """Dumped without empty fields (None, a zero count, empty lists and maps): a profile's state holds
    many of these, and it is one DynamoDB item."""

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {
            name: value
            for name, value in data.items()
            if not (
                value is None
                or (name == "count" and value == 0)
                or (isinstance(value, list | dict) and not value)
            )
        }


class EventAggregate(_Compact):
    """One event (with `where`) on one profile: how many, first and last time, and the most recent
    times a windowed condition needs (newest first, only those inside the longest window)."""

    count: int = 0
    first: str | None = None
    last: str | None = None
    recent: list[str] = Field(default_factory=list)


class Extreme(_Compact):
    """The first or last value of a property: at which time, and a digest of the message it came in
    (ties at the same instant go by digest, so that every order of arrival agrees). `value` is None
    when the trait is the event's time itself."""

    at: str
    id: str
    value: Any = None


class TraitBucket(_Compact):
    """A running aggregate. `sum` is an exact fraction ("n/d", or "n") so that the sum is the same
    whatever order the events (or merged profiles) came in: float addition is not associative."""

    count: int = 0
    sum: str | None = None
    min: int | float | None = None
    max: int | float | None = None
    first: Extreme | None = None
    last: Extreme | None = None


class TraitAggregate(TraitBucket):
    """All-time: the bucket's own fields. Windowed: `days` (UTC date → bucket), only days still in
    the window."""

    days: dict[str, TraitBucket] = Field(default_factory=dict)


class HashedIdentifier(Model):
    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: Literal["email", "phone"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SegmentState(Model):
    profileId: ProfileId
    version: int = 0
    events: dict[str, EventAggregate] = Field(default_factory=dict)
    traits: dict[str, TraitAggregate] = Field(default_factory=dict)
    computed: dict[str, Any] = Field(default_factory=dict)
    segments: list[str] = Field(default_factory=list)
    # "<platform>:<audience>:<segment>" -> {"email": [sha256], "phone": [sha256]}: the hashes last
    # requested ADDED (the segment is in the key so that erasure needs nothing but the state)
    synced: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    # digests (shared/segments/engine.py `message_digest`) of the last SEEN_LIMIT messages applied
    seen: list[str] = Field(default_factory=list)
    nextCheck: str | None = None
    updatedAt: str | None = None
    # The effects of the last OUTBOX_KEEP decisions this state was written with, oldest first
    # (shared/segments/service.py): carried out after the write, and again when the same cause is
    # retried, even after later events of the profile (a crash in between loses none).
    outbox: list[Outbox] = Field(default_factory=list)


class SegmentChange(Model):
    """`data` of the bus events segment.entered / segment.exited."""

    profileId: ProfileId
    segment: SegmentId
    entered: bool
    at: str
    reason: Literal["event", "time", "merge", "unmerge", "erasure"]
    # A survivor's exit on a merge: the merged profiles that were in the segment. Their runs may not
    # have moved to the survivor yet when the exit is routed (the merge is routed in parallel).
    merged: list[ProfileId] = Field(default_factory=list)


class AudienceIntent(Model):
    platform: Platform
    audience: AudienceName
    action: Literal["add", "remove"]
    segment: SegmentId
    profileId: ProfileId
    at: str
    identifiers: list[HashedIdentifier] = Field(min_length=1)


class AudienceMessage(Model):
    """One message on the audiences FIFO queue: a segment's membership change for a profile (entered
    true / false; null when only its identifiers changed) and the ad-platform requests it needs."""

    profileId: ProfileId
    segment: SegmentId
    entered: bool | None = None
    at: str
    intents: list[AudienceIntent] = Field(default_factory=list)


OUTBOX_KEEP = 4  # decisions whose effects a state keeps for a retry of their cause
OUTBOX_OLDER_BYTES = 32_000  # ...the older ones only while they fit in this (the newest always kept)


class Outbox(Model):
    """What a written decision must still make happen: its segment changes, audience intents and
    re-check, under the digest of its cause (a messageId, a re-check, a merge)."""

    cause: str
    changes: list[SegmentChange] = Field(default_factory=list)
    intents: list[AudienceIntent] = Field(default_factory=list)
    recheckAt: str | None = None


SegmentState.model_rebuild()
