"""A function that exists only in the local runtime's concurrency tests (`test_local_concurrency`):
what it does when invoked is set by the test that runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _nothing(event: dict[str, Any], context: Any) -> Any:
    return None


behaviour: Callable[[dict[str, Any], Any], Any] = _nothing


def handler(event: dict[str, Any], context: Any) -> Any:
    return behaviour(event, context)
