"""From an HTTP request to the events put on the bus: decode, check limits, parse, validate, stamp.

Limits are Segment's: 32 KB per call, 500 KB and 2,500 calls per batch. Every problem is an
`IngestError` carrying its HTTP status and a JSON body that says what is wrong and where.
"""

from __future__ import annotations

import base64
import binascii
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json, to_json

from shared import clock
from shared.models.events import SOURCE_INGEST, BusEvent
from shared.models.segment import (
    MAX_IDENTIFIER_BYTES,
    SINGLE_CALLS,
    TOO_MANY_BYTES,
    Batch,
    IdentifyCall,
    SegmentCall,
    bytes_over,
)

MAX_CALL_BYTES = 32 * 1024
# An event time further in the future than this, after the sentAt correction, is a wrong device clock
# and is replaced by the time received (the device's value kept as `originalTimestamp`). Without the
# bound, an identify stamped 2030 wins over every later trait change (traits are last-write-wins by
# event time). Five minutes: real devices drift by seconds, and within minutes a wrong order costs
# little; it is a common clock-skew tolerance (Kerberos' default, for one). Segment's own threshold is
# not documented that we could find; PostHog clamps at 23 hours, too loose for trait ordering.
FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_CALLS = 2500
BATCH_CALLS = frozenset({"batch", "import"})  # /v1/import is Segment's synonym of /v1/batch
CALL_TYPES = frozenset({*SINGLE_CALLS, *BATCH_CALLS})
# analytics.js posts to one-letter paths (/v1/t, /v1/i, …, /v1/b for its batches).
SHORT_PATHS = {
    "t": "track",
    "i": "identify",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
    "b": "batch",
}


def call_type_of(path: str) -> str | None:
    """The call type a request path names (`/v1/track` or analytics.js's `/v1/t`), or None."""
    name = path.removeprefix("/v1/")
    name = SHORT_PATHS.get(name, name)
    return name if name in CALL_TYPES and path.startswith("/v1/") else None


# Browsers (analytics.js) call from any site; these answer their preflight and go on every response.
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
    "Access-Control-Max-Age": "86400",
}


class IngestError(Exception):
    status = 400

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None, **fields: Any):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.fields = fields  # extra keys of the JSON body, e.g. the limit and the offending index

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "details": self.details, **self.fields}


class BadRequestError(IngestError):
    status = 400


class UnauthorizedError(IngestError):
    status = 401


class PayloadTooLargeError(IngestError):
    status = 413


_BATCH = TypeAdapter(Batch)


def decode_body(body: str | None, is_base64: bool, content_encoding: str | None) -> str:
    """The request body as text: base64 undone (API Gateway's binary bodies), gzip undone, size checked."""
    raw = (body or "").encode("utf-8")
    if is_base64:
        try:
            raw = base64.b64decode(raw, validate=True)
        except binascii.Error as error:
            raise BadRequestError("the body is not valid base64") from error
    encoding = (content_encoding or "").strip().lower()
    if encoding == "gzip":
        raw = _gunzip(raw)
    elif encoding not in ("", "identity"):
        raise BadRequestError(f"unsupported Content-Encoding {content_encoding!r}: send gzip or none")
    if len(raw) > MAX_BATCH_BYTES:
        raise PayloadTooLargeError(
            f"the body is {len(raw)} bytes, over the limit of {MAX_BATCH_BYTES}", limit="batch_bytes"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadRequestError("the body is not UTF-8 text") from error


# gzip bodies. A compressed body never needs to be much larger than what it inflates to (deflate's
# stored blocks add 5 bytes per 64 KB; each member ~20 bytes of header and trailer), so one over the
# batch limit plus this slack cannot hold an acceptable body and is refused before any inflating.
MAX_GZIP_BYTES = MAX_BATCH_BYTES + 64 * 1024
# Real clients send one member; a concatenation of a few is legal (RFC 1952). A body of thousands of
# empty members is only work for us: refuse it at this count.
MAX_GZIP_MEMBERS = 64
# The input is handed to the inflater a window at a time: what it copies past a member's end
# (`unused_data`) is then at most a window, so the work is linear in the input whatever the members.
GZIP_WINDOW = 16 * 1024


def _gunzip(raw: bytes) -> bytes:
    """Inflate a gzip body of one or more members, bounded in input, output and members. Written by
    hand because gzip.decompress and GzipFile re-copy the rest of the input after each member
    (quadratic in the member count) and bound neither the output nor the members."""
    if len(raw) > MAX_GZIP_BYTES:
        raise PayloadTooLargeError(
            f"the compressed body is {len(raw)} bytes, over the limit of {MAX_GZIP_BYTES}",
            limit="batch_bytes",
        )
    view = memoryview(raw)
    pieces: list[bytes] = []
    produced = position = members = 0
    while position < len(raw):
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise BadRequestError(f"the gzip body has over {MAX_GZIP_MEMBERS} members", limit="gzip_members")
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not inflater.eof:
            if position >= len(raw):
                raise BadRequestError("the body is not valid gzip: it is truncated")
            window = view[position : position + GZIP_WINDOW]
            try:
                # Bounded: a small compressed body may expand enormously, so stop just past the limit.
                piece = inflater.decompress(window, MAX_BATCH_BYTES + 1 - produced)
            except zlib.error as error:
                raise BadRequestError(f"the body is not valid gzip: {error}") from error
            produced += len(piece)
            if produced > MAX_BATCH_BYTES or inflater.unconsumed_tail:
                raise PayloadTooLargeError(
                    f"the decompressed body is over the limit of {MAX_BATCH_BYTES} bytes", limit="batch_bytes"
                )
            pieces.append(piece)
            position += len(window) - len(inflater.unused_data)
    return b"".join(pieces)


def _json(text: str) -> Any:
    # pydantic-core's parser, as for batches: it refuses what is not JSON (NaN, lone surrogates that
    # no UTF-8 store could hold) and bounds nesting.
    try:
        return from_json(text, allow_inf_nan=False)
    except ValueError as error:
        raise BadRequestError(f"malformed JSON: {error}") from error


def _details(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"loc": ".".join(str(part) for part in (*prefix, *item["loc"])), "error": item["msg"]}
        for item in error.errors(include_url=False, include_input=False, include_context=False)
    ]


