"""What a resolved event, a merge or an execution's end does to the journeys (the journey catalogue).

Per `event.resolved` (a track call), in this order:
1. resume: a run of the profile parked in a `wait_for` of this event whose conditions hold is resumed
   (SendTaskSuccess) and its wait deleted. The waits are found from the data, not from the catalogue:
   the profile's active runs (one Query, `active_runs`, shared with the exits below), then their
   waits by execution (one BatchGetItem, none without an active run), kept when they await this
   event's name. So a run resumes on the event ITS definition awaits, even after a reload or a
   redeploy changed what the journey awaits now, or removed the journey; and routing an event costs
   the same with 5 journeys or 100. Both reads are strongly consistent, which the handshake with
   wait_for needs: wait_for puts its wait, then reads the timeline; identity writes the event to the
   timeline, then publishes; so one of the two sees the other (a global index, read eventually
   consistently, could miss a wait just put, and the run would take its timeout path);
2. goals: the profile's latest run entered within the goal's window before the event, not yet
   converted, converts: its conversion and revenue (`properties.revenue`, else `total`) are credited to
   the journey (held-out runs to its held-out counters) and to the last step that sent the run a
   message; reaching the goal exits the active run unless `exit_on_goal` is false;
3. exit_on: every active run whose rule holds (`same_as_trigger` against the run's stored trigger) is
   stopped and closed;
4. triggers: the trigger's `where`, the re-entry rule, the holdout (a held-out profile is recorded,
   never started), then the slot claim and the start.
A profile entering or leaving a segment (`segment.entered` / `segment.exited`) is routed the same way,
as the track call `$segment.entered` / `$segment.exited` (`segment_event`): what a journey's
`segment_entered` / `segment_exited` sugar names.
Exits come before triggers, so a journey triggered and exited by the same event restarts its run. A
run started by this very event is never converted, resumed or exited by it (a retried event).

Counters (journey-stats) are added only after the conditional write that changed the state won (run
added, run closed from active, conversion first recorded): a retried event never counts twice.

"Already in the journey?" cannot be a read followed by a write: EventBridge invokes the router in
parallel, and two `Product Added` seconds apart would both read "no" and start two runs. So each
(profile, journey) has one slot, taken by a conditional write (`RunStore.claim`) before the
execution starts: of concurrent triggers exactly one wins. The slot names the execution it is for:
- the same event retried (after a crash between the claim and the start) claims it again and starts;
- a slot whose execution has ended (exit, completion, failure) is taken over by the next trigger;
- a slot whose execution never started is being started by its own event (whose retry will start it
  if it crashed); only after `START_GRACE`, when that cannot be so any more, may another event take it.

When profiles merge, their active runs, of every journey, catalogued or not, move under the survivor
(`follow_merge`), whose events then find them and their waits (keyed by execution, they stay). When an
execution ends, Step Functions says so (`Execution Status Change`): `close_execution` closes its run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from shared import clock
from shared.journeys.conditions import property_conditions_hold
from shared.journeys.steps import JourneyWait
from shared.models.events import ProfilesMerged, ResolvedEvent
from shared.models.journey import (
    SEGMENT_ENTERED,
    SEGMENT_EXITED,
    SEGMENT_PROPERTY,
    Condition,
    EventRule,
    JourneyDefinition,
)
from shared.models.message import MessageLogEntry
from shared.models.segments import SegmentChange

# How long a claimed slot whose execution does not exist yet is left to its claimer. The claimer
# starts the execution within one router invocation (10 s timeout in infra/topology.py; a unit test
# keeps this well above it); after that the claimer is gone and another event may take the slot.
START_GRACE = timedelta(minutes=5)
# Claim attempts per trigger: a claim lost to a concurrent writer is re-decided on what it wrote.
CLAIM_ATTEMPTS = 3

ExecutionState = Literal["running", "ended", "missing"]
# Runs that are not entries of their own: moved to the survivor on a merge, or never started.
_NOT_ENTRIES = ("merged", "never_started")
# The statuses of an execution that has ended (Step Functions' `Execution Status Change`).
_ENDED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


@dataclass(frozen=True)
class Slot:
    """The (profile, journey) slot: the execution holding it, and when it was claimed."""

    execution_arn: str
    claimed_at: str


class RunStore(Protocol):
    """Run items are dicts of the table's attributes: profileId, runKey (`<journey>#<name>`),
    executionArn (absent for a held-out run), status, enteredAt, trigger (JSON of the trigger's
    properties), and once set closedAt, closedReason, convertedAt."""

    def active(self, profile_id: str, journey_id: str) -> list[dict[str, str]]: ...

    def runs(self, profile_id: str, journey_id: str) -> list[dict[str, str]]:
        """Every run of the profile in the journey, whatever its status."""
        ...

    def active_runs(self, profile_id: str) -> list[dict[str, str]]:
        """The profile's active runs in every journey (one Query, whatever the number of journeys)."""
        ...

    def add(
        self,
        profile_id: str,
        journey_id: str,
        name: str,
        execution_arn: str | None,
        entered_at: str,
        trigger: str = "{}",
        status: str = "active",
    ) -> bool:
        """Record the run unless it exists; True when this call recorded it."""
        ...

    def close(self, profile_id: str, run_key: str, status: str, at: str, reason: str | None = None) -> bool:
        """Close the run if it is active; True when this call closed it."""
        ...

    def convert(self, profile_id: str, run_key: str, at: str) -> bool:
        """Set convertedAt unless set; True when this call set it."""
        ...

    def by_execution(self, execution_arn: str) -> list[dict[str, str]]:
        """The run items of an execution (a moved run has one under each profile)."""
        ...

    def claim(
        self, profile_id: str, journey_id: str, execution_arn: str, at: str, replacing: str | None = None
    ) -> bool:
        """Take the slot, atomically, if it is free, already held by `execution_arn`, or held by
        `replacing`. False: another execution holds it."""
        ...

    def slot(self, profile_id: str, journey_id: str) -> Slot | None: ...

    def release(self, profile_id: str, journey_id: str, execution_arn: str) -> None:
        """Free the slot if `execution_arn` still holds it."""
        ...


