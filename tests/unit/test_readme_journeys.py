"""The README's journey format and graph command against the code (the harness example runs in
tests/integration/test_readme_harness_example.py): a new step type or journey-level key, or a changed
graph, fails here until the README says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.journeys import mermaid
from shared.journeys.loader import load_journey
from shared.models.journey import STEP_TYPES, JourneyDefinition

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHIPPED = sorted(
    folder.name for folder in (ROOT / "journeys").iterdir() if (folder / "journey.yaml").is_file()
)


def _journeys_as_code() -> str:
    return README.split("## Journeys as code", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("step_type", STEP_TYPES)
def test_the_step_table_documents_every_step_type(step_type: str) -> None:
    assert f"\n| `{step_type}` | `" in _journeys_as_code()


@pytest.mark.parametrize("key", list(JourneyDefinition.model_fields))
def test_every_journey_level_key_is_documented(key: str) -> None:
    [keys] = [p for p in _journeys_as_code().split("\n\n") if p.startswith("Journey-level keys:")]

    assert f"`{key}`" in keys


def test_the_readme_graph_is_what_the_graph_command_prints_for_cart_abandonment() -> None:
    [shown] = re.findall(r"```mermaid\n(.*?)```", README, re.S)

    assert shown == mermaid(load_journey(ROOT / "journeys" / "cart_abandonment").definition)


@pytest.mark.parametrize("journey_id", SHIPPED)
def test_each_shipped_journeys_graph_is_a_well_formed_flowchart(journey_id: str) -> None:
    lines = mermaid(load_journey(ROOT / "journeys" / journey_id).definition).splitlines()
    node = re.compile(r'^    (\w+)(\(\[|\{\{|\(\(|\[|\{|\()(?:"([^"]*)"|end)(\]\)|\}\}|\)\)|\]|\}|\))$')
    edge = re.compile(r'^    (\w+) -->(?:\|"([^"]*)"\|)? (\w+)$')

    declared = [m.group(1) for line in lines if (m := node.match(line))]
    edges = [(m.group(1), m.group(3)) for line in lines if (m := edge.match(line))]

    assert lines[0] == "flowchart TD"
    assert len(declared) + len(edges) == len(lines) - 1  # every other line is a node or an edge
    assert len(set(declared)) == len(declared) and {"start", "done"} <= set(declared)
    assert {name for pair in edges for name in pair} == set(declared)  # no dangling node or edge
    assert {source for source, _ in edges} == set(declared) - {"done"}  # everything leads somewhere
