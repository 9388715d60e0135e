"""Which journeys a resolved event starts or ends.

A goal event stops every active run of its journey for the profile; when profiles merge, their runs
move under the survivor (`follow_merge`). A trigger starts a run unless the profile is already in
that journey: one run per profile and journey at a time. Execution names are derived from the
profile and the triggering event, so the same event seen twice starts nothing new.

"Already in the journey?" cannot be a read followed by a write: EventBridge invokes the router in
parallel, and two `Product Added` seconds apart would both read "no" and start two runs. So each
(profile, journey) has one slot, taken by a conditional write (`RunStore.claim`) before the
execution starts: of concurrent triggers exactly one wins. The slot names the execution it is for:
- the same event retried (after a crash between the claim and the start) claims it again and starts;
- a slot whose execution has ended (goal, completion, failure) is taken over by the next trigger;
- a slot whose execution never started is being started by its own event (whose retry will start it
  if it crashed); only after `START_GRACE`, when that cannot be so any more, may another event take it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, Protocol

from shared import clock
from shared.config import JourneyRef
from shared.models.events import ProfilesMerged, ResolvedEvent

# How long a claimed slot whose execution does not exist yet is left to its claimer. The claimer
# starts the execution within one router invocation (10 s timeout in infra/topology.py; a unit test
# keeps this well above it); after that the claimer is gone and another event may take the slot.
START_GRACE = timedelta(minutes=5)
# Claim attempts per trigger: a claim lost to a concurrent writer is re-decided on what it wrote.
CLAIM_ATTEMPTS = 3

ExecutionState = Literal["running", "ended", "missing"]


@dataclass(frozen=True)
class Slot:
    """The (profile, journey) slot: the execution holding it, and when it was claimed."""

    execution_arn: str
    claimed_at: str


class RunStore(Protocol):
    def active(self, profile_id: str, journey_id: str) -> list[dict[str, str]]: ...

    def add(
        self, profile_id: str, journey_id: str, name: str, execution_arn: str, entered_at: str
    ) -> None: ...

    def close(self, profile_id: str, run_key: str, status: str, at: str) -> None: ...

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


class SlotContendedError(Exception):
    """The slot kept changing under this trigger: raised so that the event is retried."""


@dataclass
class Routing:
    started: list[str] = field(default_factory=list)  # execution ARNs
    exited: list[str] = field(default_factory=list)


def execution_name(profile_id: str, message_id: str) -> str:
    # ≤ 80 characters of [A-Za-z0-9-_], as Step Functions requires.
    return f"{profile_id[:40]}-{hashlib.sha256(message_id.encode()).hexdigest()[:24]}"


def execution_arn(state_machine_arn: str, name: str) -> str:
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def route(
    resolved: ResolvedEvent, journeys: list[JourneyRef], runs: RunStore, executions: Executions, now: str
) -> Routing:
    routing = Routing()
    call = resolved.event
    if call.get("type") != "track":
        return routing
    name = call.get("event")
    profile_id = resolved.profileId
    for journey in journeys:
        if journey.goal == name:
            for run in runs.active(profile_id, journey.id):
                executions.stop(run["executionArn"], cause=f"goal '{name}' reached")
                runs.close(profile_id, run["runKey"], "goal_reached", now)
                runs.release(profile_id, journey.id, run["executionArn"])
                routing.exited.append(run["executionArn"])
    for journey in journeys:
        if journey.trigger != name or _running_run(profile_id, journey, runs, executions, now):
            continue
        run_name = execution_name(profile_id, str(call["messageId"]))
        arn = execution_arn(journey.state_machine_arn, run_name)
        if not _claim(profile_id, journey, arn, runs, executions, now):
            continue  # another run holds the slot: the profile is in the journey
        # Recorded before it starts, so a goal arriving at once always finds the run to stop.
        runs.add(profile_id, journey.id, run_name, arn, str(call["timestamp"]))
        payload = {
            "profileId": profile_id,
            "enteredAt": call["timestamp"],
            "trigger": {k: call.get(k) for k in ("event", "properties", "messageId", "timestamp")},
        }
        if executions.start(journey.state_machine_arn, run_name, payload):
            routing.started.append(arn)
    return routing


def _running_run(
    profile_id: str, journey: JourneyRef, runs: RunStore, executions: Executions, now: str
) -> bool:
    """Whether an active run of the journey is running; runs found ended are closed. (Runs recorded
    before slots existed have none: this keeps them counting.)"""
    running = False
    for run in runs.active(profile_id, journey.id):
        state = executions.state(run["executionArn"])
        if state == "running":
            running = True
        elif state == "ended":
            runs.close(profile_id, run["runKey"], "completed", now)
        # "missing": being started by its own event; the slot decides.
    return running


def _claim(
    profile_id: str, journey: JourneyRef, arn: str, runs: RunStore, executions: Executions, now: str
) -> bool:
    """Take the journey's slot for execution `arn`: True when it is ours, False when another run
    holds it. A holder that ended, or that never started within `START_GRACE`, is taken over."""
    for _ in range(CLAIM_ATTEMPTS):
        if runs.claim(profile_id, journey.id, arn, now):
            return True  # free, or ours already (this event, retried)
        holder = runs.slot(profile_id, journey.id)
        if holder is None:
            continue  # released meanwhile: claim again
        if _holds(holder, executions, now):
            return False
        if runs.claim(profile_id, journey.id, arn, now, replacing=holder.execution_arn):
            _close_run_of(profile_id, journey, holder, runs, executions, now)
            return True
        # Someone else replaced the holder first: decide again on what they wrote.
    raise SlotContendedError(f"the {journey.id} slot of a profile kept changing")


def _holds(holder: Slot, executions: Executions, now: str) -> bool:
    """Whether the slot's holder is (or may still become) a running execution."""
    state = executions.state(holder.execution_arn)
    if state == "running":
        return True
    if state == "missing":
        return clock.parse(now) - clock.parse(holder.claimed_at) < START_GRACE
    return False


