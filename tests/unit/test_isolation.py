"""The unit tier cannot reach the network."""

from __future__ import annotations

import socket

import pytest

from tests.unit.conftest import NetworkBlockedError


def test_opening_a_connection_fails_in_unit_tests() -> None:
    # When a test tries to connect anywhere
    # Then the guard refuses before any packet leaves
    with pytest.raises(NetworkBlockedError):
        socket.create_connection(("example.com", 443), timeout=1)


def test_connecting_a_raw_socket_fails_in_unit_tests() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as raw, pytest.raises(NetworkBlockedError):
        raw.connect(("127.0.0.1", 9))
