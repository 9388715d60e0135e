"""Segment HTTP Tracking API calls, as the SDKs send them (https://segment.com/docs/connections/spec/)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from shared.models.base import Model


def _id_as_string(value: object) -> object:
    # Several SDKs send numeric ids; Segment treats them as strings.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


SegmentId = Annotated[str | None, BeforeValidator(_id_as_string), Field(default=None, max_length=1024)]


class SegmentCall(Model):
    # Fields the spec does not name are kept and passed along untouched.
    model_config = ConfigDict(extra="allow")

    userId: SegmentId = None
    anonymousId: SegmentId = None
    messageId: str | None = Field(default=None, max_length=256)
    timestamp: datetime | None = None
    sentAt: datetime | None = None
    receivedAt: datetime | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_identity(self) -> SegmentCall:
        if not (self.userId or self.anonymousId):
            raise ValueError("userId or anonymousId is required")
        return self


class TrackCall(SegmentCall):
    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyCall(SegmentCall):
    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)


Call = Annotated[TrackCall | IdentifyCall, Field(discriminator="type")]


class Batch(Model):
    model_config = ConfigDict(extra="allow")

    batch: list[Call] = Field(min_length=1)
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
