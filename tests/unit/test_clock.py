"""The one clock and its time format (shared/clock.py): the send gate compares these strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from shared import clock


def test_iso_is_utc_with_milliseconds_and_z() -> None:
    moment = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))

    assert clock.iso(moment) == "2024-05-01T12:00:00.123Z"


def test_iso_has_a_four_digit_year_even_before_1000() -> None:
    # Without the zero padding "83-..." would sort after "2024-..."
    assert clock.iso(datetime(83, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0083-01-02T03:04:05.000Z"


def test_a_time_without_offset_is_utc() -> None:
    assert clock.iso(datetime(2024, 5, 1, 12, 0, 0)) == "2024-05-01T12:00:00.000Z"


def test_iso_strings_sort_as_their_times() -> None:
    base = datetime(2024, 5, 1, 9, 59, 59, 999000, tzinfo=UTC)
    moments = [base + timedelta(milliseconds=n) for n in (0, 1, 1000, 3_600_000)]

    assert sorted(clock.iso(m) for m in reversed(moments)) == [clock.iso(m) for m in moments]


def test_parse_reads_z_and_offsets() -> None:
    assert clock.parse("2024-05-01T12:00:00.123Z") == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert clock.parse("2024-05-01T14:00:00+02:00") == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_parse_reads_a_time_without_offset_as_utc() -> None:
    assert clock.parse("2024-05-01T12:00:00") == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_an_installed_source_is_the_time_until_reset(fixed_clock: datetime) -> None:
    assert clock.now() == fixed_clock

    clock.reset()

    assert clock.now() != fixed_clock
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)