class Executions(Protocol):
    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str | None: ...

    def state(self, execution_arn: str) -> ExecutionState: ...

    def stop(self, execution_arn: str, cause: str) -> None: ...

    def resume(self, token: str, output: dict[str, Any]) -> bool:
        """SendTaskSuccess; a token already used or timed out is no error: False then."""
        ...


class Waits(Protocol):
    def get(self, execution_arn: str) -> JourneyWait | None: ...

    def waits_of(self, execution_arns: Iterable[str]) -> list[JourneyWait]:
        """The waits of these executions that exist, read strongly consistent (one BatchGetItem per
        100 executions; none for none)."""
        ...

    def delete(self, execution_arn: str, token: str) -> None:
        """Delete the wait if it still holds `token` (a later wait_for of the run puts a new one)."""
        ...


class Stats(Protocol):
    def add(self, journey_id: str, counters: dict[str, float]) -> None: ...


class Messages(Protocol):
    def get(self, message_key: str) -> MessageLogEntry | None: ...

    def drop_deferred(self, profile_id: str, execution: str, reason: str) -> list[str]:
        """Mark the execution's messages still `deferred` dropped with `reason`; their keys."""
        ...


@dataclass(frozen=True)
class Ports:
    runs: RunStore
    executions: Executions
    waits: Waits
    stats: Stats
    messages: Messages


class SlotContendedError(Exception):
    """The slot kept changing under this trigger: raised so that the event is retried."""


# -- the journeys, as the router sees them ---------------------------------------------------------


Where = Mapping[str, Condition]


@dataclass(frozen=True)
class Rule:
    event: str
    where: Where = field(default_factory=dict)


@dataclass(frozen=True)
class GoalRule:
    event: str
    within: timedelta
    where: Where = field(default_factory=dict)
    exit_on_goal: bool = True


@dataclass(frozen=True)
class ReEntryRule:
    mode: Literal["never", "after_exit", "cap"] = "after_exit"
    max: int | None = None
    min_interval: timedelta | None = None


