"""Durations as authors write them ('90s', '30m', '1h', '2d'), for journeys, segments and the policy."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WAIT_SECONDS = 365 * 86400  # a Step Functions Standard execution lives at most a year


def parse_duration(value: object) -> object:
    """'90s', '30m', '1h', '2d' → seconds; an int is already seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"duration {value!r} is not a number followed by s, m, h or d (e.g. '1h')")
        return int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    return value


def format_duration(seconds: int) -> str:
    """The shortest exact written form of a duration: 3600 → '1h', 5400 → '90m', 45 → '45s'."""
    sign, magnitude = ("-" if seconds < 0 else ""), abs(seconds)
    for unit in ("d", "h", "m"):
        if magnitude and magnitude % UNIT_SECONDS[unit] == 0:
            return f"{sign}{magnitude // UNIT_SECONDS[unit]}{unit}"
    return f"{sign}{magnitude}s"


DurationSeconds = Annotated[int, BeforeValidator(parse_duration), Field(gt=0, le=MAX_WAIT_SECONDS)]
