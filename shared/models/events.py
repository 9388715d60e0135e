"""The one envelope of every event Continuum puts on its bus (the EventBridge `detail`)."""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import Field

from shared.models.base import Model
from shared.models.types import ProfileId

# Sources and detail-types on the bus: handlers publish with these, routes (infra/topology.py) match them.
SOURCE_INGEST = "continuum.ingest"
SOURCE_IDENTITY = "continuum.identity"
DETAIL_RESOLVED = "event.resolved"
DETAIL_MERGED = "profile.merged"
DETAIL_UNMERGED = "profile.unmerged"
DETAIL_IDENTIFIER_REMOVED = "profile.identifier_removed"
DETAIL_ERASED = "profile.erased"
# Segment membership changes (functions/segments), `data` a SegmentChange (shared/models/segment.py).
SOURCE_SEGMENTS = "continuum.segments"
DETAIL_SEGMENT_ENTERED = "segment.entered"
DETAIL_SEGMENT_EXITED = "segment.exited"
# Step Functions' own event when an execution changes status (on the default bus in the cloud).
SOURCE_STATES = "aws.states"
DETAIL_EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"
# A journey execution that ended like this is a failure an operator hears of: the journey router counts
# it as this metric, which one alarm watches (infra/constructs/monitoring.py).
EXECUTION_FAILED_STATUSES = ("FAILED", "TIMED_OUT")
EXECUTIONS_FAILED_METRIC = "JourneyExecutionsFailed"


class PublishError(Exception):
    """Some events could not be put on the bus after retries. `published` lists the indices (in the
    order given) of those that were. Raised by the publisher (shared/store/bus.py); a domain type, so
    that the domain handles it without importing the store."""

    def __init__(self, failed: int, reason: str, published: list[int]):
        super().__init__(f"{failed} event(s) not published: {reason}")
        self.failed = failed
        self.published = published


class Envelope(Model):
    name: str
    version: int = 1
    correlationId: str
    time: str
    data: dict[str, Any]


class BusEvent(NamedTuple):
    """One entry for PutEvents: where it comes from, what it is, and its envelope, serialized once
    (ingest builds thousands of these a second: no validation, no second serialization)."""

    source: str
    detail_type: str
    detail_json: str
    correlation_id: str

    @classmethod
    def of(cls, source: str, detail_type: str, envelope: Envelope) -> BusEvent:
        return cls(source, detail_type, envelope.model_dump_json(), envelope.correlationId)

    @classmethod
    def publishing(cls, source: str, name: str, correlation_id: str, time: str, data: Model) -> BusEvent:
        """An event named `name` (its detail-type too) carrying `data`."""
        envelope = Envelope(
            name=name, correlationId=correlation_id, time=time, data=data.model_dump(mode="json")
        )
        return cls.of(source, name, envelope)

    @property
    def detail(self) -> Envelope:
        return Envelope.model_validate_json(self.detail_json)

    @property
    def entry_size(self) -> int:
        """Its size as PutEvents counts it (source, detail-type, detail in UTF-8, 14 for the time)."""
        return sum(_utf8_len(part) for part in (self.source, self.detail_type, self.detail_json)) + 14


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class ResolvedEvent(Model):
    """`data` of an `event.resolved` envelope: a customer event and the profile it belongs to."""

    profileId: ProfileId
    userId: str | None = None  # the event's own userId, if it has one
    event: dict[str, Any]


class ProfilesMerged(Model):
    """`data` of a `profile.merged` envelope: these profiles now resolve to the survivor."""

    survivor: ProfileId
    merged: list[ProfileId] = Field(min_length=1)


class ExecutionStatusChange(Model):
    """`detail` of a Step Functions `Execution Status Change` event (the fields the router reads)."""

    executionArn: str
    stateMachineArn: str | None = None
    status: str
    output: str | None = None
