"""Segment HTTP Tracking API calls, as the SDKs send them (https://segment.com/docs/connections/spec/)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from shared.models.base import Model

# What ingest accepts is what can be stored downstream: a value that could never be stored is refused
# with a 400 naming it, rather than answered 200 and then failing in identity for good. Limits count
# UTF-8 bytes, as DynamoDB counts its key sizes (https://docs.aws.amazon.com/amazondynamodb/latest/
# developerguide/ServiceQuotas.html: partition key ≤ 2,048 bytes, sort key ≤ 1,024 bytes).
#
# An identifier (userId, anonymousId, alias's previousId, email, phone, device id and token, an
# external id) becomes the partition key `identifier#<type>#<value>` in the profiles table
# (shared/store/profiles.py), a type being at most 31 characters: ≤ 43 bytes of prefix, so a value
# could take 2,005 bytes there; but the Identifier model caps a value at 1,024 characters
# (shared/models/profile.py). 1,024 bytes satisfies both, with room to spare in the key. groupId is
# held to the same limit, as ids are.
MAX_IDENTIFIER_BYTES = 1024
# A messageId is in two keys: the seen-messages key `<sourceId>#<messageId>` (partition key, ~21
# bytes of prefix) and, tighter, a timeline entry's sort key `event#<timestamp>#<messageId>`
# (31 bytes of prefix: the timestamp is ISO with milliseconds, 24 characters), leaving 993 bytes.
# Ingest's limit was 256 characters; it stays 256, now in bytes: well inside the key (SDKs send
# UUIDs, 36 bytes), and the documented maxLength of 256 remains a true bound.
MAX_MESSAGE_ID_BYTES = 256


TOO_MANY_BYTES = "String should have at most {limit} bytes in UTF-8, not {size}"


def utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def bytes_over(text: str, limit: int) -> int | None:
    """The UTF-8 size of `text` when it is over `limit` bytes, else None."""
    # Most values are short ASCII: a UTF-8 character is at most 4 bytes, so no need to encode.
    if len(text) * 4 > limit and (size := utf8_size(text)) > limit:
        return size
    return None


def _fits(limit: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        if (size := bytes_over(value, limit)) is not None:
            raise PydanticCustomError("string_too_many_bytes", TOO_MANY_BYTES, {"limit": limit, "size": size})
        return value

    return check


def _schema(limit: int, what: str) -> WithJsonSchema:
    # The JSON schema can only say maxLength, in characters: a bound the byte limit implies (a
    # character is at least one byte), so a value the document refuses is refused here too.
    return WithJsonSchema(
        {"type": "string", "maxLength": limit, "description": f"{what}: at most {limit} bytes in UTF-8"}
    )


def _id_as_string(value: object) -> object:
    # Several SDKs send numeric ids; Segment treats them as strings.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


IdText = Annotated[str, AfterValidator(_fits(MAX_IDENTIFIER_BYTES)), _schema(MAX_IDENTIFIER_BYTES, "an id")]
# The document says what is accepted: numbers too (as text).
SegmentId = Annotated[
    IdText | None, BeforeValidator(_id_as_string, json_schema_input_type=IdText | int | float | None)
]
MessageId = Annotated[
    str,
    AfterValidator(_fits(MAX_MESSAGE_ID_BYTES)),
    _schema(MAX_MESSAGE_ID_BYTES, "the call's unique id; a repeat within the dedupe window is dropped"),
]


class SegmentCall(Model):
    # Fields the spec does not name are kept and passed along untouched.
    model_config = ConfigDict(extra="allow")

    userId: SegmentId = None
    anonymousId: SegmentId = None
    messageId: MessageId | None = None
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


# Event names Continuum itself gives the journey router (`$segment.entered` / `$segment.exited`, a
# profile entering or leaving a segment: shared/journeys/router.py). A customer's track call may not
# use them, or anyone with a write key could start or end segment journeys.
RESERVED_EVENT_PREFIX = "$segment."


def _not_reserved(name: str) -> str:
    if name.startswith(RESERVED_EVENT_PREFIX):
        raise PydanticCustomError(
            "reserved_event_name",
            "event names starting with {prefix} are reserved for Continuum's segment events",
            {"prefix": RESERVED_EVENT_PREFIX},
        )
    return name


EventText = Annotated[
    str,
    Field(min_length=1, max_length=200),
    AfterValidator(_not_reserved),
    # The document says so too (JSON Schema `not`), so a client generated from it knows.
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "not": {"pattern": "^\\$segment\\."},
            "description": f"the event's name; names starting with `{RESERVED_EVENT_PREFIX}` are reserved"
            " (Continuum's segment events) and refused with a 400",
        }
    ),
]


class TrackCall(SegmentCall):
    """What the user did."""

    type: Literal["track"] = "track"
    event: EventText
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
