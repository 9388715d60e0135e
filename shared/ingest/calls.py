"""From an HTTP request body to the events put on the bus: parse, validate, stamp."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from shared import clock
from shared.models.events import SOURCE_INGEST, BusEvent, Envelope
from shared.models.segment import Batch, IdentifyCall, SegmentCall, TrackCall


class IngestError(Exception):
    status = 400

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class BadRequestError(IngestError):
    status = 400


class UnauthorizedError(IngestError):
    status = 401


SINGLE_CALLS: dict[str, type[SegmentCall]] = {"track": TrackCall, "identify": IdentifyCall}
CALL_TYPES = frozenset({*SINGLE_CALLS, "batch"})
_BATCH = TypeAdapter(Batch)


def authenticate(authorization: str | None, accepted_sha256: frozenset[str]) -> None:
    """HTTP Basic with the write key as the username (Segment's scheme); keys are compared as hashes."""
    if not authorization or not authorization.lower().startswith("basic "):
        raise UnauthorizedError("missing write key: send it as the HTTP Basic username")
    try:
        username = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8").split(":", 1)[0]
    except (binascii.Error, UnicodeDecodeError) as error:
        raise UnauthorizedError("malformed HTTP Basic credentials") from error
    digest = hashlib.sha256(username.encode("utf-8")).hexdigest()
    if not any(hmac.compare_digest(digest, accepted) for accepted in accepted_sha256):
        raise UnauthorizedError("unknown write key")


def _json(body: str | None) -> Any:
    if not body:
        raise BadRequestError("empty body: send a JSON object")
    try:
        return json.loads(body)
    except json.JSONDecodeError as error:
        raise BadRequestError(
            f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from error


def _details(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"loc": ".".join(str(part) for part in (*prefix, *item["loc"])), "error": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


def parse(call_type: str, body: str | None) -> list[SegmentCall]:
    """The calls in a request to /v1/<call_type>; `batch` holds several."""
    payload = _json(body)
    if not isinstance(payload, dict):
        raise BadRequestError("the body must be a JSON object")
    try:
        if call_type == "batch":
            batch = _BATCH.validate_python(payload)
            # Batch-level context and integrations apply to every call that does not set its own.
            for call in batch.batch:
                call.context = {**batch.context, **call.context}
                call.integrations = {**batch.integrations, **call.integrations}
            return list(batch.batch)
        return [SINGLE_CALLS[call_type].model_validate({**payload, "type": call_type})]
    except ValidationError as error:
        raise BadRequestError(f"invalid {call_type} call", _details(error)) from error


def to_bus_events(calls: list[SegmentCall], received_at: datetime | None = None) -> list[BusEvent]:
    """Stamp each call as Segment does (messageId, receivedAt, clock-skew-corrected timestamp)."""
    received = received_at or clock.now()
    events = []
    for call in calls:
        call.messageId = call.messageId or str(uuid.uuid4())
        call.receivedAt = received
        if call.timestamp is None:
            call.timestamp = received
        elif call.sentAt is not None:
            sent, stamped = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (call.sentAt, call.timestamp))
            # The device's clock may be off: shift the timestamp by the gap between sentAt and receipt.
            call.timestamp = received - (sent - stamped)
        data = call.model_dump(mode="json", exclude_none=True)
        for name in ("timestamp", "sentAt", "receivedAt"):
            value = getattr(call, name)
            if value is not None:
                data[name] = clock.iso(value)
        call_type = data["type"]
        events.append(
            BusEvent(
                source=SOURCE_INGEST,
                detail_type=f"segment.{call_type}",
                detail=Envelope(
                    name=f"segment.{call_type}",
                    correlationId=call.messageId,
                    time=clock.iso(received),
                    data=data,
                ),
            )
        )
    return events
