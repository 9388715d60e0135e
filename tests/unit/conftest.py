"""The unit tier: pure logic, no network. Every test here runs with sockets blocked."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

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


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the profile store's batch retries would sleep, recorded instead."""
    from shared.store import profiles

    pauses: list[float] = []
    monkeypatch.setattr(profiles.time, "sleep", pauses.append)
    return pauses


@pytest.fixture
def dynamodb() -> Iterator[tuple[Any, Stubber]]:
    """A DynamoDB client answered by botocore's Stubber; every queued answer must be asked for."""
    client = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()
