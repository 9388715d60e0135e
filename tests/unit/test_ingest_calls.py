"""From an HTTP request to bus events: decode, parse, check limits, stamp (shared/ingest/calls.py)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared import clock
from shared.ingest import calls
from shared.ingest.calls import (
    BATCH_CALLS,
    CALL_TYPES,
    CORS,
    FUTURE_TOLERANCE,
    GZIP_WINDOW,
    MAX_BATCH_BYTES,
    MAX_BATCH_CALLS,
    MAX_CALL_BYTES,
    MAX_GZIP_BYTES,
    MAX_GZIP_MEMBERS,
    BadRequestError,
    IngestError,
    PayloadTooLargeError,
    decode_body,
    parse,
    to_bus_events,
)
from shared.models.segment import (
    MAX_IDENTIFIER_BYTES,
    MAX_MESSAGE_ID_BYTES,
    AliasCall,
    GroupCall,
    IdentifyCall,
    PageCall,
    ScreenCall,
    SegmentCall,
    TrackCall,
)
from tests.payloads import load

RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SOURCE = "src_0123456789abcdef"


def _body(**fields: Any) -> str:
    return json.dumps(fields)


def _calls(call_type: str, text: str) -> list[SegmentCall]:
    calls, _ = parse(call_type, text)
    return calls


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# -- decode_body -----------------------------------------------------------------------------------


def test_a_plain_body_is_returned_as_it_came() -> None:
    assert decode_body('{"userId": "u-1"}', False, None) == '{"userId": "u-1"}'


def test_a_base64_body_is_decoded() -> None:
    # API Gateway hands binary bodies over in base64
    assert decode_body(_b64('{"name": "Zoë"}'.encode()), True, None) == '{"name": "Zoë"}'


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", " gzip "])
def test_a_gzip_body_is_decompressed_whatever_the_header_case(encoding: str) -> None:
    text = _body(userId="u-1", event="Product Added")

    assert decode_body(_b64(gzip.compress(text.encode())), True, encoding) == text


@pytest.mark.parametrize("encoding", [None, "", "identity"])
def test_a_body_without_content_encoding_is_not_decompressed(encoding: str | None) -> None:
    assert decode_body("{}", False, encoding) == "{}"


@pytest.mark.parametrize("encoding", ["br", "deflate", "compress"])
def test_an_unsupported_content_encoding_is_a_bad_request_naming_it(encoding: str) -> None:
    with pytest.raises(BadRequestError, match=f"unsupported Content-Encoding '{encoding}'") as caught:
        decode_body("{}", False, encoding)

    assert caught.value.status == 400


def test_a_body_that_is_not_base64_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="not valid base64"):
        decode_body("not base64!", True, None)


def test_a_body_that_is_not_gzip_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="not valid gzip"):
        decode_body(_b64(b'{"userId": "u-1"}'), True, "gzip")


def test_a_truncated_gzip_body_is_a_bad_request() -> None:
    compressed = gzip.compress(_body(userId="u-1", event="Product Added").encode())

    with pytest.raises(BadRequestError, match="truncated"):
        decode_body(_b64(compressed[: len(compressed) // 2]), True, "gzip")


def test_a_body_that_is_not_utf8_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="not UTF-8"):
        decode_body(_b64(b'{"name": "\xff\xfe"}'), True, None)


def test_a_body_at_the_batch_size_limit_is_accepted() -> None:
    assert len(decode_body("x" * MAX_BATCH_BYTES, False, None)) == MAX_BATCH_BYTES


def test_a_body_over_the_batch_size_limit_is_too_large() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        decode_body("x" * (MAX_BATCH_BYTES + 1), False, None)

    assert caught.value.status == 413
    assert caught.value.fields == {"limit": "batch_bytes"}


def test_the_batch_size_limit_counts_utf8_bytes_not_characters() -> None:
    # 256,001 two-byte characters: within the limit in characters, over it in bytes
    with pytest.raises(PayloadTooLargeError):
        decode_body("é" * (MAX_BATCH_BYTES // 2 + 1), False, None)


def test_a_gzip_body_inflating_past_the_limit_is_too_large() -> None:
    small = gzip.compress(b" " * (MAX_BATCH_BYTES + 1))

    with pytest.raises(PayloadTooLargeError) as caught:
        decode_body(_b64(small), True, "gzip")

    assert caught.value.fields["limit"] == "batch_bytes"


def test_a_gzip_bomb_is_refused_without_inflating_it_all() -> None:
    # Given 64 MB of spaces squeezed into well under the limit
    bomb = _b64(gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=1))
    assert len(bomb) < MAX_BATCH_BYTES

    # When it is decoded
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLargeError, match="decompressed body is over the limit"):
            decode_body(bomb, True, "gzip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then it is refused having held little more than the limit in memory
    assert peak < 8 * MAX_BATCH_BYTES


def test_a_gzip_body_inflating_to_exactly_the_limit_is_accepted() -> None:
    text = " " * (MAX_BATCH_BYTES - 2) + "{}"

    assert decode_body(_b64(gzip.compress(text.encode())), True, "gzip") == text


def test_a_gzip_body_of_several_members_decodes_whole() -> None:
    compressed = gzip.compress(b'{"userId": "u-1", ') + gzip.compress(b'"event": "Product Added"}')

    assert decode_body(_b64(compressed), True, "gzip") == '{"userId": "u-1", "event": "Product Added"}'


class CountingZlib:
    """`zlib` as shared/ingest/calls.py sees it, counting the inflaters made and the bytes handed to them."""

    MAX_WBITS = zlib.MAX_WBITS
    error = zlib.error

    def __init__(self) -> None:
        self.inflaters = 0
        self.fed = 0

    def decompressobj(self, wbits: int) -> Any:
        self.inflaters += 1
        real = zlib.decompressobj(wbits)
        counter = self

        class Inflater:
            def decompress(self, data: Any, max_length: int = 0) -> bytes:
                counter.fed += len(data)
                return real.decompress(data, max_length)

            def __getattr__(self, name: str) -> Any:  # eof, unused_data, unconsumed_tail
                return getattr(real, name)

        return Inflater()


@pytest.fixture
def counting_zlib(monkeypatch: pytest.MonkeyPatch) -> CountingZlib:
    counting = CountingZlib()
    monkeypatch.setattr(calls, "zlib", counting)
    return counting


def test_a_gzip_body_of_the_most_members_allowed_decodes_whole() -> None:
    members = [gzip.compress(b" ") for _ in range(MAX_GZIP_MEMBERS - 1)] + [gzip.compress(b"{}")]

    assert decode_body(_b64(b"".join(members)), True, "gzip") == " " * (MAX_GZIP_MEMBERS - 1) + "{}"


def test_a_gzip_body_of_more_members_is_refused_naming_the_limit(counting_zlib: CountingZlib) -> None:
    # Given thousands of empty members (each costs a new inflater and yields nothing)
    body = _b64(gzip.compress(b"") * 10_000)

    with pytest.raises(BadRequestError) as caught:
        decode_body(body, True, "gzip")

    # Then it is refused after the limit's worth of members, not after all of them
    assert caught.value.fields == {"limit": "gzip_members"}
    assert counting_zlib.inflaters == MAX_GZIP_MEMBERS


def test_gzip_members_cost_work_linear_in_the_body(counting_zlib: CountingZlib) -> None:
    # Given many small members before a large one (stored, not compressed: 400 KB in the body)
    large = gzip.compress(b" " * (400 * 1024), compresslevel=0)
    body = gzip.compress(b" ") * (MAX_GZIP_MEMBERS - 1) + large

    decode_body(_b64(body), True, "gzip")

    # Then each byte is handed to an inflater once, plus at most a window per member (here ~3 times
    # the body); handing each member the whole rest of the body, as before, is ~64 times the body
    assert counting_zlib.fed <= len(body) + MAX_GZIP_MEMBERS * GZIP_WINDOW


def test_a_compressed_body_over_its_limit_is_refused_before_any_inflating(
    counting_zlib: CountingZlib,
) -> None:
    body = _b64(b"\x1f\x8b" + b"\x00" * MAX_GZIP_BYTES)

    with pytest.raises(PayloadTooLargeError, match="compressed body") as caught:
        decode_body(body, True, "gzip")

    assert caught.value.fields == {"limit": "batch_bytes"}
    assert counting_zlib.inflaters == 0


def test_a_gzip_body_at_the_compressed_limit_is_inflated() -> None:
    # A body at the batch limit, stored rather than compressed: over it in input by gzip's overhead
    text = " " * (MAX_BATCH_BYTES - 2) + "{}"
    compressed = gzip.compress(text.encode(), compresslevel=0)
    assert MAX_BATCH_BYTES < len(compressed) <= MAX_GZIP_BYTES

    assert decode_body(_b64(compressed), True, "gzip") == text


# -- parse: the body ------------------------------------------------------------------------------

ALL_CALL_TYPES = sorted(CALL_TYPES)
TRACK = {"userId": "u-1", "event": "Product Added"}


def _body_of(call_type: str, **fields: Any) -> str:
    """A valid body for /v1/<call_type> with `fields` at its top level (beside the batch for a batch)."""
    if call_type in BATCH_CALLS:
        return json.dumps({**fields, "batch": [{"type": "track", **TRACK}]})
    call = {"userId": "u-1", "event": "A", "groupId": "g-1", "previousId": "a-1"}
    return json.dumps({**call, **fields})


@pytest.mark.parametrize("call_type", ALL_CALL_TYPES)
def test_the_write_key_in_the_body_is_returned_and_taken_out_of_the_calls(call_type: str) -> None:
    calls, write_key = parse(call_type, _body_of(call_type, writeKey="wk_live_1"))

    assert write_key == "wk_live_1"
    assert calls
    assert all("writeKey" not in call.model_dump() for call in calls)


@pytest.mark.parametrize("call_type", ["track", "batch"])
def test_a_body_without_write_key_has_none(call_type: str) -> None:
    _, write_key = parse(call_type, _body_of(call_type))

    assert write_key is None


@pytest.mark.parametrize("call_type", ["track", "batch"])
@pytest.mark.parametrize("write_key", [42, ["wk"], {"key": "wk"}, True])
def test_a_write_key_that_is_not_a_string_is_a_bad_request(call_type: str, write_key: object) -> None:
    with pytest.raises(BadRequestError, match="writeKey must be a string") as caught:
        parse(call_type, _body_of(call_type, writeKey=write_key))

    assert [d["loc"] for d in caught.value.details] == ["writeKey"]


@pytest.mark.parametrize(
    ("call_type", "body"), [("track", '{"userId": "u-1",'), ("batch", '{"batch": [{"type": "track",')]
)
def test_malformed_json_is_a_bad_request_saying_where(call_type: str, body: str) -> None:
    with pytest.raises(BadRequestError, match=r"^malformed JSON: .* at line 1 column \d+") as caught:
        parse(call_type, body)

    assert caught.value.status == 400


@pytest.mark.parametrize("call_type", ["track", "batch"])
def test_json_nested_too_deeply_is_a_bad_request(call_type: str) -> None:
    with pytest.raises(BadRequestError, match="^malformed JSON"):
        parse(call_type, "[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("body", ["[]", '"track"', "42", "null"])
def test_a_call_body_that_is_not_a_json_object_is_a_bad_request(body: str) -> None:
    with pytest.raises(BadRequestError, match="the body must be a JSON object"):
        parse("track", body)


@pytest.mark.parametrize("body", ["[]", '"batch"', "42", "null"])
def test_a_batch_body_that_is_not_a_json_object_is_an_invalid_batch(body: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse("batch", body)

    assert caught.value.message == "invalid batch call"
    assert caught.value.details == [{"loc": "", "error": "Input should be an object"}]


@pytest.mark.parametrize("call_type", ALL_CALL_TYPES)
@pytest.mark.parametrize("body", ["", "  \n"])
def test_an_empty_body_is_a_bad_request(call_type: str, body: str) -> None:
    with pytest.raises(BadRequestError, match="empty body"):
        parse(call_type, body)


# -- parse: one call -------------------------------------------------------------------------------


def test_a_track_call_parses() -> None:
    [call] = _calls("track", _body(userId="u-1", event="Product Added", properties={"sku": "s-1"}))

    assert isinstance(call, TrackCall)
    assert (call.userId, call.event, call.properties) == ("u-1", "Product Added", {"sku": "s-1"})


def test_an_identify_call_parses() -> None:
    [call] = _calls("identify", _body(anonymousId="a-1", traits={"email": "ada@example.com"}))

    assert isinstance(call, IdentifyCall)
    assert call.traits == {"email": "ada@example.com"}


@pytest.mark.parametrize(("call_type", "model"), [("page", PageCall), ("screen", ScreenCall)])
def test_a_page_or_screen_call_parses_its_name_category_and_properties(
    call_type: str, model: type[SegmentCall]
) -> None:
    body = _body(anonymousId="a-1", name="Checkout", category="Shop", properties={"path": "/checkout"})

    [call] = _calls(call_type, body)

    assert isinstance(call, model)
    assert call.model_dump(include={"type", "name", "category", "properties"}) == {
        "type": call_type,
        "name": "Checkout",
        "category": "Shop",
        "properties": {"path": "/checkout"},
    }


@pytest.mark.parametrize("call_type", ["page", "screen"])
def test_a_page_or_screen_call_needs_no_name(call_type: str) -> None:
    [call] = _calls(call_type, _body(anonymousId="a-1"))

    assert call.model_dump()["name"] is None


def test_a_group_call_parses_with_the_groups_traits() -> None:
    [call] = _calls("group", _body(userId="u-1", groupId="acme", traits={"employees": 120}))

    assert isinstance(call, GroupCall)
    assert (call.groupId, call.traits) == ("acme", {"employees": 120})


def test_a_numeric_group_id_becomes_a_string() -> None:
    [call] = _calls("group", _body(userId="u-1", groupId=7))

    assert isinstance(call, GroupCall)
    assert call.groupId == "7"


@pytest.mark.parametrize("group", [{}, {"groupId": ""}])
def test_a_group_call_without_group_id_is_a_bad_request(group: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError, match="invalid group call") as caught:
        parse("group", json.dumps({"userId": "u-1", **group}))

    assert any("groupId" in f"{d['loc']} {d['error']}" for d in caught.value.details)


def test_a_null_user_id_is_no_user_id() -> None:
    # analytics.js sends "userId": null for a visitor who has not logged in
    [call] = _calls("track", _body(userId=None, anonymousId="a-1", event="Product Added"))

    assert (call.userId, call.anonymousId) == (None, "a-1")


@pytest.mark.parametrize(
    ("call_type", "ids"), [("group", {"groupId": None}), ("alias", {"previousId": None})]
)
def test_a_null_group_or_previous_id_is_a_bad_request(call_type: str, ids: dict[str, None]) -> None:
    with pytest.raises(BadRequestError, match=f"invalid {call_type} call"):
        parse(call_type, json.dumps({"userId": "u-1", **ids}))


@pytest.mark.parametrize("field", ["userId", "anonymousId"])
def test_an_id_over_1024_characters_is_a_bad_request_naming_it(field: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse("track", json.dumps({"userId": "u-1", "event": "A", field: "x" * 1025}))

    assert [d["loc"] for d in caught.value.details] == [field]


def test_an_alias_call_parses() -> None:
    [call] = _calls("alias", _body(previousId="a-1", userId="u-1"))

    assert isinstance(call, AliasCall)
    assert (call.previousId, call.userId) == ("a-1", "u-1")


@pytest.mark.parametrize(
    "ids",
    [{"userId": "u-1"}, {"previousId": "a-1", "anonymousId": "a-2"}, {"previousId": "", "userId": "u-1"}],
)
def test_an_alias_call_needs_previous_id_and_user_id(ids: dict[str, str]) -> None:
    with pytest.raises(BadRequestError, match="invalid alias call") as caught:
        parse("alias", json.dumps(ids))

    assert caught.value.details


def test_the_path_decides_the_call_type_over_the_body() -> None:
    [call] = _calls("identify", _body(type="track", userId="u-1", event="Product Added"))

    assert isinstance(call, IdentifyCall)


def test_a_numeric_user_id_becomes_a_string() -> None:
    [call] = _calls("identify", _body(userId=42))

    assert call.userId == "42"


def test_fields_outside_the_spec_are_kept() -> None:
    [call] = _calls("track", _body(userId="u-1", event="Product Added", channel="server"))

    assert call.model_dump()["channel"] == "server"


def test_a_call_without_user_id_or_anonymous_id_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError) as caught:
        parse("track", _body(event="Product Added"))

    assert caught.value.status == 400
    assert caught.value.message == "invalid track call"
    assert any("userId or anonymousId is required" in d["error"] for d in caught.value.details)


def test_a_track_call_without_event_names_the_field() -> None:
    with pytest.raises(BadRequestError) as caught:
        parse("track", _body(userId="u-1"))

    assert [d["loc"] for d in caught.value.details] == ["event"]


@pytest.mark.parametrize("name", ["$segment.entered", "$segment.exited", "$segment.anything"])
def test_a_track_call_named_like_a_segment_event_is_refused_so_it_cannot_forge_one(name: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse("track", _body(userId="u-1", event=name, properties={"segment": "vip"}))

    assert caught.value.status == 400
    [detail] = caught.value.details
    assert detail["loc"] == "event"
    assert "reserved" in detail["error"] and "$segment." in detail["error"]


def test_a_batched_track_call_named_like_a_segment_event_is_named_by_its_position() -> None:
    body = _body(
        batch=[
            {"type": "track", "userId": "u-1", "event": "Product Added"},
            {"type": "track", "userId": "u-1", "event": "$segment.entered"},
        ]
    )

    with pytest.raises(BadRequestError) as caught:
        parse("batch", body)

    assert [d["loc"] for d in caught.value.details] == ["batch.1.track.event"]


@pytest.mark.parametrize("name", ["segment.entered", "Segment Entered", "$Segment.entered", "$segments"])
def test_names_only_resembling_the_reserved_prefix_are_accepted(name: str) -> None:
    [call] = _calls("track", _body(userId="u-1", event=name))

    assert isinstance(call, TrackCall) and call.event == name


# -- parse: batches --------------------------------------------------------------------------------


def test_import_is_a_synonym_of_batch() -> None:
    assert {"batch", "import"} == BATCH_CALLS
    assert {"identify", "track", "page", "screen", "group", "alias", "batch", "import"} == CALL_TYPES


@pytest.mark.parametrize("call_type", sorted(BATCH_CALLS))
def test_a_batch_parses_each_call_by_its_type(call_type: str) -> None:
    body = _body(
        batch=[
            {"type": "identify", "userId": "u-1", "traits": {"plan": "pro"}},
            {"type": "track", "userId": "u-1", "event": "Product Added"},
            {"type": "page", "userId": "u-1", "name": "Home"},
            {"type": "screen", "userId": "u-1", "name": "Cart"},
            {"type": "group", "userId": "u-1", "groupId": "acme"},
            {"type": "alias", "userId": "u-1", "previousId": "a-1"},
        ]
    )

    calls = _calls(call_type, body)

    assert [type(c) for c in calls] == [IdentifyCall, TrackCall, PageCall, ScreenCall, GroupCall, AliasCall]


def test_a_batch_call_of_an_unknown_type_is_named_by_its_position() -> None:
    body = _body(batch=[{"type": "track", "userId": "u-1", "event": "A"}, {"type": "nope", "userId": "u-1"}])

    with pytest.raises(BadRequestError) as caught:
        parse("batch", body)

    assert [d["loc"] for d in caught.value.details] == ["batch.1"]


def test_batch_context_applies_to_each_call_unless_it_sets_its_own() -> None:
    body = _body(
        context={"library": {"name": "analytics.js"}, "ip": "10.0.0.1"},
        integrations={"All": True},
        batch=[
            {"type": "track", "userId": "u-1", "event": "A"},
            {"type": "track", "userId": "u-1", "event": "B", "context": {"ip": "10.0.0.2"}},
        ],
    )

    first, second = _calls("batch", body)

    assert first.context == {"library": {"name": "analytics.js"}, "ip": "10.0.0.1"}
    assert second.context == {"library": {"name": "analytics.js"}, "ip": "10.0.0.2"}
    assert first.integrations == second.integrations == {"All": True}


def test_a_batch_call_without_identity_is_named_by_its_position() -> None:
    body = _body(batch=[{"type": "track", "userId": "u-1", "event": "A"}, {"type": "track", "event": "B"}])

    with pytest.raises(BadRequestError) as caught:
        parse("batch", body)

    [detail] = caught.value.details
    assert detail["loc"].startswith("batch.1")
    assert "userId or anonymousId is required" in detail["error"]


def test_an_empty_batch_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError) as caught:
        parse("batch", _body(batch=[]))

    assert [d["loc"] for d in caught.value.details] == ["batch"]


# -- limits ----------------------------------------------------------------------------------------
# The per-call limit applies to the call as it will be stored: stamped with messageId, timestamp,
# receivedAt and sourceId, serialized as compact JSON and counted in UTF-8 bytes.


def _padded(size: int, **fields: Any) -> dict[str, Any]:
    """A track call whose compact JSON, as sent, is exactly `size` bytes."""
    call = {"type": "track", "userId": "u-1", "event": "A", "messageId": "m-1", **fields}
    call["properties"] = {"pad": ""}
    call["properties"]["pad"] = "x" * (size - len(json.dumps(call, separators=(",", ":"))))
    return call


def _stamped(*calls: dict[str, Any]) -> list[Any]:
    """Track calls parsed as one batch and stamped."""
    body = json.dumps({"batch": [{"type": "track", **call} for call in calls]})
    return to_bus_events(_calls("batch", body), SOURCE, RECEIVED)


def _stored_size(event: Any) -> int:
    """The bytes the call takes as stored: the envelope's data as compact JSON in UTF-8."""
    return len(json.dumps(event.detail.data, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _stored_at(size: int) -> dict[str, Any]:
    """A track call that is exactly `size` bytes once stamped."""
    [probe] = _stamped(_padded(100))
    stamping = _stored_size(probe) - 100
    return _padded(size - stamping)


def test_a_call_stored_at_exactly_the_call_size_limit_is_accepted() -> None:
    [event] = _stamped(_stored_at(MAX_CALL_BYTES))

    assert _stored_size(event) == MAX_CALL_BYTES


def test_a_call_stored_one_byte_over_the_call_size_limit_is_too_large() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        _stamped(_stored_at(MAX_CALL_BYTES + 1))

    assert caught.value.status == 413
    assert caught.value.fields == {"limit": "call_bytes", "index": 0}


def test_a_call_of_31_kb_as_sent_is_accepted() -> None:
    [event] = _stamped(_padded(31 * 1024))

    assert len(event.detail.data["properties"]["pad"]) > 30 * 1024


def test_a_call_of_33_kb_as_sent_is_too_large() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        _stamped(_padded(33 * 1024))

    assert caught.value.fields["limit"] == "call_bytes"


def test_a_call_just_under_the_limit_as_sent_is_too_large_once_stamped() -> None:
    # Given a call of 32 KB less 50 bytes, as the client sent it
    call = _padded(MAX_CALL_BYTES - 50)

    # When it is stamped, then its messageId, times and sourceId take it over the limit
    with pytest.raises(PayloadTooLargeError, match="^call 0 is .* over the limit of 32768") as caught:
        _stamped(call)

    assert caught.value.fields == {"limit": "call_bytes", "index": 0}


def test_a_batch_call_over_the_call_size_limit_is_named_by_its_index() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        _stamped(_padded(100), _padded(100), _stored_at(MAX_CALL_BYTES + 1))

    assert caught.value.fields == {"limit": "call_bytes", "index": 2}
    assert "call 2" in caught.value.message


def test_the_call_size_limit_counts_utf8_bytes() -> None:
    # 12,000 "é": 24 KB in UTF-8 (as stored), under the 32 KB limit; 72 KB if escaped as \u00e9
    call = {"userId": "u-1", "event": "A", "properties": {"note": "é" * 12_000}}

    [event] = _stamped(call)

    assert event.detail.data["properties"]["note"] == "é" * 12_000


def test_the_call_size_limit_counts_utf8_bytes_not_characters() -> None:
    # 17,000 "é": 17,000 characters, but 34,000 bytes in UTF-8
    call = {"userId": "u-1", "event": "A", "properties": {"note": "é" * 17_000}}

    with pytest.raises(PayloadTooLargeError) as caught:
        _stamped(call)

    assert caught.value.fields == {"limit": "call_bytes", "index": 0}


def _batch_of(count: int) -> str:
    return json.dumps({"batch": [{"type": "track", "anonymousId": "a", "event": "A"}] * count})


def test_a_batch_at_the_call_count_limit_is_accepted() -> None:
    assert len(_calls("batch", _batch_of(MAX_BATCH_CALLS))) == MAX_BATCH_CALLS


def test_a_batch_over_the_call_count_limit_is_too_large() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        parse("batch", _batch_of(MAX_BATCH_CALLS + 1))

    assert caught.value.status == 413
    assert caught.value.fields == {"limit": "batch_calls", "index": MAX_BATCH_CALLS}


def test_an_error_body_says_what_where_and_which_limit() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        _stamped(_padded(33 * 1024))

    assert caught.value.body() == {
        "error": caught.value.message,
        "details": [],
        "limit": "call_bytes",
        "index": 0,
    }


def test_a_validation_error_body_lists_its_details() -> None:
    error = IngestError("invalid track call", [{"loc": "event", "error": "Field required"}])

    assert error.body() == {
        "error": "invalid track call",
        "details": [{"loc": "event", "error": "Field required"}],
    }


# -- to_bus_events ---------------------------------------------------------------------------------


def _one(**fields: Any) -> Any:
    calls = _calls("track", _body(userId="u-1", event="Product Added", **fields))
    [event] = to_bus_events(calls, SOURCE, RECEIVED)
    return event


def test_each_event_names_the_source_it_came_from() -> None:
    assert _one().detail.data["sourceId"] == SOURCE


def test_a_source_id_sent_by_the_client_is_replaced_by_the_authenticated_one() -> None:
    assert _one(sourceId="src_spoofed").detail.data["sourceId"] == SOURCE


def test_a_call_without_message_id_gets_one() -> None:
    event = _one()

    assert event.detail.data["messageId"]
    assert event.detail.correlationId == event.detail.data["messageId"]


def test_calls_without_message_id_get_different_ones() -> None:
    assert _one().detail.data["messageId"] != _one().detail.data["messageId"]


def test_a_given_message_id_is_kept_and_correlates_the_event() -> None:
    event = _one(messageId="ajs-1")

    assert event.detail.data["messageId"] == event.detail.correlationId == "ajs-1"


def test_the_receipt_time_is_stamped() -> None:
    event = _one()

    assert event.detail.data["receivedAt"] == event.detail.time == "2024-05-01T12:00:00.000Z"


@pytest.mark.usefixtures("fixed_clock")
def test_without_a_receipt_time_the_clock_stamps_it() -> None:
    [event] = to_bus_events(_calls("track", _body(userId="u-1", event="A")), SOURCE)

    assert event.detail.data["receivedAt"] == "2024-05-01T12:00:00.000Z"


def test_a_call_without_timestamp_happened_when_received() -> None:
    assert _one().detail.data["timestamp"] == "2024-05-01T12:00:00.000Z"


def test_a_timestamp_without_sent_at_is_kept() -> None:
    assert (
        _one(timestamp="2024-05-01T11:00:00.123+02:00").detail.data["timestamp"] == "2024-05-01T09:00:00.123Z"
    )


def test_the_timestamp_is_corrected_by_the_device_clock_skew() -> None:
    # The device sent at 10:00:05 an event of 10:00:00; it arrived at 12:00:00: the device clock is 2h slow.
    event = _one(timestamp="2024-05-01T10:00:00.000Z", sentAt="2024-05-01T10:00:05.000Z")

    assert event.detail.data["timestamp"] == "2024-05-01T11:59:55.000Z"
    assert event.detail.data["sentAt"] == "2024-05-01T10:00:05.000Z"


def test_sent_at_is_stored_in_the_format_of_timestamp() -> None:
    event = _one(sentAt="2024-05-01T12:00:05+02:00")

    assert event.detail.data["sentAt"] == "2024-05-01T10:00:05.000Z"


def test_a_batch_sent_at_applies_to_each_call_without_its_own() -> None:
    # analytics.js stamps the whole batch with one sentAt: its device clock is 2h slow here
    body = _body(
        sentAt="2024-05-01T10:00:05Z",
        batch=[
            {"type": "track", "userId": "u-1", "event": "A", "timestamp": "2024-05-01T10:00:00Z"},
            {
                "type": "track",
                "userId": "u-1",
                "event": "B",
                "timestamp": "2024-05-01T10:00:00Z",
                "sentAt": "2024-05-01T12:00:00Z",
            },
        ],
    )

    first, second = to_bus_events(_calls("batch", body), SOURCE, RECEIVED)

    assert (first.detail.data["sentAt"], first.detail.data["timestamp"]) == (
        "2024-05-01T10:00:05.000Z",
        "2024-05-01T11:59:55.000Z",
    )
    assert (second.detail.data["sentAt"], second.detail.data["timestamp"]) == (
        "2024-05-01T12:00:00.000Z",
        "2024-05-01T10:00:00.000Z",
    )


def test_a_receipt_time_sent_by_the_client_is_replaced() -> None:
    assert _one(receivedAt="2020-01-01T00:00:00Z").detail.data["receivedAt"] == "2024-05-01T12:00:00.000Z"


def test_fields_outside_the_spec_reach_the_bus_untouched() -> None:
    event = _one(channel="server", version={"core": "1.2"}, note="Zoë")

    assert {k: event.detail.data[k] for k in ("channel", "version", "note")} == {
        "channel": "server",
        "version": {"core": "1.2"},
        "note": "Zoë",
    }


@pytest.mark.parametrize("call_type", ["track", "batch"])
def test_the_write_key_in_the_body_never_reaches_the_bus(call_type: str) -> None:
    calls, _ = parse(call_type, _body_of(call_type, writeKey="wk_live_1"))

    [event] = to_bus_events(calls, SOURCE, RECEIVED)

    assert "wk_live_1" not in event.detail_json


def test_a_write_key_inside_a_batch_call_never_reaches_the_bus() -> None:
    # analytics.js (batched dispatcher) sends {"batch": [{..., "writeKey": ...}, ...], "sentAt": ...}
    body = _body(batch=[{"type": "track", "userId": "u-1", "event": "A", "writeKey": "wk_live_1"}])

    [event] = to_bus_events(_calls("batch", body), SOURCE, RECEIVED)

    assert "wk_live_1" not in event.detail_json


def test_the_envelope_is_the_events_json_whatever_its_message_id_holds() -> None:
    event = _one(messageId='ajs-"1"\\Zoë')

    assert json.loads(event.detail_json) == event.detail.model_dump()
    assert event.correlation_id == event.detail.correlationId == 'ajs-"1"\\Zoë'


def test_a_track_call_is_published_as_segment_track_from_ingest() -> None:
    event = _one()

    assert (event.source, event.detail_type, event.detail.name) == (
        "continuum.ingest",
        "segment.track",
        "segment.track",
    )
    assert event.detail.data["type"] == "track"


@pytest.mark.parametrize(
    ("call_type", "fields"),
    [
        ("identify", {"traits": {"plan": "pro"}}),
        ("page", {"name": "Home"}),
        ("screen", {"name": "Cart"}),
        ("group", {"groupId": "acme"}),
        ("alias", {"previousId": "a-1"}),
    ],
)
def test_each_call_type_is_published_as_segment_of_its_type(call_type: str, fields: dict[str, Any]) -> None:
    [event] = to_bus_events(_calls(call_type, _body(userId="u-1", **fields)), SOURCE, RECEIVED)

    assert event.detail_type == event.detail.name == f"segment.{call_type}"
    assert event.detail.data["type"] == call_type
    assert {k: event.detail.data[k] for k in fields} == fields


def test_a_batch_becomes_one_event_per_call_in_order() -> None:
    body = _body(
        batch=[{"type": "track", "userId": "u-1", "event": "A"}, {"type": "identify", "userId": "u-1"}]
    )

    events = to_bus_events(_calls("batch", body), SOURCE, RECEIVED)

    assert [e.detail_type for e in events] == ["segment.track", "segment.identify"]
    assert {e.detail.data["sourceId"] for e in events} == {SOURCE}


@pytest.fixture
def tokyo_local_time() -> Iterator[None]:
    """The host's local time is UTC+9 (a POSIX rule: needs no zoneinfo files)."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "JST-9"
    time.tzset()
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        time.tzset()


def test_a_timestamp_without_offset_and_a_sent_at_with_one_are_stamped() -> None:
    event = _one(timestamp="2024-05-01T10:00:00", sentAt="2024-05-01T10:00:05Z")

    assert event.detail.data["timestamp"] == "2024-05-01T11:59:55.000Z"


@pytest.mark.usefixtures("tokyo_local_time")
def test_a_timestamp_without_offset_is_read_as_utc() -> None:
    assert _one(timestamp="2024-05-01T10:00:00").detail.data["timestamp"] == "2024-05-01T10:00:00.000Z"


# -- the sample payloads and the browser -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "call_type", "count"),
    [
        ("batch", "batch", 2),
        ("identify", "identify", 1),
        ("track-product-added", "track", 1),
        ("track-order-completed", "track", 1),
    ],
)
def test_the_sample_payloads_parse(name: str, call_type: str, count: int) -> None:
    calls = _calls(call_type, json.dumps(load(name)))

    assert len(calls) == count


def test_browsers_may_send_the_write_key_and_gzip_from_any_site() -> None:
    allowed_headers = {h.strip().lower() for h in CORS["Access-Control-Allow-Headers"].split(",")}

    assert CORS["Access-Control-Allow-Origin"] == "*"
    assert {"authorization", "content-type", "content-encoding"} <= allowed_headers
    assert "POST" in CORS["Access-Control-Allow-Methods"]


# -- limits of what can be stored: counted in UTF-8 bytes -------------------------------------------

EMOJI = "\N{GRINNING FACE}"  # 4 bytes in UTF-8


def _utf8(size: int) -> str:
    """A text of exactly `size` UTF-8 bytes, mostly 4-byte characters."""
    return EMOJI * (size // 4) + "a" * (size % 4)


# (call type, field, its limit in bytes, the rest of a valid call)
TOP_LEVEL_IDS = [
    ("track", "userId", MAX_IDENTIFIER_BYTES, {"anonymousId": "a-1", "event": "A"}),
    ("track", "anonymousId", MAX_IDENTIFIER_BYTES, {"userId": "u-1", "event": "A"}),
    ("alias", "previousId", MAX_IDENTIFIER_BYTES, {"userId": "u-1"}),
    ("group", "groupId", MAX_IDENTIFIER_BYTES, {"userId": "u-1"}),
    ("track", "messageId", MAX_MESSAGE_ID_BYTES, {"userId": "u-1", "event": "A"}),
]


@pytest.mark.parametrize(("call_type", "field", "limit", "rest"), TOP_LEVEL_IDS)
def test_an_id_of_exactly_its_limit_in_bytes_is_accepted(
    call_type: str, field: str, limit: int, rest: dict[str, Any]
) -> None:
    [call] = _calls(call_type, json.dumps({**rest, field: _utf8(limit)}))

    assert getattr(call, field) == _utf8(limit)


@pytest.mark.parametrize(("call_type", "field", "limit", "rest"), TOP_LEVEL_IDS)
def test_an_id_one_byte_past_its_limit_is_refused_naming_it_and_the_limit(
    call_type: str, field: str, limit: int, rest: dict[str, Any]
) -> None:
    # Fewer characters than the limit, more bytes
    value = _utf8(limit + 1)
    assert len(value) < limit

    with pytest.raises(BadRequestError) as caught:
        parse(call_type, json.dumps({**rest, field: value}))

    assert caught.value.status == 400
    assert caught.value.details == [
        {"loc": field, "error": f"String should have at most {limit} bytes in UTF-8, not {limit + 1}"}
    ]


def test_an_id_past_its_limit_inside_a_batch_is_refused_naming_its_index() -> None:
    batch = [{"type": "track", "userId": "u-1", "event": "A"} for _ in range(3)]
    batch[2]["anonymousId"] = _utf8(MAX_IDENTIFIER_BYTES + 1)

    with pytest.raises(BadRequestError) as caught:
        parse("batch", json.dumps({"batch": batch}))

    assert [d["loc"] for d in caught.value.details] == ["batch.2.track.anonymousId"]
    assert "at most 1024 bytes" in caught.value.details[0]["error"]


# (call type, where the identifier is, the call around it)
NESTED_IDENTIFIERS = [
    ("identify", "traits.email", lambda v: {"traits": {"email": v}}),
    ("identify", "traits.phone", lambda v: {"traits": {"phone": v}}),
    ("track", "context.traits.email", lambda v: {"event": "A", "context": {"traits": {"email": v}}}),
    ("page", "context.traits.phone", lambda v: {"context": {"traits": {"phone": v}}}),
    ("track", "context.device.id", lambda v: {"event": "A", "context": {"device": {"id": v}}}),
    ("screen", "context.device.token", lambda v: {"context": {"device": {"token": v}}}),
    (
        "track",
        "context.externalIds.1.id",
        lambda v: {
            "event": "A",
            "context": {"externalIds": [{"id": "x", "type": "t"}, {"id": v, "type": "t"}]},
        },
    ),
]


@pytest.mark.parametrize(("call_type", "loc", "call"), NESTED_IDENTIFIERS)
def test_an_identifier_in_context_or_traits_of_exactly_the_limit_is_accepted(
    call_type: str, loc: str, call: Any
) -> None:
    [parsed] = _calls(call_type, json.dumps({"userId": "u-1", **call(_utf8(MAX_IDENTIFIER_BYTES))}))

    assert parsed.userId == "u-1"


@pytest.mark.parametrize(("call_type", "loc", "call"), NESTED_IDENTIFIERS)
def test_an_identifier_in_context_or_traits_one_byte_past_the_limit_is_refused_naming_it(
    call_type: str, loc: str, call: Any
) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse(call_type, json.dumps({"userId": "u-1", **call(_utf8(MAX_IDENTIFIER_BYTES + 1))}))

    assert caught.value.status == 400
    assert caught.value.details == [
        {
            "loc": loc,
            "error": f"String should have at most 1024 bytes in UTF-8, not {MAX_IDENTIFIER_BYTES + 1}",
        }
    ]
    assert caught.value.fields == {"limit": "identifier_bytes"}


@pytest.mark.parametrize(("call_type", "loc", "call"), NESTED_IDENTIFIERS)
def test_an_identifier_past_the_limit_inside_a_batch_names_the_calls_index(
    call_type: str, loc: str, call: Any
) -> None:
    bad = {"type": call_type, "userId": "u-1", **call(_utf8(MAX_IDENTIFIER_BYTES + 1))}
    body = {"batch": [{"type": "track", "userId": "u-1", "event": "A"}, bad]}

    with pytest.raises(BadRequestError) as caught:
        parse("batch", json.dumps(body))

    assert [d["loc"] for d in caught.value.details] == [f"batch.1.{loc}"]
    assert caught.value.fields == {"limit": "identifier_bytes", "index": 1}


def test_a_batch_level_context_identifier_is_checked_in_every_call() -> None:
    body = {
        "context": {"device": {"id": _utf8(MAX_IDENTIFIER_BYTES + 1)}},
        "batch": [{"type": "track", **TRACK}],
    }

    with pytest.raises(BadRequestError) as caught:
        parse("batch", json.dumps(body))

    assert caught.value.fields == {"limit": "identifier_bytes", "index": 0}


def test_an_email_is_measured_as_it_is_stored_lowercased() -> None:
    # "İ" is 2 bytes, its lowercase "i̇" 3: at the limit as sent, past it as identity stores it
    email = "\N{LATIN CAPITAL LETTER I WITH DOT ABOVE}" * (MAX_IDENTIFIER_BYTES // 2)

    with pytest.raises(BadRequestError, match="invalid identify call"):
        parse("identify", json.dumps({"userId": "u-1", "traits": {"email": email}}))


def test_a_groups_own_email_trait_is_no_identifier() -> None:
    # A group's traits describe the group; identity never stores them as identifiers
    body = {"userId": "u-1", "groupId": "g", "traits": {"email": _utf8(MAX_IDENTIFIER_BYTES + 1)}}

    [call] = _calls("group", json.dumps(body))

    assert isinstance(call, GroupCall)


def test_a_numeric_device_id_is_measured_as_the_text_identity_stores() -> None:
    huge = int("9" * (MAX_IDENTIFIER_BYTES + 1))

    with pytest.raises(BadRequestError) as caught:
        parse("track", json.dumps({"userId": "u-1", "event": "A", "context": {"device": {"id": huge}}}))

    assert caught.value.details[0]["loc"] == "context.device.id"


# -- event time in the future -------------------------------------------------------------------------


def test_a_timestamp_far_in_the_future_is_replaced_by_the_time_received() -> None:
    # A device whose clock says 2030, and no sentAt to correct it
    event = _one(timestamp="2030-01-01T00:00:00Z")

    assert event.detail.data["timestamp"] == "2024-05-01T12:00:00.000Z"
    assert event.detail.data["originalTimestamp"] == "2030-01-01T00:00:00.000Z"


def test_a_timestamp_within_the_tolerance_is_kept() -> None:
    at_tolerance = clock.iso(RECEIVED + FUTURE_TOLERANCE)

    event = _one(timestamp=at_tolerance)

    assert event.detail.data["timestamp"] == at_tolerance
    assert "originalTimestamp" not in event.detail.data


def test_a_timestamp_a_millisecond_past_the_tolerance_is_replaced() -> None:
    past = clock.iso(RECEIVED + FUTURE_TOLERANCE + timedelta(milliseconds=1))

    event = _one(timestamp=past)

    assert event.detail.data["timestamp"] == "2024-05-01T12:00:00.000Z"
    assert event.detail.data["originalTimestamp"] == past


def test_a_timestamp_still_in_the_future_after_the_sent_at_correction_is_replaced() -> None:
    # Stamped an hour after the device sent it: the correction cannot bring it back to the present
    event = _one(timestamp="2024-05-01T13:00:00Z", sentAt="2024-05-01T12:00:00Z")

    assert event.detail.data["timestamp"] == "2024-05-01T12:00:00.000Z"
    assert event.detail.data["originalTimestamp"] == "2024-05-01T13:00:00.000Z"


def test_a_future_device_clock_corrected_by_sent_at_keeps_the_corrected_time() -> None:
    # The whole device clock is in 2030, sentAt too: the correction brings the event to the present
    event = _one(timestamp="2030-01-01T00:00:00Z", sentAt="2030-01-01T00:00:05Z")

    assert event.detail.data["timestamp"] == "2024-05-01T11:59:55.000Z"
    assert "originalTimestamp" not in event.detail.data


def test_past_timestamps_carry_no_original_timestamp() -> None:
    assert "originalTimestamp" not in _one(timestamp="2020-01-01T00:00:00Z").detail.data
