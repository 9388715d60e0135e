"""What the Segments API shows: a segment's definition and size, and the computed traits (the shapes
are documented in shared/ingest/openapi.py)."""

from __future__ import annotations

from typing import Any

from shared.models.segments import ComputedTrait, SegmentDefinition


def segment_view(segment: SegmentDefinition, size: int) -> dict[str, Any]:
    """One segment: `{id, name, description (null when none), when, audiences, size}`."""
    shown = segment.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {
        "id": shown["id"],
        "name": shown["name"],
        "description": shown.get("description"),
        "when": shown["when"],
        "audiences": shown.get("audiences", []),
        "size": size,
    }


def computed_trait_view(trait: ComputedTrait) -> dict[str, Any]:
    return trait.model_dump(mode="json", by_alias=True, exclude_none=True)
