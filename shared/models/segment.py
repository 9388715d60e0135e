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


_SegmentIdText = Annotated[str, Field(max_length=1024)]
# The document says what is accepted: numbers too (as text).
SegmentId = Annotated[
    _SegmentIdText | None,
    BeforeValidator(_id_as_string, json_schema_input_type=_SegmentIdText | int | float | None),
]


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
    """What the user did."""

    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyCall(SegmentCall):
    """Who the user is."""

    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)


class PageCall(SegmentCall):
    """A page the user viewed (websites)."""

    type: Literal["page"] = "page"
    name: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)


class ScreenCall(SegmentCall):
    """A screen the user viewed (mobile apps)."""

    type: Literal["screen"] = "screen"
    name: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)


class GroupCall(SegmentCall):
    """The account / organisation the user belongs to; `traits` are the group's, not the user's."""

    type: Literal["group"] = "group"
    groupId: SegmentId = Field(min_length=1)
    traits: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_group(self) -> GroupCall:
        if not self.groupId:
            raise ValueError("groupId is required")
        return self


class AliasCall(SegmentCall):
    """The same user under a previous id (e.g. the anonymous id before sign-up)."""

    type: Literal["alias"] = "alias"
    previousId: SegmentId = Field(min_length=1)

    @model_validator(mode="after")
    def _has_both_ids(self) -> AliasCall:
        if not (self.previousId and self.userId):
            raise ValueError("alias needs previousId and userId")
        return self


SINGLE_CALLS: dict[str, type[SegmentCall]] = {
    "identify": IdentifyCall,
    "track": TrackCall,
    "page": PageCall,
    "screen": ScreenCall,
    "group": GroupCall,
    "alias": AliasCall,
}

Call = Annotated[
    TrackCall | IdentifyCall | PageCall | ScreenCall | GroupCall | AliasCall, Field(discriminator="type")
]


class Batch(Model):
    model_config = ConfigDict(extra="allow")

    batch: list[Call] = Field(min_length=1)
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    sentAt: datetime | None = None
