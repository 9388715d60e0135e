"""A journey's tree lowered to a graph (shared/journeys/graph.py)."""

from __future__ import annotations

from typing import Any

from shared.journeys.graph import lower
from shared.models.journey import JourneyDefinition

SEND = {"send": {"channel": "email", "template": "hello"}}


def _definition(*steps: Any) -> JourneyDefinition:
    return JourneyDefinition.model_validate(
        {"id": "j", "name": "J", "trigger": "Signed Up", "steps": list(steps)}
    )


def test_a_straight_line_links_each_step_to_the_next_and_the_last_to_the_end() -> None:
    graph = lower(_definition({"wait": "1h"}, SEND))

    assert graph.start == "wait-1h"
    assert [(n.id, n.type, n.next, n.children) for n in graph.nodes.values()] == [
        ("wait-1h", "wait", "send-email-hello", {}),
        ("send-email-hello", "send", None, {}),
    ]


def test_child_paths_start_at_their_first_step_and_rejoin_after_the_compound_step() -> None:
    graph = lower(
        _definition(
            {"id": "w", "wait_for": {"event": "A", "timeout": "1d", "on_event": [{"wait": "1h"}, SEND]}},
            {"id": "after", **SEND},
        )
    )

    wait_for = graph.nodes["w"]
    assert wait_for.next == "after"
    assert wait_for.children == {"on_event": "w.on_event.wait-1h", "on_timeout": "after"}
    assert graph.nodes["w.on_event.wait-1h"].next == "w.on_event.send-email-hello"
    assert graph.nodes["w.on_event.send-email-hello"].next == "after"
    assert graph.nodes["after"].next is None


def test_an_empty_path_at_the_end_of_the_journey_ends_the_run() -> None:
    graph = lower(
        _definition(SEND, {"id": "w", "wait_for": {"event": "A", "timeout": "1d", "on_timeout": [SEND]}})
    )

    assert graph.nodes["w"].children == {"on_event": None, "on_timeout": "w.on_timeout.send-email-hello"}
    assert graph.nodes["w.on_timeout.send-email-hello"].next is None


def test_branch_cases_and_else_are_children_in_order() -> None:
    graph = lower(
        _definition(
            {
                "id": "b",
                "branch": {
                    "cases": [
                        {"when": {"traits": {"plan": "pro"}}, "steps": [SEND]},
                        {"when": {"traits": {"plan": "free"}}},
                    ],
                    "else": ["exit"],
                },
            },
            {"wait": "1d"},
        )
    )

    assert graph.nodes["b"].children == {
        "case-0": "b.case-0.send-email-hello",
        "case-1": "wait-1d",
        "else": "b.else.exit",
    }
    assert graph.successors("b") == ["b.case-0.send-email-hello", "wait-1d", "b.else.exit"]


def test_an_exit_ends_the_run_whatever_follows() -> None:
    graph = lower(_definition(SEND, "exit", {"wait": "1h"}))

    assert graph.nodes["exit"].next is None
    assert graph.successors("exit") == [None]


def test_split_paths_are_children_and_nested_paths_rejoin_their_own_parent() -> None:
    graph = lower(
        _definition(
            {
                "id": "s",
                "split": {
                    "paths": [
                        {
                            "weight": 1,
                            "steps": [
                                {
                                    "id": "inner",
                                    "wait_for": {"event": "A", "timeout": "1h", "on_event": [SEND]},
                                }
                            ],
                        },
                        {"weight": 1},
                    ]
                },
            },
            {"id": "last", **SEND},
        )
    )

    assert graph.nodes["s"].children == {"path-0": "inner", "path-1": "last"}
    assert graph.nodes["inner"].children == {
        "on_event": "inner.on_event.send-email-hello",
        "on_timeout": "last",
    }
    assert graph.nodes["inner.on_event.send-email-hello"].next == "last"
    assert list(graph.nodes) == ["s", "inner", "inner.on_event.send-email-hello", "last"]
