"""Reusable field types shared by wire, domain and storage models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

Channel = Literal["email", "push"]
PROFILE_ID_MAX_LENGTH = 64
ProfileId = Annotated[str, Field(min_length=1, max_length=PROFILE_ID_MAX_LENGTH)]
# The longest IANA zone name is 32 characters (America/Argentina/ComodRivadavia); room to spare.
MAX_TIMEZONE_LENGTH = 64


def iana_timezone(value: object) -> str | None:
    """`value` if it names an IANA time zone this system knows (e.g. "Europe/Berlin"), else None.

    Segment's `context.timezone` comes from the device and may be anything; a name zoneinfo cannot
    load (or a path-like key it refuses) is not a time zone."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TIMEZONE_LENGTH:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # imported on first use: few events carry one

    try:
        ZoneInfo(value)  # cached by zoneinfo: a zone is read from disk once per process
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return value
