"""The local runtime's virtual clock (infra/local/clock.py): waits are released in time order, and
each wait leaves the clock on its own."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from infra.local.clock import VirtualClock

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _sleep_in_thread(
    clock: VirtualClock, key: str, seconds: float, cancel: threading.Event
) -> threading.Thread:
    thread = threading.Thread(target=clock.sleep, args=(key, seconds, cancel.is_set), daemon=True)
    thread.start()
    return thread


def _until(condition: object, timeout: float = 5.0) -> None:
    deadline = threading.Event()
    timer = threading.Timer(timeout, deadline.set)
    timer.start()
    try:
        while not condition():  # type: ignore[operator]
            assert not deadline.wait(0.005), "condition not reached"
    finally:
        timer.cancel()


@pytest.mark.parametrize("stopped", ["execution-1", "execution-2"])
def test_a_stopped_wait_leaves_another_wait_due_at_the_same_instant_on_the_clock(stopped: str) -> None:
    # Given two executions waiting until the same instant
    clock = VirtualClock(START)
    cancel = {key: threading.Event() for key in ("execution-1", "execution-2")}
    threads = {key: _sleep_in_thread(clock, key, 3600, cancel[key]) for key in cancel}
    _until(lambda: clock.waiting() == set(cancel))
    (other,) = set(cancel) - {stopped}

    # When one is stopped (its goal was reached, or its profile merged)
    cancel[stopped].set()
    threads[stopped].join(5)

    # Then only the other is waiting, and it is released when its time comes
    assert not threads[stopped].is_alive()
    assert clock.waiting() == {other}
    assert clock.next_due() == START + timedelta(hours=1)
    clock.move_to(START + timedelta(hours=1))
    threads[other].join(5)
    assert not threads[other].is_alive()
    assert clock.waiting() == set()
    assert clock.next_due() is None


def test_waits_are_due_in_time_order_and_released_only_when_due() -> None:
    clock = VirtualClock(START)
    never = threading.Event()
    late = _sleep_in_thread(clock, "late", 7200, never)
    early = _sleep_in_thread(clock, "early", 60, never)
    _until(lambda: clock.waiting() == {"late", "early"})

    assert clock.next_due() == START + timedelta(minutes=1)
    clock.move_to(START + timedelta(minutes=30))
    early.join(5)

    assert not early.is_alive() and late.is_alive()
    assert clock.waiting() == {"late"}
    assert clock.now() == START + timedelta(minutes=30)
    clock.move_to(START)  # never backwards
    assert clock.now() == START + timedelta(minutes=30)
    clock.move_to(START + timedelta(hours=2))
    late.join(5)
    assert not late.is_alive()
