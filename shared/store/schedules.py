"""Segment re-checks as EventBridge Scheduler one-time schedules.

A condition that becomes true or false by the passage of time alone (a 7-day window ending) is checked
again at that instant by a one-time schedule that invokes the segments function with
`{"recheck": <profileId>, "due": <ISO>}`: no polling. One schedule per profile (its name derives from
the profile id), created or moved to the profile's next due time, deleted by Scheduler once it has run
(ActionAfterCompletion DELETE). Locally moto keeps the schedules and the engine fires them on the
virtual clock.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import clock
from shared.store.aws import client, error_code

NAME_PREFIX = "recheck-"  # + 56 hex digits of the profile id's SHA-256: 64 characters, Scheduler's limit


def schedule_name(profile_id: str) -> str:
    return NAME_PREFIX + hashlib.sha256(profile_id.encode()).hexdigest()[: 64 - len(NAME_PREFIX)]


def at_expression(due: datetime) -> str:
    """`at(yyyy-mm-ddThh:mm:ss)` in UTC, rounded UP to the second. Scheduler still fires with 60-second
    precision (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html: set to 1:00,
    it invokes between 1:00:00 and 1:00:59), so a re-check may run up to a minute early and find
    nothing changed yet: `on_recheck` then asks for the same time again (shared/segments/engine.py)."""
    due = due.astimezone(UTC)
    if due.microsecond:
        due = due.replace(microsecond=0) + timedelta(seconds=1)
    return f"at({due.strftime('%Y-%m-%dT%H:%M:%S')})"


class Rechecks:
    def __init__(self, group: str, role_arn: str, target_arn: str, scheduler: Any = None):
        self._group = group
        self._role = role_arn
        self._target = target_arn  # the segments function itself (its Lambda context's invoked ARN)
        self._client = scheduler

    def schedule(self, profile_id: str, at: datetime) -> None:
        """Create, or update, the profile's one-time re-check at `at`."""
        scheduler = self._client or client("scheduler")
        request = {
            "Name": schedule_name(profile_id),
            "GroupName": self._group,
            "ScheduleExpression": at_expression(at),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Target": {
                "Arn": self._target,
                "RoleArn": self._role,
                "Input": json.dumps({"recheck": profile_id, "due": clock.iso(at)}),
            },
        }
        try:
            scheduler.create_schedule(**request)
        except Exception as error:
            if error_code(error) != "ConflictException":
                raise
            scheduler.update_schedule(**request)  # one schedule per profile: moved to the new time
