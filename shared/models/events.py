"""The one envelope of every event Continuum puts on its bus (the EventBridge `detail`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.models.base import Model
from shared.models.types import ProfileId

# Sources and detail-types on the bus: handlers publish with these, routes (infra/topology.py) match them.
SOURCE_INGEST = "continuum.ingest"
SOURCE_IDENTITY = "continuum.identity"
DETAIL_RESOLVED = "event.resolved"


class Envelope(Model):
    name: str
    version: int = 1
    correlationId: str
    time: str
    data: dict[str, Any]


class BusEvent(Model):
    """One entry for PutEvents: where it comes from, what it is, and its envelope."""

    source: str
    detail_type: str
    detail: Envelope


class ResolvedEvent(Model):
    """`data` of an `event.resolved` envelope: a customer event and the profile it belongs to."""

    profileId: ProfileId
    # Every profile id that now resolves to profileId (itself first, then those merged into it):
    # journeys started under a merged id still exit on the survivor's goal event.
    profileIds: list[ProfileId] = Field(min_length=1)
    userId: str | None = None
    event: dict[str, Any]