def _write_key(extra: dict[str, Any] | None) -> str | None:
    """The `writeKey` a body carries, taken out of it: it never reaches the bus."""
    write_key = (extra or {}).pop("writeKey", None)
    if write_key is not None and not isinstance(write_key, str):
        raise BadRequestError("writeKey must be a string", [{"loc": "writeKey", "error": "not a string"}])
    return write_key


def _parse_batch(call_type: str, text: str) -> tuple[list[SegmentCall], str | None]:
    # pydantic parses and validates the JSON in one pass (in Rust): ingest's hot path.
    try:
        batch = _BATCH.validate_json(text)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False, include_context=False)
        if problems and problems[0]["type"] == "json_invalid":
            raise BadRequestError(f"malformed JSON: {problems[0]['msg']}") from error
        raise BadRequestError(f"invalid {call_type} call", _details(error)) from error
    if len(batch.batch) > MAX_BATCH_CALLS:
        raise PayloadTooLargeError(
            f"the batch has {len(batch.batch)} calls, over the limit of {MAX_BATCH_CALLS}",
            limit="batch_calls",
            index=MAX_BATCH_CALLS,
        )
    write_key = _write_key(batch.__pydantic_extra__)
    for call in batch.batch:
        # analytics.js also puts the key in every call of its batches: it never reaches the bus either.
        if call.__pydantic_extra__ and "writeKey" in call.__pydantic_extra__:
            write_key = write_key or _write_key(call.__pydantic_extra__)
            call.__pydantic_extra__.pop("writeKey", None)
    if batch.context or batch.integrations or batch.sentAt:
        # Batch-level context, integrations and sentAt (analytics.js sends one sentAt per batch)
        # apply to every call that does not set its own.
        for call in batch.batch:
            call.__dict__["context"] = {**batch.context, **call.context}
            call.__dict__["integrations"] = {**batch.integrations, **call.integrations}
            if call.sentAt is None:
                call.__dict__["sentAt"] = batch.sentAt
    for index, call in enumerate(batch.batch):
        _check_identifiers(call_type, call, index)
    return list(batch.batch), write_key


def _parse_single(call_type: str, text: str) -> tuple[list[SegmentCall], str | None]:
    payload = _json(text)
    if not isinstance(payload, dict):
        raise BadRequestError("the body must be a JSON object")
    write_key = _write_key(payload)
    try:
        call = SINGLE_CALLS[call_type].model_validate({**payload, "type": call_type})
    except ValidationError as error:
        raise BadRequestError(f"invalid {call_type} call", _details(error)) from error
    _check_identifiers(call_type, call, None)
    return [call], write_key


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _identifier_values(call: SegmentCall) -> Iterator[tuple[str, object]]:
    """The identifiers identity will read inside a call's free-form objects (shared/identity/
    identifiers.py), each with where it is. The ids at the top level are checked by the model.
    On the hot path: most calls carry none of these, and cost a few lookups."""
    context = call.context
    if context:
        device = context.get("device")
        if isinstance(device, dict):
            yield "context.device.id", device.get("id")
            yield "context.device.token", device.get("token")
        traits = context.get("traits")
        if isinstance(traits, dict):
            yield "context.traits.email", traits.get("email")
            yield "context.traits.phone", traits.get("phone")
        external = context.get("externalIds")
        if isinstance(external, list):
            for position, entry in enumerate(external):
                yield f"context.externalIds.{position}.id", _mapping(entry).get("id")
    if isinstance(call, IdentifyCall) and call.traits:  # a group's traits are the group's, never ids
        yield "traits.email", call.traits.get("email")
        yield "traits.phone", call.traits.get("phone")


