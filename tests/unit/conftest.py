"""The unit tier: pure logic, no network. Every test here runs with sockets blocked."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from shared import clock

FIXED_NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class NetworkBlockedError(RuntimeError):
    """A unit test tried to open a connection."""


def _refuse(*args: object, **kwargs: object) -> None:
    raise NetworkBlockedError(f"unit tests must not touch the network (tried {args!r})")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)


@pytest.fixture
def fixed_clock() -> Iterator[datetime]:
    """`clock.now()` returns FIXED_NOW for the test; real time comes back afterwards."""
    clock.install(lambda: FIXED_NOW)
    try:
        yield FIXED_NOW
    finally:
        clock.reset()
