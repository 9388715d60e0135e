"""The journey catalogue: every journey's definition and state machine, as one JSON file.

It replaces the JOURNEYS environment variable (4 KB in all for a Lambda function's environment: a
few dozen journeys). The file is built at synth and shipped in the shared layer
(`/opt/continuum/journeys.json`); the local runtime writes it to a temp dir and rewrites it when
journeys are reloaded, so a reader caches it by path and modification (`load_catalogue`).

Shape: {"journeys": [{"stateMachine": <state machine name>, "definition": <JourneyDefinition JSON>}]}
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import ConfigDict, Field

from shared.models.base import Model
from shared.models.journey import Journey, JourneyDefinition


class CatalogueEntry(Model):
    model_config = ConfigDict(defer_build=True, frozen=True, validate_by_name=True, serialize_by_alias=True)

    state_machine: str = Field(alias="stateMachine", min_length=1, max_length=80)
    definition: JourneyDefinition

    @property
    def id(self) -> str:
        return self.definition.id

    def start_arn(self, prefix: str, alias: str = "") -> str:
        """What the router starts: the state machine's alias when there is one (cloud: `live`, which
        points at the current version), else the state machine itself.
        `prefix`: arn:<partition>:states:<region>:<account>:stateMachine:"""
        arn = f"{prefix}{self.state_machine}"
        return f"{arn}:{alias}" if alias else arn


class Catalogue(Model):
    model_config = ConfigDict(defer_build=True, frozen=True)

    journeys: list[CatalogueEntry]

    def get(self, journey_id: str) -> CatalogueEntry | None:
        return next((entry for entry in self.journeys if entry.id == journey_id), None)


def load_catalogue(path: str | Path) -> Catalogue:
    """The catalogue at `path`, read again only when the file changed (a local reload rewrites it)."""
    stat = os.stat(path)
    return _load(str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int, inode: int) -> Catalogue:
    return Catalogue.model_validate_json(Path(path).read_bytes())


def write_catalogue(
    journeys: Iterable[Journey | JourneyDefinition], names: Mapping[str, str], path: str | Path
) -> Path:
    """Write the catalogue for these journeys, `names` giving each journey id its state machine
    name. Written to a temporary file and renamed, so a reader never sees half a catalogue."""
    definitions = [j.definition if isinstance(j, Journey) else j for j in journeys]
    catalogue = Catalogue(
        journeys=[CatalogueEntry(state_machine=names[d.id], definition=d) for d in definitions]
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(catalogue.model_dump(mode="json", by_alias=True), file, separators=(",", ":"))
    os.replace(temporary, target)
    return target