def _close_run_of(
    profile_id: str, journey: JourneyRef, holder: Slot, runs: RunStore, executions: Executions, now: str
) -> None:
    """Close the run of a holder that was taken over (its execution ended or never started)."""
    for run in runs.active(profile_id, journey.id):
        if run["executionArn"] == holder.execution_arn:
            ended = executions.state(holder.execution_arn) == "ended"
            runs.close(profile_id, run["runKey"], "completed" if ended else "never_started", now)


def follow_merge(
    merged: ProfilesMerged, journeys: list[JourneyRef], runs: RunStore, executions: Executions, now: str
) -> list[str]:
    """Journeys in flight for merged profiles continue on the survivor: their runs move under it,
    so that the survivor's goal event (under any of its identifiers) finds and exits them. A journey
    the survivor is already in keeps only the survivor's run: one run per profile and journey. A
    moved run claims the survivor's slot, so a trigger racing the merge cannot add a second run."""
    moved = []
    for journey in journeys:
        survivors_runs = {
            run["executionArn"]
            for run in runs.active(merged.survivor, journey.id)
            if executions.state(run["executionArn"]) == "running"
        }
        for profile_id in merged.merged:
            for run in runs.active(profile_id, journey.id):
                arn = run["executionArn"]
                # The survivor is in the journey if another of its runs is running (runs recorded
                # before slots existed hold none) or its slot is held; this run itself may already
                # be under it (moved, then the router died before closing it here: a retry).
                if not survivors_runs - {arn} and _claim(
                    merged.survivor, journey, arn, runs, executions, now
                ):
                    name = run["runKey"].split("#", 1)[1]
                    runs.add(merged.survivor, journey.id, name, arn, run["enteredAt"])
                    runs.close(profile_id, run["runKey"], "merged", now)
                    moved.append(arn)
                else:
                    executions.stop(arn, cause=f"merged into {merged.survivor}, already in the journey")
                    runs.close(profile_id, run["runKey"], "merged_duplicate", now)
                runs.release(profile_id, journey.id, arn)
    return moved
