"""A journey's tree of steps lowered to a graph: each step a node with where execution goes next.

A child path (on_event, on_timeout, a branch case or else, a split path) that runs out continues
with the step after its compound step, like if/else in code; `exit` ends the run. So every node
knows its successor(s) and the emitters (shared/journeys/compiler.py) and the Mermaid view
(infra/journeys) need no knowledge of the tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.models.journey import AnyStep, JourneyDefinition, StepType


@dataclass(frozen=True)
class Node:
    """One step. `next`: the node after it (None: the run ends). `children`: per child path, its
    first node, or the compound step's own `next` when the path is empty (keys as `Step.paths()`:
    on_event, on_timeout, case-0.., else, path-0..)."""

    id: str
    type: StepType
    step: AnyStep
    next: str | None
    children: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Graph:
    start: str
    nodes: dict[str, Node]  # by step id, depth first in the order written

    def successors(self, node_id: str) -> list[str | None]:
        """Where execution may go after the node: its children (if any), else its `next`."""
        node = self.nodes[node_id]
        if node.children:
            return list(node.children.values())
        return [node.next]


def lower(definition: JourneyDefinition) -> Graph:
    nodes: dict[str, Node] = {}
    start = _lower(definition.steps, None, nodes)
    assert start is not None  # a definition has at least one step
    return Graph(start=start, nodes=nodes)


def _lower(steps: Sequence[AnyStep], after: str | None, nodes: dict[str, Node]) -> str | None:
    """Add the nodes of a path whose end continues at `after`; the path's first node (or `after`)."""
    ids = [_id(step) for step in steps]
    for i, step in enumerate(steps):
        following = ids[i + 1] if i + 1 < len(steps) else after
        next_id = None if step.type == "exit" else following
        # Inserted before the children so that `nodes` keeps the depth-first order written.
        nodes[ids[i]] = Node(id=ids[i], type=step.type, step=step, next=next_id)
        children = {name: _lower(path, next_id, nodes) for name, path in step.paths()}  # type: ignore[arg-type]
        if children:
            nodes[ids[i]] = Node(id=ids[i], type=step.type, step=step, next=next_id, children=children)
    return ids[0] if ids else after


def _id(step: AnyStep) -> str:
    assert step.id is not None  # JourneyDefinition gives every step its final id
    return step.id
