"""Load journeys from their folders: `<journeys>/<id>/journey.yaml` and `templates/*.yaml`, with the
layouts and partials every journey shares: `<journeys>/_layouts/<name>.html.liquid` / `.txt.liquid`
and `<journeys>/_partials/<name>.liquid`.

Used at build time (CDK synth) and by the local runtime; never inside a Lambda function, which
receives its template content compiled into the state machine.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from shared.delivery.templates import variable_paths
from shared.models.journey import Journey, JourneyDefinition, SendStep, Template
from shared.models.policy import Policy
from shared.segments.catalogue import SegmentCatalogue


class JourneyLoadError(Exception):
    """A journey folder that cannot be loaded, with the file and what is wrong in it."""


def _read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise JourneyLoadError(f"{path}: not valid YAML: {error}") from error


LAYOUTS_DIR = "_layouts"
PARTIALS_DIR = "_partials"
# A layout file's suffix → the email field it wraps.
_LAYOUT_FIELDS = {".html.liquid": "html", ".txt.liquid": "text"}


def load_layouts(root: Path) -> dict[str, dict[str, str]]:
    """`<root>/_layouts/<name>.html.liquid` and `<name>.txt.liquid`: name → field → Liquid source."""
    layouts: dict[str, dict[str, str]] = {}
    for path in sorted((root / LAYOUTS_DIR).glob("*.liquid")):
        suffix = next((s for s in _LAYOUT_FIELDS if path.name.endswith(s)), None)
        if suffix is None:
            raise JourneyLoadError(f"{path}: a layout is <name>.html.liquid or <name>.txt.liquid")
        name = path.name.removesuffix(suffix)
        layouts.setdefault(name, {})[_LAYOUT_FIELDS[suffix]] = path.read_text(encoding="utf-8")
    return layouts


def load_partials(root: Path) -> dict[str, str]:
    """`<root>/_partials/<name>.liquid`: name (`footer.html`) → Liquid source."""
    return {
        path.name.removesuffix(".liquid"): path.read_text(encoding="utf-8")
        for path in sorted((root / PARTIALS_DIR).glob("*.liquid"))
    }


def load_journey(folder: Path) -> Journey:
    """The journey in `folder`, with the layouts and partials beside it (in its parent folder)."""
    definition_file = folder / "journey.yaml"
    try:
        definition = JourneyDefinition.model_validate(_read_yaml(definition_file))
        templates = {}
        for path in sorted((folder / "templates").glob("*.yaml")):
            raw = _read_yaml(path)
            if not isinstance(raw, dict):
                raise JourneyLoadError(f"{path}: a template is a mapping of channel → content")
            templates[path.stem] = Template.model_validate({"name": path.stem, **raw})
        if definition.id != folder.name:
            raise JourneyLoadError(f"{definition_file}: id {definition.id!r} must equal its folder name")
        return Journey(
            definition=definition,
            templates=templates,
            layouts=load_layouts(folder.parent),
            partials=load_partials(folder.parent),
        )
    except ValidationError as error:
        raise JourneyLoadError(f"{folder}: {error}") from error


def computed_placeholders(journey: Journey) -> set[str]:
    """The computed traits the journey's templates render (`{{ computed.<id> }}`), with their layout
    and partials (python-liquid's static analysis)."""
    named = set()
    for name, template in journey.templates.items():
        for channel in ("email", "push"):
            if template.content_for(channel) is None:
                continue
            sent = journey.send_content(name, channel)
            paths = variable_paths(sent["content"], layout=sent.get("layout"), partials=sent.get("partials"))
            for path in paths:
                root, _, rest = path.partition(".")
                if root == "computed" and rest:
                    named.add(rest.split(".", 1)[0])
    return named


def segment_problems(journey: Journey, segments: SegmentCatalogue) -> list[str]:
    """What the journey names that the segment catalogue does not declare: segments (trigger, exit_on,
    branch cases) and computed traits (branch cases, templates). A misspelt name would otherwise
    never match: the journey would silently never start, exit or take its branch."""
    definition = journey.definition
    problems = []
    declared_segments = {segment.id for segment in segments.segments}
    unknown = sorted(definition.segments_named() - declared_segments)
    if unknown:
        problems.append(
            f"names unknown segment(s) {unknown}"
            f" (declared in segments/: {sorted(declared_segments) or 'none'})"
        )
    declared_traits = {trait.id for trait in segments.computed}
    unknown = sorted((definition.computed_named() | computed_placeholders(journey)) - declared_traits)
    if unknown:
        problems.append(
            f"names unknown computed trait(s) {unknown} (declared in segments/computed_traits.yaml:"
            f" {sorted(declared_traits) or 'none'})"
        )
    return problems


def policy_problems(journey: Journey, policy: Policy) -> list[str]:
    """What the journey names that the send policy does not declare: a send step's topic. A misspelt
    topic would otherwise be checked against no consent and no cap."""
    declared = set(policy.topics)
    problems = []
    for step in journey.definition.walk():
        if isinstance(step, SendStep) and step.send.topic is not None and step.send.topic not in declared:
            problems.append(
                f"step {step.id!r} sends on unknown topic {step.send.topic!r}"
                f" (declared in policy.yaml: {sorted(declared)})"
            )
    return problems


def load_journeys(
    root: Path, segments: SegmentCatalogue | None = None, policy: Policy | None = None
) -> list[Journey]:
    """Every journey under `root`, in folder order; folders without a journey.yaml are skipped.
    With the segment catalogue, a journey naming a segment or computed trait it does not declare
    fails to load; with the policy, so does one sending on a topic it does not declare."""
    journeys = [
        load_journey(folder) for folder in sorted(root.iterdir()) if (folder / "journey.yaml").is_file()
    ]
    if segments is not None:
        for journey in journeys:
            problems = segment_problems(journey, segments)
            if problems:
                raise JourneyLoadError(f"{root / journey.definition.id}: {'; '.join(problems)}")
    if policy is not None:
        for journey in journeys:
            problems = policy_problems(journey, policy)
            if problems:
                raise JourneyLoadError(f"{root / journey.definition.id}: {'; '.join(problems)}")
    return journeys
