"""Re-check schedules: when they fire and what they are called (pure parts of shared/store/schedules.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.store.schedules import at_expression, schedule_name


def test_a_due_time_with_milliseconds_is_rounded_up_so_the_schedule_never_fires_early() -> None:
    assert at_expression(datetime(2030, 3, 11, 9, 0, 0, 1000, tzinfo=UTC)) == "at(2030-03-11T09:00:01)"


def test_a_due_time_on_the_second_is_kept() -> None:
    assert at_expression(datetime(2030, 3, 11, 9, 0, 0, tzinfo=UTC)) == "at(2030-03-11T09:00:00)"


def test_the_schedule_name_fits_schedulers_64_characters_and_names_one_profile() -> None:
    name = schedule_name("p" * 500)
    assert len(name) == 64 and name.startswith("recheck-")
    assert schedule_name("a") == schedule_name("a") != schedule_name("b")
