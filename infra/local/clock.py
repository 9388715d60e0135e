"""A virtual clock: journeys' waits block on it instead of on real time.

Time moves only when `advance` is asked to move it. Each wait registers when it is due; the clock
moves to the earliest due wait, releases it, lets the engine settle, and repeats until the target
time. A one-hour wait therefore finishes in milliseconds, and in the same order it would in AWS.

A wait can also end before it is due: another thread sets its `wake` event (a task token answered
with SendTaskSuccess), or `interrupt` ends every wait of one key (StopExecution). A waiting thread
sleeps on its event; it does not poll (a thousand parked executions polling every few
milliseconds cost the whole engine its CPU).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# A backstop only: ending a wait early goes through `wake` or `interrupt`, which set its event at
# once. Cancellation that reaches neither is seen within this many seconds.
CANCEL_POLL_SECONDS = 1.0


# eq=False: each wait is its own object, compared by identity. Compared by `due`, two executions
# waiting until the same instant were equal, and the one stopped first removed the other's wait.
@dataclass(eq=False)
class _Waiter:
    due: datetime
    key: str
    released: threading.Event = field(default_factory=threading.Event)
    fired: bool = False  # released by the clock because its time came


class VirtualClock:
    def __init__(self, start: datetime):
        self._now = start
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(
        self,
        key: str,
        seconds: float,
        cancelled: Callable[[], bool],
        wake: threading.Event | None = None,
        poll: float = CANCEL_POLL_SECONDS,
    ) -> bool:
        """Block the calling thread until virtual time has moved `seconds` on (True), or until
        `wake` is set, the key is interrupted or `cancelled()` (False). While it blocks, `key` is
        among `waiting()`."""
        with self._lock:
            waiter = _Waiter(self._now + timedelta(seconds=seconds), key, wake or threading.Event())
            if waiter.due <= self._now:
                return True
            self._waiters.append(waiter)
        try:
            while not waiter.released.wait(poll):
                if cancelled():
                    return False
            with self._lock:
                return waiter.fired
        finally:
            with self._lock:
                self._waiters = [w for w in self._waiters if w is not waiter]

    def interrupt(self, key: str) -> None:
        """End every wait of `key` now, before it is due (its thread then sees why)."""
        with self._lock:
            for waiter in self._waiters:
                if waiter.key == key:
                    waiter.released.set()

    def interrupt_all(self) -> None:
        with self._lock:
            for waiter in self._waiters:
                waiter.released.set()

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
                if waiter.due <= self._now and not waiter.released.is_set():
                    waiter.fired = True
                    waiter.released.set()

    def reset(self, start: datetime) -> None:
        """Set the time to `start`, backwards too; only when nothing waits (a fresh engine state)."""
        with self._lock:
            if self._waiters:
                raise RuntimeError("the clock cannot be reset while something waits on it")
            self._now = start
