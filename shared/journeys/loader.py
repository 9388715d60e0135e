"""Load journeys from their folders: `<journeys>/<id>/journey.yaml` and `templates/*.yaml`.

Used at build time (CDK synth) and by the local runtime; never inside a Lambda function, which
receives its template content compiled into the state machine.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from shared.models.journey import Journey, JourneyDefinition, Template


class JourneyLoadError(Exception):
    """A journey folder that cannot be loaded, with the file and what is wrong in it."""


def _read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise JourneyLoadError(f"{path}: not valid YAML: {error}") from error


def load_journey(folder: Path) -> Journey:
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
        return Journey(definition=definition, templates=templates)
    except ValidationError as error:
        raise JourneyLoadError(f"{folder}: {error}") from error


def load_journeys(root: Path) -> list[Journey]:
    """Every journey under `root`, in folder order; folders without a journey.yaml are skipped."""
    return [load_journey(folder) for folder in sorted(root.iterdir()) if (folder / "journey.yaml").is_file()]
