"""The sample payloads in events/ (the README's curl examples use the same files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parent.parent / "events"


def load(name: str, **overrides: Any) -> dict[str, Any]:
    """events/<name>.json, with top-level fields replaced by `overrides`."""
    payload: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    payload.update(overrides)
    return payload
