"""PLACEHOLDER (branch i9-runtime): the real handler is written on branch i9-audiences; this file exists
only so that the topology's function can be built and imported before that branch is merged. On merge,
take i9-audiences' version."""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    raise NotImplementedError("functions.audiences.handler is written on branch i9-audiences")