def _check_identifiers(call_type: str, call: SegmentCall, index: int | None) -> None:
    """Refuse an identifier identity could never store (MAX_IDENTIFIER_BYTES, in UTF-8)."""
    for loc, value in _identifier_values(call):
        if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
            continue  # identity leaves non-text values out of matching: nothing to store
        text = str(value).lower() if loc.endswith("email") else str(value)  # emails are stored lowered
        if (size := bytes_over(text, MAX_IDENTIFIER_BYTES)) is None:
            continue
        where = loc if index is None else f"batch.{index}.{loc}"
        raise BadRequestError(
            f"invalid {call_type} call",
            [{"loc": where, "error": TOO_MANY_BYTES.format(limit=MAX_IDENTIFIER_BYTES, size=size)}],
            limit="identifier_bytes",
            **({} if index is None else {"index": index}),
        )


def parse(call_type: str, text: str) -> tuple[list[SegmentCall], str | None]:
    """The calls in a request to /v1/<call_type> (a batch holds several), and the body's write key."""
    if not text.strip():
        raise BadRequestError("empty body: send a JSON object")
    if call_type in BATCH_CALLS:
        return _parse_batch(call_type, text)
    return _parse_single(call_type, text)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(name: str, moment: datetime) -> str:
    try:
        return clock.iso(moment)
    except OverflowError as error:  # e.g. 0001-01-01T00:00+05:00 has no UTC equivalent
        raise BadRequestError(f"{name} is out of range", [{"loc": name, "error": "out of range"}]) from error


def to_bus_events(
    calls: list[SegmentCall], source_id: str, received_at: datetime | None = None
) -> list[BusEvent]:
    """Stamp each call as Segment does (messageId, receivedAt, clock-skew-corrected timestamp) and with
    the source it came from, and check each against the per-call size limit as it will be stored.
    The calls are stamped in place: a call is stamped once.

    This is ingest's hot path: the call's data is read straight from the validated model (its fields
    and the extra fields the SDK sent, both already JSON values) and serialized once, into the envelope.
    """
    received = received_at or clock.now()
    received_iso = clock.iso(received)
    latest_iso = clock.iso(received + FUTURE_TOLERANCE)  # ISO strings of one format sort as times
    # An SDK stamps a whole batch with one sentAt: its text and its clock's offset are worked out once.
    sent: dict[datetime, tuple[str, timedelta]] = {}
    events = []
    for index, call in enumerate(calls):
        fields = call.__dict__
        message_id = call.messageId or str(uuid.uuid4())
        fields["messageId"] = message_id
        if call.sentAt is not None and call.sentAt not in sent:
            sent[call.sentAt] = (_iso("sentAt", call.sentAt), _offset(received, call.sentAt))
        if call.timestamp is None:
            timestamp = received_iso
        elif call.sentAt is None:
            timestamp = _iso("timestamp", call.timestamp)
        else:
            # The device's clock may be off: shift the timestamp by the gap between sentAt and receipt.
            timestamp = _iso("timestamp", _shift(call.timestamp, sent[call.sentAt][1]))
        if timestamp > latest_iso:
            extra = call.__pydantic_extra__
            if extra is not None:
                assert call.timestamp is not None  # only a given timestamp can be in the future
                extra["originalTimestamp"] = _iso("timestamp", call.timestamp)
            timestamp = received_iso
        # The stamped values go straight into the validated model (they are ours, already checked),
        # which then serializes itself, extra fields included, in one pass of pydantic-core.
        fields["timestamp"] = timestamp
        fields["receivedAt"] = received_iso
        if call.sentAt is not None:
            fields["sentAt"] = sent[call.sentAt][0]
        extra = call.__pydantic_extra__
        if extra is not None:
            extra["sourceId"] = source_id
        data_json = call.__pydantic_serializer__.to_json(call, exclude_none=True, warnings=False)
        if len(data_json) > MAX_CALL_BYTES:
            raise PayloadTooLargeError(
                f"call {index} is {len(data_json)} bytes, over the limit of {MAX_CALL_BYTES} per call",
                limit="call_bytes",
                index=index,
            )
        name = f"segment.{fields['type']}"
        envelope = b'{"name":"%s","version":1,"correlationId":%s,"time":"%s","data":%s}' % (
            name.encode(),
            to_json(message_id),
            received_iso.encode(),
            data_json,
        )
        events.append(BusEvent(SOURCE_INGEST, name, envelope.decode("utf-8"), message_id))
    return events


def _offset(received: datetime, sent_at: datetime) -> timedelta:
    try:
        return received - _utc(sent_at)
    except OverflowError as error:
        raise BadRequestError(
            "sentAt is out of range", [{"loc": "sentAt", "error": "out of range"}]
        ) from error


def _shift(timestamp: datetime, offset: timedelta) -> datetime:
    try:
        return _utc(timestamp) + offset
    except OverflowError as error:
        raise BadRequestError(
            "timestamp and sentAt are too far apart to correct the device's clock",
            [{"loc": "timestamp", "error": "out of range"}],
        ) from error
