"""A virtual clock: journeys' waits block on it instead of on real time.

Time moves only when `advance` is asked to move it. Each wait registers when it is due; the clock
moves to the earliest due wait, releases it, lets the engine settle, and repeats until the target
time. A one-hour wait therefore finishes in milliseconds, and in the same order it would in AWS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta


# eq=False: each wait is its own object, compared by identity. Compared by `due`, two executions
# waiting until the same instant were equal, and the one stopped first removed the other's wait.
@dataclass(eq=False)
class _Waiter:
    due: datetime
    key: str
    released: threading.Event = field(default_factory=threading.Event)


class VirtualClock:
    def __init__(self, start: datetime):
        self._now = start
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, key: str, seconds: float, cancelled: Callable[[], bool], poll: float = 0.02) -> None:
        """Block the calling thread until virtual time has moved `seconds` on, or `cancelled()`."""
        with self._lock:
            waiter = _Waiter(self._now + timedelta(seconds=seconds), key)
            self._waiters.append(waiter)
        try:
            while not waiter.released.wait(poll):
                if cancelled():
                    return
        finally:
            with self._lock:
                self._waiters = [w for w in self._waiters if w is not waiter]

    def waiting(self) -> set[str]:
        """Keys of the threads blocked on the clock now."""
        with self._lock:
            return {w.key for w in self._waiters if not w.released.is_set()}

    def next_due(self) -> datetime | None:
        with self._lock:
            pending = [w.due for w in self._waiters if not w.released.is_set()]
            return min(pending) if pending else None

    def move_to(self, moment: datetime) -> None:
        """Set the time (never backwards) and release every wait due by then."""
        with self._lock:
            self._now = max(self._now, moment)
            for waiter in self._waiters:
                if waiter.due <= self._now:
                    waiter.released.set()
