"""Retry pauses: one formula for every retry loop, in the stores (AWS requests) and in the domain (the
send gate's commit attempts). Pure: no AWS, so domain code may use it."""

from __future__ import annotations

from collections.abc import Callable


def backoff_delay(attempt: int, base: float, cap: float, draw: Callable[[], float]) -> float:
    """The wait after failed attempt `attempt` (0-based): uniform in [0, min(cap, base × 2^attempt)),
    "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"); `draw` is in [0, 1)."""
    return draw() * min(cap, base * 2**attempt)