@dataclass(frozen=True)
class RoutedJourney:
    """What the router needs of a catalogued journey."""

    id: str
    start_arn: str  # the state machine, qualified by the alias to start when there is one
    trigger: Rule
    exit_on: tuple[Rule, ...] = ()
    goal: GoalRule | None = None
    holdout: float = 0  # percent
    re_entry: ReEntryRule = ReEntryRule()
    send_steps: tuple[str, ...] = ()  # ids of the send steps, to credit a conversion

    @classmethod
    def of(cls, definition: JourneyDefinition, start_arn: str) -> RoutedJourney:
        """From a journey's definition and the ARN to start."""
        goal = definition.goal
        re_entry = definition.re_entry
        return cls(
            id=definition.id,
            start_arn=start_arn,
            trigger=_rule(definition.trigger),
            exit_on=tuple(_rule(rule) for rule in definition.exit_on),
            goal=None
            if goal is None
            else GoalRule(
                event=goal.event,
                within=_duration(goal.within),
                where=goal.where,
                exit_on_goal=goal.exit_on_goal,
            ),
            holdout=float(definition.holdout or 0),
            re_entry=ReEntryRule(
                mode=re_entry.mode,
                max=re_entry.max,
                min_interval=None if re_entry.min_interval is None else _duration(re_entry.min_interval),
            ),
            send_steps=tuple(definition.send_step_ids()),
        )


def _rule(rule: EventRule) -> Rule:
    return Rule(event=rule.event, where=rule.where)


def _duration(value: Any) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


# -- routing ---------------------------------------------------------------------------------------


@dataclass
class Routing:
    started: list[str] = field(default_factory=list)  # execution ARNs
    exited: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)  # run keys
    held_out: list[str] = field(default_factory=list)  # run keys


def execution_name(profile_id: str, message_id: str) -> str:
    # ≤ 80 characters of [A-Za-z0-9-_], as Step Functions requires.
    return f"{profile_id[:40]}-{hashlib.sha256(message_id.encode()).hexdigest()[:24]}"


def execution_arn(start_arn: str, name: str) -> str:
    """The execution's ARN from the state machine's, alias- or version-qualified or not:
    `arn:aws:states:r:a:stateMachine:m[:live]` → `arn:aws:states:r:a:execution:m:<name>`."""
    parts = start_arn.split(":")
    if len(parts) < 7 or parts[5] != "stateMachine":
        raise ValueError(f"not a state machine ARN: {start_arn}")
    return ":".join([*parts[:5], "execution", parts[6], name])


