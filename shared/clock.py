"""The time every handler uses. Real time in the cloud; the local runtime installs a virtual clock
so that a journey's one-hour wait takes no real time and message times are virtual."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


def _real_now() -> datetime:
    return datetime.now(UTC)


_source: Callable[[], datetime] = _real_now


def now() -> datetime:
    return _source()


def install(source: Callable[[], datetime]) -> None:
    global _source
    _source = source


def reset() -> None:
    install(_real_now)


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a Z: sortable as a string. A time without an offset is UTC."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
