"""Quiet hours: a send falling inside them, in the recipient's time zone, waits for their end.

The zone is the profile's (its `timezone` trait, else the latest event's zone), else the policy's
`default_timezone`; with none of them the recipient has no quiet hours (an unknown zone is never
guessed). Wall-clock arithmetic is shared with the journeys' local-time waits (shared/journeys/steps.py):
an end time that does not exist that day (spring forward) is the moment the clocks skip to.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from shared.journeys.steps import known_zone, wall_time_utc
from shared.models.policy import Policy, QuietHours
from shared.models.profile import Profile


def recipient_zone(profile: Profile | None, policy: Policy) -> ZoneInfo | None:
    """The recipient's zone for quiet hours and calendar-day caps (None: unknown, no default)."""
    zone = known_zone(profile)
    if zone is None and policy.default_timezone:
        zone = ZoneInfo(policy.default_timezone)
    return zone


def effective_quiet_hours(
    policy: Policy, override: dict[str, str] | Literal[False] | None
) -> QuietHours | None:
    """The journey's override (`False`: none), else the policy's."""
    if override is False:
        return None
    if override is None:
        return policy.quiet_hours
    return QuietHours.model_validate(override)


def quiet_until(now: datetime, zone: ZoneInfo | None, hours: QuietHours | None) -> datetime | None:
    """When the quiet hours `now` falls in end (UTC), or None when `now` is outside them (or there
    are none, or the zone is unknown). [start, end): a send at `end` exactly goes out."""
    if zone is None or hours is None:
        return None
    start, end = time.fromisoformat(hours.start), time.fromisoformat(hours.end)
    local = now.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if start < end:
        inside, end_day = start <= wall < end, local.date()
    else:  # wraps past midnight: 21:00-08:00
        inside = wall >= start or wall < end
        end_day = local.date() + timedelta(days=1) if wall >= start else local.date()
    if not inside:
        return None
    until = wall_time_utc(datetime.combine(end_day, end), zone)
    if until <= now:
        # An end inside a fall-back hour that repeats, now in its second pass: the wall clock shows
        # a quiet time again, so wait for the end's second occurrence (fold=1).
        until = datetime.combine(end_day, end).replace(tzinfo=zone, fold=1).astimezone(UTC)
    return until if until > now else None
