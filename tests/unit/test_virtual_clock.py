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


def _sleep_recording(
    clock: VirtualClock, key: str, seconds: float, **kwargs: object
) -> tuple[threading.Thread, list[bool]]:
    result: list[bool] = []
    thread = threading.Thread(
        target=lambda: result.append(clock.sleep(key, seconds, lambda: False, **kwargs)),  # type: ignore[arg-type]
        daemon=True,
    )
    thread.start()
    return thread, result


def test_a_wait_woken_by_its_event_ends_before_it_is_due_and_leaves_the_clock() -> None:
    # Given a task token's wait (its answer sets the event) with a 23 h timeout
    clock = VirtualClock(START)
    answered = threading.Event()
    thread, result = _sleep_recording(clock, "execution-1", 23 * 3600, wake=answered)
    _until(lambda: clock.waiting() == {"execution-1"})

    # When the token is answered
    answered.set()
    thread.join(5)

    # Then the wait ended at once, not by the clock, and nothing is due any more
    assert result == [False]
    assert clock.waiting() == set() and clock.next_due() is None
    assert clock.now() == START


def test_a_wait_released_by_the_clock_says_so() -> None:
    clock = VirtualClock(START)
    thread, result = _sleep_recording(clock, "execution-1", 60)
    _until(lambda: clock.waiting() == {"execution-1"})

    clock.move_to(START + timedelta(minutes=1))
    thread.join(5)

    assert result == [True]


def test_interrupting_a_key_ends_its_waits_only() -> None:
    clock = VirtualClock(START)
    stopped, stopped_result = _sleep_recording(clock, "stopped", 3600)
    other, _ = _sleep_recording(clock, "other", 3600)
    _until(lambda: clock.waiting() == {"stopped", "other"})

    clock.interrupt("stopped")
    stopped.join(5)

    assert stopped_result == [False]
    assert clock.waiting() == {"other"} and other.is_alive()
    clock.interrupt_all()
    other.join(5)
    assert not other.is_alive()


def test_a_wait_already_due_returns_at_once_without_waiting_on_the_clock() -> None:
    clock = VirtualClock(START)

    assert clock.sleep("execution-1", 0, lambda: False) is True
    assert clock.sleep("execution-1", -3600, lambda: False) is True
    assert clock.waiting() == set()
