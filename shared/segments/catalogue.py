"""The segment catalogue: every segment definition and computed trait, loaded from `segments/` and
shipped as one JSON file, like the journey catalogue (shared/journeys/catalogue.py).

`segments/<id>.yaml` holds one segment (id == file stem); `segments/computed_traits.yaml` holds the
list of computed traits. The file is built at synth and shipped in the shared layer
(`/opt/continuum/segments.json`, env `SEGMENT_CATALOGUE`); the local runtime writes it from its
segments folder. A reader caches it by path and modification (`load_segment_catalogue`).
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import ConfigDict, Field, ValidationError, model_validator

from shared.models.base import Model
from shared.models.segments import (
    Audience,
    ComputedNode,
    ComputedTrait,
    NoEventSinceNode,
    SegmentDefinition,
)

COMPUTED_TRAITS_FILE = "computed_traits.yaml"


class SegmentLoadError(Exception):
    """A segments folder that cannot be loaded, with the file and what is wrong in it."""


class SegmentCatalogue(Model):
    model_config = ConfigDict(defer_build=True, frozen=True)

    segments: list[SegmentDefinition] = Field(default_factory=list)
    computed: list[ComputedTrait] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> SegmentCatalogue:
        _unique("segment id", [s.id for s in self.segments])
        _unique("computed trait id", [t.id for t in self.computed])
        declared = {t.id for t in self.computed}
        feeds: dict[str, str] = {}
        for segment in self.segments:
            for node in segment.nodes():
                if isinstance(node, ComputedNode):
                    unknown = sorted(set(node.computed) - declared)
                    if unknown:
                        raise ValueError(
                            f"segment {segment.id!r}: unknown computed trait(s) {unknown}"
                            f" (declared: {sorted(declared) or 'none'})"
                        )
                if (
                    isinstance(node, NoEventSinceNode)
                    and node.no_event_since.event == node.no_event_since.since
                ):
                    raise ValueError(f"segment {segment.id!r}: no_event_since names the same event twice")
            for sync in segment.audiences:
                if sync.key in feeds:
                    raise ValueError(
                        f"audience {sync.key!r} is fed by segments {feeds[sync.key]!r} and {segment.id!r}:"
                        " an audience follows one segment"
                    )
                feeds[sync.key] = segment.id
        _fits_one_item(self)
        return self

    def get(self, segment_id: str) -> SegmentDefinition | None:
        return next((s for s in self.segments if s.id == segment_id), None)

    def computed_trait(self, trait_id: str) -> ComputedTrait | None:
        return next((t for t in self.computed if t.id == trait_id), None)

    def audiences(self) -> list[Audience]:
        return [
            Audience(platform=a.platform, audience=a.audience, segment=s.id)
            for s in self.segments
            for a in s.audiences
        ]

    @property
    def empty(self) -> bool:
        return not self.segments and not self.computed


def _fits_one_item(catalogue: SegmentCatalogue) -> None:
    """Refuse a catalogue under which a profile's segment state could outgrow one DynamoDB item:
    every later write of such a profile would fail for good. The bound assumes identity's default
    limits of emails and phones (shared/identity/rules.py), whose hashes the state keeps per audience."""
    # Imported here: the engine imports this module (SegmentCatalogue is its input).
    from shared.identity.rules import IdentityRules
    from shared.segments.engine import STATE_SIZE_CEILING, computed_trait_bound, state_size_bound

    rules = IdentityRules()
    bound = state_size_bound(catalogue, rules.limit("email"), rules.limit("phone"))
    if bound <= STATE_SIZE_CEILING:
        return
    largest = sorted(catalogue.computed, key=computed_trait_bound, reverse=True)[:3]
    parts = ", ".join(f"{t.id!r} ~{computed_trait_bound(t):,}" for t in largest)
    raise ValueError(
        f"a profile's segment state could reach {bound:,} bytes under this catalogue, over the"
        f" {STATE_SIZE_CEILING:,} allowed (it is one DynamoDB item, at most 400 KB);"
        + (f" the largest computed traits: {parts}" if parts else "")
        + " — shorten `within` of windowed computed traits (one bucket per day), or use fewer traits,"
        " segments or audiences"
    )


def _unique(what: str, ids: list[str]) -> None:
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"{what}s must be unique; repeated: {repeated}")


def _read_yaml(path: Path) -> object:
    # Imported here: the segments functions read the JSON catalogue in the shared layer, which does
    # not ship PyYAML; only the build (synth, the local runtime, the CLI) reads the YAML files.
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SegmentLoadError(f"{path}: not valid YAML: {error}") from error


def _errors(error: ValidationError) -> str:
    """Each error as `field.path: message` (pydantic's own text, without the URL lines)."""
    lines = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        lines.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
    return "; ".join(lines)


def load_segments(root: Path) -> SegmentCatalogue:
    """Every segment under `root` (`<id>.yaml`, in file order) and its computed traits. A missing
    folder or an empty one is an empty catalogue."""
    computed: list[ComputedTrait] = []
    segments: list[SegmentDefinition] = []
    if not root.is_dir():
        return SegmentCatalogue()
    traits_file = root / COMPUTED_TRAITS_FILE
    if traits_file.is_file():
        raw = _read_yaml(traits_file)
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise SegmentLoadError(f"{traits_file}: a list of computed traits (- id: ..., event: ...)")
        for index, item in enumerate(raw):
            try:
                computed.append(ComputedTrait.model_validate(item))
            except ValidationError as error:
                raise SegmentLoadError(f"{traits_file}: trait {index}: {_errors(error)}") from error
    for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
        if path.name in (COMPUTED_TRAITS_FILE, "computed_traits.yml"):
            continue
        raw = _read_yaml(path)
        try:
            segment = SegmentDefinition.model_validate(raw)
        except ValidationError as error:
            raise SegmentLoadError(f"{path}: {_errors(error)}") from error
        if segment.id != path.stem:
            raise SegmentLoadError(f"{path}: id {segment.id!r} must equal its file name ({path.stem!r})")
        segments.append(segment)
    try:
        return SegmentCatalogue(segments=segments, computed=computed)
    except ValidationError as error:
        raise SegmentLoadError(f"{root}: {_errors(error)}") from error


def load_segment_catalogue(path: str | Path) -> SegmentCatalogue:
    """The catalogue at `path`, read again only when the file changed (a local reload rewrites it)."""
    stat = os.stat(path)
    return _load(str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int, inode: int) -> SegmentCatalogue:
    return SegmentCatalogue.model_validate_json(Path(path).read_bytes())


def write_segment_catalogue(catalogue: SegmentCatalogue, path: str | Path) -> Path:
    """Write the catalogue as JSON, to a temporary file then renamed: a reader never sees half of it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(catalogue.model_dump(mode="json"), file, separators=(",", ":"))
    os.replace(temporary, target)
    return target
