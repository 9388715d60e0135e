"""Which journeys a resolved event starts or ends.

A goal event stops every active run of its journey for the profile; when profiles merge, their runs
move under the survivor (`follow_merge`). A trigger starts a run unless the profile is already in
that journey: one run per profile and journey at a time. Execution names are derived from the
profile and the triggering event, so the same event seen twice starts nothing new.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.config import JourneyRef
from shared.models.events import ProfilesMerged, ResolvedEvent


class RunStore(Protocol):
    def active(self, profile_id: str, journey_id: str) -> list[dict[str, str]]: ...

    def add(
        self, profile_id: str, journey_id: str, name: str, execution_arn: str, entered_at: str
    ) -> None: ...

    def close(self, profile_id: str, run_key: str, status: str, at: str) -> None: ...


class Executions(Protocol):
    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str | None: ...

    def is_running(self, execution_arn: str) -> bool: ...

    def stop(self, execution_arn: str, cause: str) -> None: ...


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
    for journey in journeys:
        if journey.goal == name:
            for run in runs.active(resolved.profileId, journey.id):
                executions.stop(run["executionArn"], cause=f"goal '{name}' reached")
                runs.close(resolved.profileId, run["runKey"], "goal_reached", now)
                routing.exited.append(run["executionArn"])
    for journey in journeys:
        if journey.trigger == name and not _in_journey(resolved, journey, runs, executions, now):
            run_name = execution_name(resolved.profileId, str(call["messageId"]))
            arn = execution_arn(journey.state_machine_arn, run_name)
            # Recorded before it starts, so a goal arriving at once always finds the run to stop.
            runs.add(resolved.profileId, journey.id, run_name, arn, str(call["timestamp"]))
            payload = {
                "profileId": resolved.profileId,
                "enteredAt": call["timestamp"],
                "trigger": {k: call.get(k) for k in ("event", "properties", "messageId", "timestamp")},
            }
            if executions.start(journey.state_machine_arn, run_name, payload):
                routing.started.append(arn)
    return routing


def _in_journey(
    resolved: ResolvedEvent, journey: JourneyRef, runs: RunStore, executions: Executions, now: str
) -> bool:
    for run in runs.active(resolved.profileId, journey.id):
        if executions.is_running(run["executionArn"]):
            return True
        runs.close(resolved.profileId, run["runKey"], "completed", now)
    return False


def follow_merge(
    merged: ProfilesMerged, journeys: list[JourneyRef], runs: RunStore, executions: Executions, now: str
) -> list[str]:
    """Journeys in flight for merged profiles continue on the survivor: their runs move under it,
    so that the survivor's goal event (under any of its identifiers) finds and exits them. A journey
    the survivor is already in keeps only the survivor's run: one run per profile and journey."""
    moved = []
    for journey in journeys:
        survivor_in_it = any(
            executions.is_running(r["executionArn"]) for r in runs.active(merged.survivor, journey.id)
        )
        for profile_id in merged.merged:
            for run in runs.active(profile_id, journey.id):
                if survivor_in_it:
                    executions.stop(
                        run["executionArn"], cause=f"merged into {merged.survivor}, already in the journey"
                    )
                    runs.close(profile_id, run["runKey"], "merged_duplicate", now)
                    continue
                name = run["runKey"].split("#", 1)[1]
                runs.add(merged.survivor, journey.id, name, run["executionArn"], run["enteredAt"])
                runs.close(profile_id, run["runKey"], "merged", now)
                moved.append(run["executionArn"])
                survivor_in_it = True
    return moved
