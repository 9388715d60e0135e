"""The journey steps a state machine cannot take alone: the `journey-steps` function runs them.

One action per step type (`ACTIONS`), each given the Task payload the compiler emits
(shared/journeys/compiler.py: `action`, `journey`, `step`, `spec`, `profileId`, `enteredAt`,
`trigger`, `executionId`, and for wait_for the task `token`) and the ports it needs:

- `wait_until` → `{"until": <ISO-8601 UTC>}`, never earlier than now (a Wait state's TimestampPath).
  Local time is the recipient's: the profile's `timezone` trait, else the zone of its latest event
  (`Profile.timezone`, recorded by identity), else the deployment's DEFAULT_TIMEZONE. zoneinfo makes
  it DST-correct: "10:00" is 10:00 on the wall clock whether that day is CET or CEST.
- `wait_for` parks the execution on its task token and must never miss the awaited event: it puts the
  wait (keyed by the execution: token and concrete conditions) FIRST, then looks for a matching event
  since entry in the live profile's timeline (merged-from profiles included), read strongly
  consistent. The router does the mirror image: identity writes the event to the timeline before it
  publishes `event.resolved`, and the router then reads the waits of the profile's active runs, by
  key and strongly consistent too (no index, which would be read eventually consistently and could
  miss a wait just put). Whichever order the two run in, one of them sees the other; both may, and
  then the second SendTaskSuccess fails harmlessly (the token is spent).
- `branch` → `{"path": "case-<i>" | "else"}`: the first case whose conditions hold on the live
  profile's traits, the trigger's properties, this run's messages, and the profile's segments and
  computed traits (its segment state, read only when a case names them).
- `split` → `{"path": "path-<i>"}`: sha256(profileId#journey#step) as a uniform draw in [0, 1), placed
  on the weights; so one profile always takes the same path of a step.
- `update` builds the identify ingest would have put on the bus and applies it itself, through identity's
  own resolver, before it returns: the next step (a branch on the trait it set) reads its own write.
  It then publishes what identity publishes for any identify (`event.resolved`), so other journeys,
  segments and the Profile API see the change. A retried step is the same call (same messageId).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from pydantic import Field

from shared import clock
from shared.identity.resolver import Resolution, resolved_events
from shared.journeys.conditions import (
    Outcome,
    SegmentView,
    case_holds,
    concrete,
    property_conditions_hold,
)
from shared.models.base import Model
from shared.models.events import BusEvent
from shared.models.journey import WEEKDAYS, Condition, SplitSpec, UpdateSpec, WaitForSpec, WaitUntilSpec, When
from shared.models.message import MessageLogEntry
from shared.models.profile import Profile, TimelineEntry
from shared.models.segments import SegmentState
from shared.models.types import ProfileId, iana_timezone

TIMEZONE_TRAIT = "timezone"
# The identifier an update's identify names, strongest first: the call fields or traits identity
# reads it from (shared/identity/identifiers.py).
UPDATE_IDENTIFIERS = ("user_id", "anonymous_id", "email", "phone", "device_id", "device_token")


# -- what comes in -----------------------------------------------------------------------------------


class StepRequest(Model):
    """The Task payload of a journey-steps state (DESIGN: `Parameters.Payload`)."""

    action: str
    journey: str
    step: str
    spec: dict[str, Any] = Field(default_factory=dict)
    profileId: ProfileId
    enteredAt: str
    trigger: dict[str, Any] = Field(default_factory=dict)
    executionId: str
    token: str | None = None  # wait_for only: `$$.Task.Token`

    @property
    def trigger_properties(self) -> dict[str, Any]:
        properties = self.trigger.get("properties")
        return properties if isinstance(properties, dict) else {}


class JourneyWait(Model):
    """An execution parked in a wait_for step (one item per execution in journey-waits): its token,
    and the event it waits for with CONCRETE conditions (same_as_trigger already replaced by the
    trigger's value), so that the router matches without the run's trigger."""

    executionArn: str
    journey: str
    step: str
    token: str
    event: str
    where: dict[str, Any]  # JSON of {property: condition}, as written (`{"cart_id": {"equals": "c-1"}}`)
    since: str  # the run's enteredAt: events from then on count

    def conditions(self) -> dict[str, Condition]:
        return {name: Condition.model_validate(condition) for name, condition in self.where.items()}


# -- ports ---------------------------------------------------------------------------------------------


class Profiles(Protocol):
    def profile(self, profile_id: str) -> Profile | None:
        """The live profile `profile_id` resolves to (following merges), read strongly consistent."""
        ...

    def timeline_since(self, profile_ids: Iterable[str], since: str) -> list[TimelineEntry]:
        """Every timeline entry of these profiles at or after `since`, read strongly consistent."""
        ...


class Waits(Protocol):
    def put(self, wait: JourneyWait) -> None: ...

    def delete(self, execution_arn: str, token: str) -> None:
        """Forget the wait if it still holds `token` (a later wait_for of the run may have replaced it)."""
        ...


class Tasks(Protocol):
    def resume(self, token: str) -> bool:
        """SendTaskSuccess; False when the token is spent or timed out (resumed already: ignored)."""
        ...


class Messages(Protocol):
    def get(self, message_key: str) -> MessageLogEntry | None: ...


class Identity(Protocol):
    def __call__(self, call: dict[str, Any]) -> Resolution:
        """Resolve an identify onto its profile, as the identity function does (committed on return)."""
        ...


class Publisher(Protocol):
    def publish(self, events: Sequence[BusEvent]) -> None: ...


class SegmentStates(Protocol):
    def segment_state(self, profile_id: str) -> SegmentState | None:
        """The profile's segment state (membership, computed traits), read strongly consistent;
        None when it has none."""
        ...


@dataclass(frozen=True)
class StepPorts:
    profiles: Profiles
    waits: Waits
    tasks: Tasks
    messages: Messages
    publisher: Publisher
    identity: Identity
    segments: SegmentStates
    default_timezone: str


class UnknownActionError(Exception):
    """The payload names an action no step type has (a state machine compiled by another version)."""


# -- wait_until ----------------------------------------------------------------------------------------


def known_zone(profile: Profile | None) -> ZoneInfo | None:
    """The `timezone` trait, else the latest event's zone (None: neither is a known IANA zone)."""
    for candidate in (
        profile.traits.get(TIMEZONE_TRAIT) if profile else None,
        profile.timezone if profile else None,
    ):
        name = iana_timezone(candidate)
        if name:
            return ZoneInfo(name)
    return None


def recipient_zone(profile: Profile | None, default: str) -> ZoneInfo:
    """The `timezone` trait, else the latest event's zone, else the deployment's default."""
    return known_zone(profile) or ZoneInfo(default)


def wall_time_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in `zone` as UTC. A time in a spring-forward gap (02:30 that day does not
    exist) comes out shifted by the gap (03:30), and an ambiguous one (fall back) is its first
    occurrence: zoneinfo's fold=0, which is what people mean by "at 01:30"."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


_utc = wall_time_utc


def _time_of_day(text: str) -> time:
    return time.fromisoformat(text)


def _date_trait(value: object, zone: ZoneInfo) -> datetime | None:
    """A date trait as local wall-clock time: an ISO date (midnight local), an ISO date-time (an
    offset-less one is UTC, as every time Continuum keeps), or Unix epoch seconds."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str) and len(value.strip()) == 10:
            return datetime.fromisoformat(value.strip())  # a date: midnight on the local wall clock
        elif isinstance(value, str):
            moment = clock.parse(value.strip())
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return moment.astimezone(zone).replace(tzinfo=None)


def wait_until(request: StepRequest, ports: StepPorts) -> dict[str, Any]:
    spec = WaitUntilSpec.model_validate(request.spec)
    profile = ports.profiles.profile(request.profileId)
    zone = recipient_zone(profile, ports.default_timezone)
    now = clock.now()
    if spec.trait is not None:
        wall = _date_trait(profile.traits.get(spec.trait) if profile else None, zone)
        if wall is None:  # no such trait, or not a date: nothing to wait for
            return {"until": clock.iso(now), "reason": "trait_not_a_date"}
        wall += timedelta(seconds=spec.offset or 0)  # on the wall clock: "3 days before" keeps the hour
        if spec.time is not None:
            wall = datetime.combine(wall.date(), _time_of_day(spec.time))
        return {"until": clock.iso(max(_utc(wall, zone), now))}

    assert spec.time is not None  # the model requires a time without a trait
    allowed = {WEEKDAYS.index(day) for day in spec.weekdays or WEEKDAYS}
    entered = clock.parse(request.enteredAt).astimezone(zone).replace(tzinfo=None)
    start = entered + timedelta(days=spec.days_after_entry or 0)
    at = _time_of_day(spec.time)
    day = start.date()
    # At most a week on: some day of the next seven has an allowed weekday.
    for _ in range(8):
        candidate = datetime.combine(day, at)
        if candidate >= entered and candidate.weekday() in allowed:
            return {"until": clock.iso(max(_utc(candidate, zone), now))}
        day += timedelta(days=1)
    raise AssertionError("no allowed weekday within eight days")  # weekdays is never empty


# -- wait_for ------------------------------------------------------------------------------------------


def live_profile_ids(profile: Profile) -> list[str]:
    """The live profile and every profile merged into it. `mergedFrom` is already transitive: a merge
    adds the merged profile's own `mergedFrom` (shared/identity/resolver.py `merge_into`)."""
    return list(dict.fromkeys([profile.profileId, *profile.mergedFrom]))


def awaited(wait: JourneyWait, entry: TimelineEntry, trigger_message_id: str | None = None) -> bool:
    """Whether a timeline entry is the event the wait is for: that track event, at or after entry,
    its properties meeting the wait's concrete conditions (and not the trigger itself)."""
    return (
        entry.type == "track"
        and entry.name == wait.event
        and entry.timestamp >= wait.since
        and entry.messageId != trigger_message_id
        # Concrete conditions need no trigger; `now` for a before/after "now" is the clock's.
        and property_conditions_hold(wait.conditions(), entry.data, {}, clock.now())
    )


def wait_for(request: StepRequest, ports: StepPorts) -> dict[str, Any]:
    if not request.token:
        raise ValueError("a wait_for step needs its task token (the state must be .waitForTaskToken)")
    spec = WaitForSpec.model_validate(request.spec)
    wait = JourneyWait(
        executionArn=request.executionId,
        journey=request.journey,
        step=request.step,
        token=request.token,
        event=spec.event,
        where={
            name: condition.model_dump(mode="json")
            for name, condition in concrete(spec.where, request.trigger_properties).items()
        },
        since=request.enteredAt,
    )
    ports.waits.put(wait)  # first: from here on the router sees it (see the module's docstring)
    profile = ports.profiles.profile(request.profileId)
    if profile is None:  # erased meanwhile: the router stops the run; the timeout ends it otherwise
        return {"resumed": False}
    trigger_message_id = request.trigger.get("messageId")
    entries = ports.profiles.timeline_since(live_profile_ids(profile), request.enteredAt)
    if not any(awaited(wait, entry, trigger_message_id) for entry in entries):
        return {"resumed": False}
    ports.tasks.resume(wait.token)
    ports.waits.delete(wait.executionArn, wait.token)
    return {"resumed": True}


# -- branch and split ----------------------------------------------------------------------------------


def message_key(execution_id: str, step_id: str) -> str:
    """The message log's key of a send step of this run (shared/models/message.py SendRequest)."""
    return f"{execution_id}#{step_id}"


def outcomes(request: StepRequest, cases: Iterable[When], messages: Messages) -> dict[str, Outcome]:
    """What this run's send steps named in the cases did: queued or sent → `sent`, dropped →
    `dropped` (one GetItem per step named; a step that has not run has no outcome)."""
    named = {
        step_id
        for when in cases
        if when.journey is not None
        for step_id in (when.journey.sent, when.journey.dropped)
        if step_id is not None
    }
    found: dict[str, Outcome] = {}
    for step_id in sorted(named):
        entry = messages.get(message_key(request.executionId, step_id))
        if entry is not None:
            found[step_id] = "dropped" if entry.status == "dropped" else "sent"
    return found


def segment_view(profile: Profile | None, cases: Iterable[When], states: SegmentStates) -> SegmentView | None:
    """The live profile's segments and computed traits, read (one GetItem) only when a case needs them.
    The state item is the live profile's: the segments function folds a merged profile's into it."""
    if profile is None or not any(when.reads_segment_state for when in cases):
        return None
    state = states.segment_state(profile.profileId)
    if state is None:
        return SegmentView()
    return SegmentView(members=frozenset(state.segments), computed=state.computed)


def branch(request: StepRequest, ports: StepPorts) -> dict[str, Any]:
    cases = [When.model_validate(case["when"]) for case in request.spec.get("cases", [])]
    profile = ports.profiles.profile(request.profileId)
    traits = profile.traits if profile else {}
    done = outcomes(request, cases, ports.messages)
    segments = segment_view(profile, cases, ports.segments)
    now = clock.now()
    for index, when in enumerate(cases):
        if case_holds(when, traits, request.trigger_properties, done, now, segments):
            return {"path": f"case-{index}"}
    return {"path": "else"}


def draw(profile_id: str, journey_id: str, step_id: str) -> float:
    """A uniform number in [0, 1) fixed by the profile, the journey and the step."""
    digest = hashlib.sha256(f"{profile_id}#{journey_id}#{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick_path(weights: Sequence[float], point: float) -> int:
    """The path whose share of the weights' total holds `point` (in [0, 1))."""
    # Scaled by the largest first: weights near the float maximum would add up to infinity.
    largest = max(weights)
    shares = [weight / largest for weight in weights]
    total = sum(shares)
    edge = 0.0
    for index, share in enumerate(shares):
        edge += share / total
        if point < edge:
            return index
    return len(weights) - 1  # `point` past the last edge only by rounding


def split(request: StepRequest, ports: StepPorts) -> dict[str, Any]:
    spec = SplitSpec.model_validate(request.spec)
    point = draw(request.profileId, request.journey, request.step)
    return {"path": f"path-{pick_path([path.weight for path in spec.paths], point)}"}


# -- update ----------------------------------------------------------------------------------------------


def update_message_id(execution_id: str, step_id: str) -> str:
    """The identify's messageId: one per execution and step, so a retried step is the same call."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"continuum:journey:{execution_id}#{step_id}"))


def identify_call(
    profile: Profile, spec: UpdateSpec, message_id: str, at: str, context: dict[str, Any]
) -> dict[str, Any] | None:
    """The identify an update publishes: one of the profile's identifiers (strongest first) and the
    traits, unset ones as null. None when the profile has no identifier an identify can carry."""
    traits: dict[str, Any] = {**spec.set, **dict.fromkeys(spec.unset)}
    call: dict[str, Any] = {"type": "identify", "messageId": message_id, "timestamp": at, "receivedAt": at}
    for kind in UPDATE_IDENTIFIERS:
        values = profile.values_of(kind)
        if not values:
            continue
        value = values[0]
        if kind == "user_id":
            call["userId"] = value
        elif kind == "anonymous_id":
            call["anonymousId"] = value
        elif kind in ("email", "phone"):
            traits = {kind: value, **traits}
        else:
            context = {**context, "device": {kind.removeprefix("device_"): value}}
        return {**call, "traits": traits, "context": context}
    return None


def update(request: StepRequest, ports: StepPorts) -> dict[str, Any]:
    spec = UpdateSpec.model_validate(request.spec)
    profile = ports.profiles.profile(request.profileId)
    if profile is None:
        return {"published": False, "reason": "profile_not_found"}
    message_id = update_message_id(request.executionId, request.step)
    at = clock.iso(clock.now())
    origin = {"journey": {"id": request.journey, "step": request.step, "executionId": request.executionId}}
    call = identify_call(profile, spec, message_id, at, origin)
    if call is None:
        return {"published": False, "reason": "no_identifier"}
    # Applied here, not left to the identity function behind the bus: the branch after this step
    # must see the trait (an asynchronous identify raced it and lost, in CI).
    resolution = ports.identity(call)
    events = resolved_events(call, resolution, message_id)
    if not events:
        return {"published": False, "reason": "not_resolved"}
    ports.publisher.publish(events)
    return {"published": True}


# -- the registry ----------------------------------------------------------------------------------------

Action = Callable[[StepRequest, StepPorts], dict[str, Any]]
ACTIONS: dict[str, Action] = {
    "wait_until": wait_until,
    "wait_for": wait_for,
    "branch": branch,
    "split": split,
    "update": update,
}


def run_step(request: StepRequest, ports: StepPorts) -> dict[str, Any]:
    action = ACTIONS.get(request.action)
    if action is None:
        raise UnknownActionError(f"no step action {request.action!r}; known: {sorted(ACTIONS)}")
    return action(request, ports)
