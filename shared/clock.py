"""The time every handler uses. Real time in the cloud; the local runtime installs a virtual clock
so that a journey's one-hour wait takes no real time and message times are virtual."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_ZERO = timedelta(0)


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
    if moment.tzinfo is None or moment.utcoffset() == _ZERO:
        return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