def held_out(profile_id: str, journey_id: str, percent: float) -> bool:
    """Deterministic per profile and journey: the same profile is always held out, or never."""
    digest = hashlib.sha256(f"{profile_id}#{journey_id}#holdout".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < percent / 100


def revenue_of(properties: dict[str, Any]) -> float:
    """`properties.revenue`, else `total`; not a number counts nothing."""
    for name in ("revenue", "total"):
        value = properties.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


def segment_event(profile_id: str, segment: str, entered: bool, at: str) -> ResolvedEvent:
    """A profile entering or leaving a segment (`segment.entered` / `segment.exited` from the segments
    function) as the resolved track call journeys see: `$segment.entered` / `$segment.exited` with the
    property `segment`, at the time of the decision. Its messageId is fixed by the change, so the same
    change delivered twice is the same event (one entry, one exit); entering again later is another."""
    name = SEGMENT_ENTERED if entered else SEGMENT_EXITED
    change = "entered" if entered else "exited"
    call = {
        "type": "track",
        "event": name,
        "properties": {SEGMENT_PROPERTY: segment},
        "messageId": f"segment:{profile_id}:{segment}:{change}:{at}",
        "timestamp": at,
        "receivedAt": at,
    }
    return ResolvedEvent(profileId=profile_id, event=call)


def route(
    resolved: ResolvedEvent, journeys: Iterable[RoutedJourney], ports: Ports, now: str, start: bool = True
) -> Routing:
    """What the event does to the profile's journeys; `start=False`: to its runs only (no trigger),
    for an exit routed to the runs of a profile merged away (functions/journey_router)."""
    routing = Routing()
    call = resolved.event
    if call.get("type") != "track":
        return routing
    event = _Event(
        profile_id=resolved.profileId,
        name=str(call.get("event")),
        properties=call.get("properties") or {},
        message_id=str(call["messageId"]),
        at=str(call.get("timestamp") or now),
        now=now,
        call=call,
    )
    journeys = list(journeys)
    # One strongly consistent Query of the profile's active runs, whatever the number of journeys:
    # it serves the resume (their waits) and the exits (every journey this event exits).
    active_runs = ports.runs.active_runs(event.profile_id)
    _resume(event, active_runs, ports, routing)
    for journey in journeys:
        if journey.goal is not None and journey.goal.event == event.name:
            _reach_goal(event, journey, journey.goal, ports, routing)
    exiting = [
        (journey, rule) for journey in journeys for rule in journey.exit_on if rule.event == event.name
    ]
    if exiting:
        active: dict[str, list[dict[str, str]]] = {}
        for run in active_runs:
            if run["executionArn"] not in routing.exited:  # a goal above exited it already
                active.setdefault(run["runKey"].split("#", 1)[0], []).append(run)
        for journey, rule in exiting:
            for run in _own_runs_excluded(event, journey, active.get(journey.id, [])):
                if run["status"] == "active" and property_conditions_hold(
                    rule.where, event.properties, _trigger_of(run), event.moment
                ):
                    _exit(event.profile_id, journey.id, run, "exit_event", f"'{event.name}'", ports, now)
                    run["status"] = "exited"  # another rule of the journey naming the event: once
                    routing.exited.append(run["executionArn"])
    for journey in journeys if start else ():
        if journey.trigger.event == event.name and property_conditions_hold(
            journey.trigger.where, event.properties, event.properties, event.moment
        ):
            _enter(event, journey, ports, routing)
    return routing


def route_segment_change(
    change: SegmentChange, journeys: Iterable[RoutedJourney], ports: Ports, now: str
) -> Routing:
    """A segment change as its `$segment.*` event. A survivor leaving a segment on a merge names the
    merged profiles that were in it: their runs move to the survivor when the merge itself is routed,
    in parallel, perhaps later; so the exit is also routed to their runs where they still are."""
    resolved = segment_event(change.profileId, change.segment, change.entered, change.at)
    routing = route(resolved, journeys, ports, now)
    for merged_id in change.merged:
        moved_away = route(
            resolved.model_copy(update={"profileId": merged_id}), journeys, ports, now, start=False
        )
        routing.exited += moved_away.exited
    return routing


@dataclass(frozen=True)
class _Event:
    profile_id: str
    name: str
    properties: dict[str, Any]
    message_id: str
    at: str  # its timestamp
    now: str
    call: dict[str, Any]

    @property
    def moment(self) -> datetime:
        return clock.parse(self.at)

    @property
    def own_run(self) -> str:
        """The name of the run this event starts (or started, if it is retried)."""
        return execution_name(self.profile_id, self.message_id)


def _name_of(run: dict[str, str]) -> str:
    return run["runKey"].split("#", 1)[1]


def _journey_of(run: dict[str, str]) -> str:
    return run["runKey"].split("#", 1)[0]


def _own_runs_excluded(
    event: _Event, journey: RoutedJourney, runs: list[dict[str, str]]
) -> list[dict[str, str]]:
    return [run for run in runs if _name_of(run) != event.own_run]


def _trigger_of(run: dict[str, str]) -> dict[str, Any]:
    try:
        trigger = json.loads(run.get("trigger") or "{}")
    except json.JSONDecodeError:
        return {}
    return trigger if isinstance(trigger, dict) else {}


def _resume(event: _Event, active_runs: list[dict[str, str]], ports: Ports, routing: Routing) -> None:
    """Resume the profile's active runs parked for this event: their waits (read by execution, strongly
    consistent) say what each run's own definition awaits, whatever the catalogue says now."""
    runs = {
        run["executionArn"]: run
        for run in active_runs
        if run.get("executionArn") and _name_of(run) != event.own_run  # not the run this event started
    }
    if not runs:
        return
    for wait in ports.waits.waits_of(runs):
        run = runs.get(wait.executionArn)
        if run is None or wait.event != event.name:
            continue
        if event.moment < clock.parse(wait.since) or event.moment < clock.parse(run["enteredAt"]):
            continue  # an event from before the entry (a replay) does not count
        if property_conditions_hold(wait.conditions(), event.properties, _trigger_of(run), event.moment):
            resumed = ports.executions.resume(
                wait.token, {"event": event.name, "messageId": event.message_id, "timestamp": event.at}
            )
            ports.waits.delete(wait.executionArn, wait.token)
            if resumed:  # not when journey-steps or the same event routed at once got there first
                routing.resumed.append(wait.executionArn)


def _reach_goal(
    event: _Event, journey: RoutedJourney, goal: GoalRule, ports: Ports, routing: Routing
) -> None:
    reached = [
        run
        for run in _own_runs_excluded(event, journey, ports.runs.runs(event.profile_id, journey.id))
        if run["status"] not in _NOT_ENTRIES
        and timedelta(0) <= event.moment - clock.parse(run["enteredAt"]) <= goal.within
        and property_conditions_hold(goal.where, event.properties, _trigger_of(run), event.moment)
    ]
    # One conversion per goal event: the latest entry's (an earlier entry's was the previous goal's).
    latest = max(reached, key=lambda run: clock.parse(run["enteredAt"]), default=None)
    if latest is not None and not latest.get("convertedAt"):
        _convert(event, journey, latest, ports, routing)
    if goal.exit_on_goal:
        for run in reached:
            if run["status"] == "active":
                _exit(event.profile_id, journey.id, run, "goal", f"goal '{event.name}'", ports, event.now)
                routing.exited.append(run["executionArn"])


def _convert(
    event: _Event, journey: RoutedJourney, run: dict[str, str], ports: Ports, routing: Routing
) -> None:
    if not ports.runs.convert(event.profile_id, run["runKey"], event.at):
        return  # converted meanwhile (this event, retried)
    revenue = revenue_of(event.properties)
    if run["status"] == "held_out":
        counters: dict[str, float] = {"heldOutConversions": 1, "heldOutRevenue": revenue}
    else:
        counters = {"conversions": 1, "revenue": revenue}
        step = _last_sending_step(journey, run["executionArn"], ports.messages)
        if step is not None:
            counters |= {f"step#{step}#conversions": 1, f"step#{step}#revenue": revenue}
    ports.stats.add(journey.id, counters)
    routing.converted.append(run["runKey"])


def _last_sending_step(journey: RoutedJourney, execution: str, messages: Messages) -> str | None:
    """The send step of the execution whose message (queued or sent) is the newest."""
    sent = []
    for step in journey.send_steps:
        entry = messages.get(f"{execution}#{step}")
        if entry is not None and entry.status in ("queued", "sent"):
            sent.append((entry.createdAt, step))
    return max(sent)[1] if sent else None


def _exit(
    profile_id: str, journey_id: str, run: dict[str, str], reason: str, cause: str, ports: Ports, now: str
) -> None:
    arn = run["executionArn"]
    ports.executions.stop(arn, cause=f"{reason}: {cause} reached")
    if ports.runs.close(profile_id, run["runKey"], "exited", now, reason):
        ports.stats.add(journey_id, {f"exited#{reason}": 1})
    ports.runs.release(profile_id, journey_id, arn)


def _may_enter(journey: RoutedJourney, history: list[dict[str, str]], event: _Event) -> bool:
    """The re-entry rule (one run at a time is the slot's business, not this)."""
    entries = [run for run in history if run["status"] not in _NOT_ENTRIES]
    rule = journey.re_entry
    if rule.mode == "never":
        return not entries
    if rule.mode == "cap":
        if rule.max is not None and len(entries) >= rule.max:
            return False
        if rule.min_interval is not None and entries:
            last = max(clock.parse(run["enteredAt"]) for run in entries)
            return event.moment - last >= rule.min_interval
    return True


def _enter(event: _Event, journey: RoutedJourney, ports: Ports, routing: Routing) -> None:
    runs, executions = ports.runs, ports.executions
    history = runs.runs(event.profile_id, journey.id)
    name = event.own_run
    retried = any(_name_of(run) == name for run in history)
    if not retried and not _may_enter(journey, history, event):
        return
    trigger = json.dumps(event.properties, sort_keys=True, separators=(",", ":"))
    if held_out(event.profile_id, journey.id, journey.holdout):
        # Recorded, never started: their conversions measure what the journey adds.
        if runs.add(event.profile_id, journey.id, name, None, event.at, trigger, status="held_out"):
            ports.stats.add(journey.id, {"heldOut": 1})
            routing.held_out.append(f"{journey.id}#{name}")
        return
    if _running_run(event.profile_id, journey, ports, event.now):
        return
    arn = execution_arn(journey.start_arn, name)
    if not _claim(event.profile_id, journey.id, arn, ports, event.now):
        return  # another run holds the slot: the profile is in the journey
    # Recorded before it starts, so an exit arriving at once always finds the run to stop.
    if runs.add(event.profile_id, journey.id, name, arn, event.at, trigger):
        ports.stats.add(journey.id, {"entered": 1})
    payload = {
        "journey": journey.id,
        "profileId": event.profile_id,
        "enteredAt": event.at,
        "trigger": {k: event.call.get(k) for k in ("event", "properties", "messageId", "timestamp")},
    }
    if executions.start(journey.start_arn, name, payload):
        routing.started.append(arn)


def _running_run(profile_id: str, journey: RoutedJourney, ports: Ports, now: str) -> bool:
    """Whether an active run of the journey is running; runs found ended (their status change not
    handled yet) are closed. (Runs recorded before slots existed have none: this keeps them counting.)"""
    running = False
    for run in ports.runs.active(profile_id, journey.id):
        state = ports.executions.state(run["executionArn"])
        if state == "running":
            running = True
        elif state == "ended" and ports.runs.close(profile_id, run["runKey"], "completed", now, "completed"):
            ports.stats.add(journey.id, {"exited#completed": 1})
        # "missing": being started by its own event; the slot decides.
    return running


def _claim(profile_id: str, journey_id: str, arn: str, ports: Ports, now: str) -> bool:
    """Take the journey's slot for execution `arn`: True when it is ours, False when another run
    holds it. A holder that ended, or that never started within `START_GRACE`, is taken over."""
    runs, executions = ports.runs, ports.executions
    for _ in range(CLAIM_ATTEMPTS):
        if runs.claim(profile_id, journey_id, arn, now):
            return True  # free, or ours already (this event, retried)
        holder = runs.slot(profile_id, journey_id)
        if holder is None:
            continue  # released meanwhile: claim again
        if _holds(holder, executions, now):
            return False
        if runs.claim(profile_id, journey_id, arn, now, replacing=holder.execution_arn):
            _close_run_of(profile_id, journey_id, holder, ports, now)
            return True
        # Someone else replaced the holder first: decide again on what they wrote.
    raise SlotContendedError(f"the {journey_id} slot of a profile kept changing")


def _holds(holder: Slot, executions: Executions, now: str) -> bool:
    """Whether the slot's holder is (or may still become) a running execution."""
    state = executions.state(holder.execution_arn)
    if state == "running":
        return True
    if state == "missing":
        return clock.parse(now) - clock.parse(holder.claimed_at) < START_GRACE
    return False


def _close_run_of(profile_id: str, journey_id: str, holder: Slot, ports: Ports, now: str) -> None:
    """Close the run of a holder that was taken over (its execution ended or never started)."""
    for run in ports.runs.active(profile_id, journey_id):
        if run["executionArn"] == holder.execution_arn:
            ended = ports.executions.state(holder.execution_arn) == "ended"
            reason = "completed" if ended else "never_started"
            if ports.runs.close(profile_id, run["runKey"], reason, now, reason):
                ports.stats.add(journey_id, {f"exited#{reason}": 1})


def follow_merge(merged: ProfilesMerged, ports: Ports, now: str) -> list[str]:
    """Journeys in flight for merged profiles continue on the survivor: their active runs, of every
    journey whether catalogued or not, move under it, so that the survivor's events (under any of its
    identifiers) find them, to exit or to resume them (a run's wait is keyed by its execution: it does
    not move). A journey the survivor is already in keeps only the survivor's run: one run per profile
    and journey (the duplicate is stopped; its wait goes when its end is routed). A moved run claims
    the survivor's slot, so a trigger racing the merge cannot add a second run."""
    runs, executions = ports.runs, ports.executions
    survivors_runs: dict[str, set[str]] = {}  # running executions of the survivor, by journey
    for run in runs.active_runs(merged.survivor):
        if run.get("executionArn") and executions.state(run["executionArn"]) == "running":
            survivors_runs.setdefault(_journey_of(run), set()).add(run["executionArn"])
    moved = []
    for profile_id in merged.merged:
        for run in runs.active_runs(profile_id):
            arn, journey_id = run.get("executionArn"), _journey_of(run)
            if not arn:
                continue
            # The survivor is in the journey if another of its runs is running (runs recorded before
            # slots existed hold none) or its slot is held; this run itself may already be under it
            # (moved, then the router died before closing it here: a retry).
            if not survivors_runs.get(journey_id, set()) - {arn} and _claim(
                merged.survivor, journey_id, arn, ports, now
            ):
                runs.add(
                    merged.survivor,
                    journey_id,
                    _name_of(run),
                    arn,
                    run["enteredAt"],
                    run.get("trigger") or "{}",
                )
                runs.close(profile_id, run["runKey"], "merged", now, "merged")
                moved.append(arn)
            else:
                executions.stop(arn, cause=f"merged into {merged.survivor}, already in the journey")
                if runs.close(profile_id, run["runKey"], "merged_duplicate", now, "merged_duplicate"):
                    ports.stats.add(journey_id, {"exited#merged_duplicate": 1})
            runs.release(profile_id, journey_id, arn)
    return moved


# -- executions ending -----------------------------------------------------------------------------


def ending(status: str, output: str | None) -> tuple[str, str] | None:
    """(run status, exit reason) for an execution that ended with `status`; None when there is
    nothing to close (still running, or stopped: whoever stopped it closed its run)."""
    if status == "SUCCEEDED":
        try:
            result = json.loads(output or "{}")
        except json.JSONDecodeError:
            result = {}
        if isinstance(result, dict) and result.get("exit") is not None:
            return "exited", "exit_step"
        return "completed", "completed"
    if status in ("FAILED", "TIMED_OUT"):
        return "failed", "failed"
    return None


# The reason a deferred send is dropped when its run ends before the deferral does.
RUN_ENDED = "run_ended"


def close_execution(execution: str, status: str, output: str | None, ports: Ports, now: str) -> list[str]:
    """An execution ended (Step Functions' `Execution Status Change`): close its active run(s), count
    the exit, free the slot. Returns the run keys closed here."""
    if status in _ENDED:
        # Whatever ended it (a timed-out wait_for run to its end, an exit, a goal, an erasure, a
        # merge), its parked wait is spent: without this the item, with its token and the trigger's
        # values, stayed in the journey-waits table for good.
        wait = ports.waits.get(execution)
        if wait is not None:
            ports.waits.delete(execution, wait.token)
    runs = ports.runs.by_execution(execution)
    if status in _ENDED:
        # A send deferred to the morning (quiet hours, a cap) whose run ended while it waited (a
        # purchase at night, an exit, an erasure) is never sent: its log entry says so, instead of
        # staying `deferred` past its time.
        for run in runs:
            journey_id = run["runKey"].split("#", 1)[0]
            for key in ports.messages.drop_deferred(run["profileId"], execution, RUN_ENDED):
                ports.stats.add(journey_id, {f"step#{key.rsplit('#', 1)[1]}#dropped#{RUN_ENDED}": 1})
    outcome = ending(status, output)
    if outcome is None:
        return []
    run_status, reason = outcome
    closed = []
    for run in runs:
        if run["status"] != "active":
            continue
        journey_id = run["runKey"].split("#", 1)[0]
        if ports.runs.close(run["profileId"], run["runKey"], run_status, now, reason):
            ports.stats.add(journey_id, {f"exited#{reason}": 1})
            closed.append(run["runKey"])
        ports.runs.release(run["profileId"], journey_id, execution)
    return closed
