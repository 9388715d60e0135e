"""Quiet hours in the recipient's zone (shared/delivery/quiet_hours.py): wrap past midnight, DST, zones."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from shared import clock
from shared.delivery.quiet_hours import effective_quiet_hours, quiet_until, recipient_zone
from shared.models.policy import QuietHours
from shared.models.profile import Profile
from tests.policies import PERMISSIVE, SHIPPED

NIGHT = QuietHours(start="21:00", end="08:00")
NEW_YORK = ZoneInfo("America/New_York")


def _at(text: str) -> datetime:
    return clock.parse(text)


@pytest.mark.parametrize(
    ("now", "until"),
    [
        ("2026-03-02T08:00:00Z", "2026-03-02T13:00:00Z"),  # 03:00 EST → 08:00 EST
        ("2026-03-02T02:30:00Z", "2026-03-02T13:00:00Z"),  # 21:30 the evening before → next morning
        ("2026-03-02T04:59:59Z", "2026-03-02T13:00:00Z"),  # 23:59:59 → the next morning
        ("2026-03-02T05:00:00Z", "2026-03-02T13:00:00Z"),  # midnight
    ],
)
def test_a_send_inside_wrapping_quiet_hours_waits_for_their_end(now: str, until: str) -> None:
    assert quiet_until(_at(now), NEW_YORK, NIGHT) == _at(until)


@pytest.mark.parametrize("now", ["2026-03-02T13:00:00Z", "2026-03-02T20:00:00Z", "2026-03-02T01:59:59Z"])
def test_a_send_outside_quiet_hours_goes_now(now: str) -> None:
    # 08:00 exactly (the end is open), 15:00, 20:59:59 New York time
    assert quiet_until(_at(now), NEW_YORK, NIGHT) is None


def test_quiet_hours_not_wrapping_midnight() -> None:
    lunch = QuietHours(start="12:00", end="14:00")
    assert quiet_until(_at("2026-03-02T17:30:00Z"), NEW_YORK, lunch) == _at("2026-03-02T19:00:00Z")
    assert quiet_until(_at("2026-03-02T19:00:00Z"), NEW_YORK, lunch) is None


def test_the_night_the_clocks_spring_forward_ends_at_eight_daylight_time() -> None:
    # 2026-03-08 02:00 EST → 03:00 EDT. 01:30 EST is 06:30Z; 08:00 EDT is 12:00Z (not 13:00Z).
    assert quiet_until(_at("2026-03-08T06:30:00Z"), NEW_YORK, NIGHT) == _at("2026-03-08T12:00:00Z")


def test_the_night_the_clocks_fall_back_ends_at_eight_standard_time() -> None:
    # 2026-11-01 02:00 EDT → 01:00 EST. 01:30 EDT (first pass) is 05:30Z; 08:00 EST is 13:00Z.
    assert quiet_until(_at("2026-11-01T05:30:00Z"), NEW_YORK, NIGHT) == _at("2026-11-01T13:00:00Z")
    # The second 01:30 (EST) too.
    assert quiet_until(_at("2026-11-01T06:30:00Z"), NEW_YORK, NIGHT) == _at("2026-11-01T13:00:00Z")


def test_an_end_that_does_not_exist_that_day_moves_forward() -> None:
    # Quiet until 02:30 on the spring-forward night: 02:30 does not exist, it is 03:30 EDT (07:30Z).
    early = QuietHours(start="23:00", end="02:30")
    assert quiet_until(_at("2026-03-08T06:00:00Z"), NEW_YORK, early) == _at("2026-03-08T07:30:00Z")


def test_an_unknown_zone_has_no_quiet_hours() -> None:
    assert quiet_until(_at("2026-03-02T08:00:00Z"), None, NIGHT) is None


def _profile(**fields: object) -> Profile:
    return Profile(
        profileId="p-1", createdAt="2026-01-01T00:00:00.000Z", updatedAt="2026-01-01T00:00:00.000Z", **fields
    )  # type: ignore[arg-type]


def test_the_zone_is_the_trait_then_the_latest_events_then_the_policy_default() -> None:
    with_default = SHIPPED.model_copy(update={"default_timezone": "Europe/Paris"})

    assert recipient_zone(
        _profile(traits={"timezone": "Asia/Tokyo"}, timezone="Europe/Berlin"), SHIPPED
    ) == ZoneInfo("Asia/Tokyo")
    assert recipient_zone(_profile(timezone="Europe/Berlin"), SHIPPED) == ZoneInfo("Europe/Berlin")
    assert recipient_zone(_profile(traits={"timezone": "Mars/Olympus"}), with_default) == ZoneInfo(
        "Europe/Paris"
    )
    assert recipient_zone(_profile(), SHIPPED) is None  # the shipped policy sets no default


def test_a_journey_overrides_the_policys_quiet_hours() -> None:
    assert effective_quiet_hours(SHIPPED, None) == NIGHT
    assert effective_quiet_hours(SHIPPED, False) is None
    assert effective_quiet_hours(PERMISSIVE, {"start": "22:00", "end": "07:00"}) == QuietHours(
        start="22:00", end="07:00"
    )


def test_an_end_inside_the_repeated_hour_waits_for_its_second_pass() -> None:
    # Quiet 21:00-01:30 on the fall-back night (2026-11-01 02:00 EDT → 01:00 EST). At 01:15 EST (the
    # second 01:15, 06:15Z) the wall clock is still inside the quiet hours: the send waits for the
    # second 01:30 (06:30Z). It used to go out at once (the first 01:30 had passed).
    short = QuietHours(start="21:00", end="01:30")
    assert quiet_until(_at("2026-11-01T06:15:00Z"), NEW_YORK, short) == _at("2026-11-01T06:30:00Z")
    # The first pass waits for the first 01:30.
    assert quiet_until(_at("2026-11-01T05:15:00Z"), NEW_YORK, short) == _at("2026-11-01T05:30:00Z")
