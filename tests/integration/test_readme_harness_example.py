"""The README's journey-harness example runs as written: the documentation cannot drift from the harness."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.local.harness import JourneyHarness

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    [example] = [b for b in blocks if "journey_harness" in b]
    return example


def test_the_readme_harness_example_passes(make_journey_harness: Callable[..., JourneyHarness]) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(_example(), str(README), "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert len(tests) >= 2
    for test in tests:
        marker = next((m for m in getattr(test, "pytestmark", []) if m.name == "journeys"), None)
        test(make_journey_harness(marker.args[0] if marker else None))
