"""Journey tooling: `python -m infra.journeys {validate | graph ID}`.

validate  Load the segments under segments/ and every journey under journeys/, compile it, check the
          segments and computed traits it names are declared, and render every template (Liquid,
          strict) with its layout and partials against the sample events in events/ (the journey's
          trigger event, the sample identify's traits, no computed values, sample links with and
          without an unsubscribe URL; a segment trigger's event is made up). Each problem names its
          journey, template, steps, field, line and variable; exit status 1.
graph ID  The journey as a Mermaid flowchart on stdout, to paste into a pull request.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from infra.topology import JOURNEYS_DIR, POLICY_FILE, ROOT, SEGMENTS_DIR
from shared.delivery.policy import PolicyLoadError, read_policy_yaml
from shared.delivery.templates import TemplateRenderError, render_content
from shared.journeys.compiler import compile_journey
from shared.journeys.graph import Graph, Node, lower
from shared.journeys.loader import JourneyLoadError, load_journey, policy_problems, segment_problems
from shared.journeys.router import segment_event
from shared.models.journey import (
    SEGMENT_ENTERED,
    SEGMENT_EXITED,
    BranchStep,
    Condition,
    EventRule,
    Journey,
    JourneyDefinition,
    SendStep,
    SplitStep,
    WaitForStep,
    WaitStep,
    WaitUntilStep,
    format_duration,
)
from shared.models.policy import Policy
from shared.segments.catalogue import SegmentCatalogue, SegmentLoadError, load_segments

EVENTS_DIR = ROOT / "events"
# The footer's links as the gate gives them: a marketing email has both, a transactional one has no
# unsubscribe link. Every template is rendered with each.
SAMPLE_LINKS = (
    {
        "preferences": "https://example.com/preferences/sample-token",
        "unsubscribe": "https://example.com/unsubscribe/sample-token",
    },
    {"preferences": "https://example.com/preferences/sample-token", "unsubscribe": None},
)


# -- validate --------------------------------------------------------------------------------------


def _sample_calls(events_dir: Path) -> Iterator[dict[str, Any]]:
    """Every call in the sample payloads (a batch's calls one by one)."""
    for path in sorted(events_dir.glob("*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        calls = payload.get("batch", [payload]) if isinstance(payload, dict) else []
        yield from (call for call in calls if isinstance(call, dict))


def _contexts(definition: JourneyDefinition, events_dir: Path) -> list[dict[str, Any]]:
    """The template contexts the samples give this journey: its trigger × the sample profile."""
    calls = list(_sample_calls(events_dir))
    traits: dict[str, Any] = {}
    for call in calls:
        if call.get("type", "identify" if "traits" in call and "event" not in call else None) == "identify":
            traits.update(call.get("traits") or {})
    triggers = [call for call in calls if call.get("event") == definition.trigger.event]
    # A segment's event is Continuum's own (never a sample a customer sends): made up as the router does.
    at = "2024-05-01T12:00:00.000Z"
    if definition.trigger.event in (SEGMENT_ENTERED, SEGMENT_EXITED):
        triggers += [
            segment_event("sample-profile", segment, definition.trigger.event == SEGMENT_ENTERED, at).event
            for segment in sorted(definition.trigger.segments) or ["sample_segment"]
        ]
    return [
        {
            "profile": {"traits": traits, "profileId": "sample-profile"},
            "trigger": {
                "event": call["event"],
                "properties": call.get("properties") or {},
                "messageId": call.get("messageId", "sample-message"),
                "timestamp": call.get("timestamp", at),
            },
            # None: a profile without the events a computed trait counts has no value for it.
            "computed": {},
        }
        for call in triggers
    ]


def validate_journey(
    journey: Journey, events_dir: Path, segments: SegmentCatalogue | None = None, policy: Policy | None = None
) -> list[str]:
    """The journey's problems; with the segment catalogue, also the segments and computed traits it
    names that are not declared; with the policy, the send topics it does not declare."""
    definition = journey.definition
    errors = []
    try:
        compile_journey(journey)
    except ValueError as error:
        errors.append(f"journey {definition.id}: {error}")
    if segments is not None:
        errors += [f"journey {definition.id}: {problem}" for problem in segment_problems(journey, segments)]
    if policy is not None:
        errors += [f"journey {definition.id}: {problem}" for problem in policy_problems(journey, policy)]
    contexts = _contexts(definition, events_dir)
    if not contexts:
        errors.append(
            f"journey {definition.id}: no sample {definition.trigger.event!r} event in {events_dir}"
            " to render its templates with (add one, e.g. track-<event>.json)"
        )
    sends: dict[str, list[str]] = {}
    for step in definition.walk():
        if isinstance(step, SendStep) and step.id is not None:
            sends.setdefault(step.send.template, []).append(step.id)
    for name, template in sorted(journey.templates.items()):
        steps = ", ".join(sends.get(name, [])) or "no step"
        for channel in ("email", "push"):
            if template.content_for(channel) is None:
                continue
            sent = journey.send_content(name, channel)
            for context in contexts:
                for links in SAMPLE_LINKS:
                    try:
                        render_content(
                            sent["content"],
                            {**context, "links": links},
                            layout=sent.get("layout"),
                            partials=sent.get("partials"),
                        )
                    except TemplateRenderError as error:
                        errors.append(
                            f"journey {definition.id}, template {name} (used by {steps}), {channel}.{error}"
                        )
    return list(dict.fromkeys(errors))


def validate(
    journeys_dir: Path, events_dir: Path, segments_dir: Path = SEGMENTS_DIR, policy_file: Path = POLICY_FILE
) -> tuple[int, list[str]]:
    """(journeys validated, problems) for every journey folder under `journeys_dir`, the segment
    catalogue under `segments_dir` (a missing folder is an empty catalogue) and the send policy."""
    errors: list[str] = []
    count = 0
    policy: Policy | None = None
    try:
        policy = read_policy_yaml(policy_file)
    except PolicyLoadError as error:
        errors.append(f"policy: {error}")
    segments: SegmentCatalogue | None = SegmentCatalogue()
    if segments_dir.is_dir():
        try:
            segments = load_segments(segments_dir)
        except SegmentLoadError as error:
            errors.append(f"segments: {error}")
            segments = None  # the journeys are still checked, but not against it
    for folder in sorted(journeys_dir.iterdir()):
        if not (folder / "journey.yaml").is_file():
            continue
        count += 1
        try:
            journey = load_journey(folder)
        except JourneyLoadError as error:
            errors.append(f"journey {folder.name}: {error}")
            continue
        errors += validate_journey(journey, events_dir, segments, policy)
    return count, errors


# -- graph -----------------------------------------------------------------------------------------


def _label(text: str) -> str:
    """Mermaid label text: quotes and markup characters as entities."""
    return re.sub(r'["<>#]', lambda m: f"#{ord(m.group(0))};", text)


def _conditions(where: dict[str, Condition]) -> str:
    parts = []
    for name, condition in where.items():
        if condition.op == "same_as_trigger":
            other = name if condition.value is True else condition.value
            parts.append(f"{name} = trigger's {other}")
        elif condition.op == "equals":
            parts.append(f"{name} = {json.dumps(condition.value)}")
        else:
            parts.append(f"{name} {condition.op} {json.dumps(condition.value)}")
    return ", ".join(parts)


def _describe(node: Node) -> str:
    step = node.step
    if isinstance(step, WaitStep):
        return f"wait {format_duration(step.wait)}"
    if isinstance(step, WaitUntilStep):
        spec = step.wait_until
        if spec.trait is not None:
            text = f"wait until {spec.trait}"
            if spec.offset:
                text += f" {'-' if spec.offset < 0 else '+'} {format_duration(abs(spec.offset))}"
        else:
            text = "wait until"
            if spec.days_after_entry:
                text += f" day {spec.days_after_entry},"
        if spec.time:
            text += f" {spec.time} local"
        if spec.weekdays:
            text += f" ({', '.join(spec.weekdays)})"
        return text
    if isinstance(step, WaitForStep):
        where = _conditions(step.wait_for.where)
        return f"wait for {step.wait_for.event}" + (f" ({where})" if where else "")
    if isinstance(step, SendStep):
        return f"send {step.send.channel} {step.send.template}"
    return node.type


def _rule_label(rule: EventRule) -> str:
    """A rule as read: `entered segment vip` for the segment events, else the event and its conditions."""
    if rule.segments and set(rule.where) == {"segment"}:
        verb = "entered" if rule.event == SEGMENT_ENTERED else "left"
        return f"{verb} segment {' or '.join(sorted(rule.segments))}"
    return rule.event + (f" ({_conditions(rule.where)})" if rule.where else "")


def _case_label(step: BranchStep, index: int) -> str:
    when = step.branch.cases[index].when
    parts = [_conditions(when.traits), _conditions({f"trigger.{k}": v for k, v in when.trigger.items()})]
    parts += [
        f"{'in' if member else 'not in'} segment {segment}" for segment, member in when.segments.items()
    ]
    parts.append(_conditions({f"computed.{k}": v for k, v in when.computed.items()}))
    if when.journey is not None:
        parts += [
            f"{kind} {ref}"
            for kind, ref in (("sent", when.journey.sent), ("dropped", when.journey.dropped))
            if ref
        ]
    return "; ".join(part for part in parts if part)


def _edge_label(node: Node, child: str) -> str:
    step = node.step
    if isinstance(step, WaitForStep):
        return (
            step.wait_for.event
            if child == "on_event"
            else f"timeout {format_duration(step.wait_for.timeout)}"
        )
    if isinstance(step, BranchStep):
        return "else" if child == "else" else _case_label(step, int(child.removeprefix("case-")))
    if isinstance(step, SplitStep):
        total = sum(path.weight for path in step.split.paths)
        weight = step.split.paths[int(child.removeprefix("path-"))].weight
        return f"{100 * weight / total:.3g}%"
    return child


def mermaid(definition: JourneyDefinition, graph: Graph | None = None) -> str:
    graph = graph or lower(definition)
    ids = {node_id: f"s{i}" for i, node_id in enumerate(graph.nodes)}
    shapes = {"wait_for": ("{{", "}}"), "branch": ("{", "}"), "split": ("{", "}"), "exit": ("([", "])")}
    lines = ["flowchart TD"]
    trigger = _rule_label(definition.trigger)
    lines.append(f'    start(["{_label(trigger)}"])')
    for node_id, node in graph.nodes.items():
        opening, closing = shapes.get(node.type, ("[", "]"))
        if node.type in ("wait", "wait_until"):
            opening, closing = "(", ")"
        label = f"{_label(_describe(node))}<br/>{_label(node_id)}"
        lines.append(f'    {ids[node_id]}{opening}"{label}"{closing}')
    lines.append("    done((end))")

    def target(node_id: str | None) -> str:
        return "done" if node_id is None else ids[node_id]

    lines.append(f"    start --> {ids[graph.start]}")
    for node_id, node in graph.nodes.items():
        if node.children:
            for child, first in node.children.items():
                lines.append(f'    {ids[node_id]} -->|"{_label(_edge_label(node, child))}"| {target(first)}')
        else:
            lines.append(f"    {ids[node_id]} --> {target(node.next)}")
    return "\n".join(lines) + "\n"


# -- command line ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.journeys", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--journeys", type=Path, default=JOURNEYS_DIR, help="journeys folder (default: %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("validate", help="load, compile and render every journey and template")
    check.add_argument("--events", type=Path, default=EVENTS_DIR, help="sample events (default: %(default)s)")
    check.add_argument(
        "--segments", type=Path, default=SEGMENTS_DIR, help="segments folder (default: %(default)s)"
    )
    check.add_argument("--policy", type=Path, default=POLICY_FILE, help="send policy (default: %(default)s)")
    draw = commands.add_parser("graph", help="print a journey as a Mermaid flowchart")
    draw.add_argument("id", help="journey id (its folder name)")
    args = parser.parse_args(argv)

    if args.command == "validate":
        count, errors = validate(args.journeys, args.events, args.segments, args.policy)
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        if errors:
            print(f"{len(errors)} problem(s) in {count} journey(s)", file=sys.stderr)
            return 1
        print(f"ok: {count} journey(s) valid, every template rendered with the sample events")
        return 0

    folder = args.journeys / args.id
    if not (folder / "journey.yaml").is_file():
        print(f"error: no journey {args.id!r} (no {folder / 'journey.yaml'})", file=sys.stderr)
        return 2
    try:
        journey = load_journey(folder)
    except JourneyLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(mermaid(journey.definition))
    return 0


if __name__ == "__main__":
    sys.exit(main())
