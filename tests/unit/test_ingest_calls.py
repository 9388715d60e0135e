"""From an HTTP request to bus events: authenticate, parse, stamp (shared/ingest/calls.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.ingest.calls import BadRequestError, UnauthorizedError, authenticate, parse, to_bus_events
from shared.models.segment import IdentifyCall, TrackCall

WRITE_KEY = "wk_live_2f9c1d"
ACCEPTED = frozenset(
    {hashlib.sha256(b"another-key").hexdigest(), hashlib.sha256(WRITE_KEY.encode()).hexdigest()}
)
RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def _body(**fields: Any) -> str:
    return json.dumps(fields)


# -- authenticate ----------------------------------------------------------------------------------


@pytest.mark.parametrize("credentials", [f"{WRITE_KEY}:", WRITE_KEY, f"{WRITE_KEY}:any-password"])
def test_the_write_key_as_basic_username_is_accepted(credentials: str) -> None:
    authenticate(_basic(credentials), ACCEPTED)  # raises when refused


def test_the_basic_scheme_name_is_case_insensitive() -> None:
    authenticate(_basic(WRITE_KEY).replace("Basic", "basic"), ACCEPTED)


@pytest.mark.parametrize("header", [None, "", "Bearer abc", "Basic"])
def test_a_missing_write_key_is_unauthorized(header: str | None) -> None:
    with pytest.raises(UnauthorizedError, match="missing write key") as caught:
        authenticate(header, ACCEPTED)

    assert caught.value.status == 401


@pytest.mark.parametrize("header", ["Basic not base64!", "Basic " + base64.b64encode(b"\xff\xfe:").decode()])
def test_malformed_basic_credentials_are_unauthorized(header: str) -> None:
    with pytest.raises(UnauthorizedError, match="malformed HTTP Basic credentials"):
        authenticate(header, ACCEPTED)


def test_an_unknown_write_key_is_unauthorized() -> None:
    with pytest.raises(UnauthorizedError, match="unknown write key"):
        authenticate(_basic("wk_live_wrong:"), ACCEPTED)


def test_the_write_key_as_password_is_not_accepted() -> None:
    with pytest.raises(UnauthorizedError):
        authenticate(_basic(f":{WRITE_KEY}"), ACCEPTED)


def test_no_accepted_keys_accepts_nothing() -> None:
    with pytest.raises(UnauthorizedError):
        authenticate(_basic(WRITE_KEY), frozenset())


# -- parse -----------------------------------------------------------------------------------------


def test_a_track_call_parses() -> None:
    [call] = parse("track", _body(userId="u-1", event="Product Added", properties={"sku": "s-1"}))

    assert isinstance(call, TrackCall)
    assert (call.userId, call.event, call.properties) == ("u-1", "Product Added", {"sku": "s-1"})


def test_an_identify_call_parses() -> None:
    [call] = parse("identify", _body(anonymousId="a-1", traits={"email": "ada@example.com"}))

    assert isinstance(call, IdentifyCall)
    assert call.traits == {"email": "ada@example.com"}


def test_the_path_decides_the_call_type_over_the_body() -> None:
    [call] = parse("identify", _body(type="track", userId="u-1", event="Product Added"))

    assert call.type == "identify"  # type: ignore[attr-defined]


def test_a_numeric_user_id_becomes_a_string() -> None:
    [call] = parse("identify", _body(userId=42))

    assert call.userId == "42"


def test_fields_outside_the_spec_are_kept() -> None:
    [call] = parse("track", _body(userId="u-1", event="Product Added", channel="server"))

    assert call.model_dump()["channel"] == "server"


def test_a_batch_parses_each_call_by_its_type() -> None:
    body = _body(
        batch=[
            {"type": "identify", "userId": "u-1", "traits": {"plan": "pro"}},
            {"type": "track", "userId": "u-1", "event": "Product Added"},
        ]
    )

    calls = parse("batch", body)

    assert [type(c) for c in calls] == [IdentifyCall, TrackCall]


def test_batch_context_applies_to_each_call_unless_it_sets_its_own() -> None:
    body = _body(
        context={"library": {"name": "analytics.js"}, "ip": "10.0.0.1"},
        integrations={"All": True},
        batch=[
            {"type": "track", "userId": "u-1", "event": "A"},
            {"type": "track", "userId": "u-1", "event": "B", "context": {"ip": "10.0.0.2"}},
        ],
    )

    first, second = parse("batch", body)

    assert first.context == {"library": {"name": "analytics.js"}, "ip": "10.0.0.1"}
    assert second.context == {"library": {"name": "analytics.js"}, "ip": "10.0.0.2"}
    assert first.integrations == second.integrations == {"All": True}


def test_a_call_without_user_id_or_anonymous_id_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError) as caught:
        parse("track", _body(event="Product Added"))

    assert caught.value.status == 400
    assert caught.value.message == "invalid track call"
    assert any("userId or anonymousId is required" in d["error"] for d in caught.value.details)


def test_a_batch_call_without_identity_is_named_by_its_position() -> None:
    body = _body(batch=[{"type": "track", "userId": "u-1", "event": "A"}, {"type": "track", "event": "B"}])

    with pytest.raises(BadRequestError) as caught:
        parse("batch", body)

    [detail] = caught.value.details
    assert detail["loc"].startswith("batch.1")
    assert "userId or anonymousId is required" in detail["error"]


def test_a_track_call_without_event_names_the_field() -> None:
    with pytest.raises(BadRequestError) as caught:
        parse("track", _body(userId="u-1"))

    assert [d["loc"] for d in caught.value.details] == ["event"]


def test_malformed_json_is_a_bad_request_saying_where() -> None:
    with pytest.raises(BadRequestError, match=r"malformed JSON: .* at line 1 column \d+"):
        parse("track", '{"userId": "u-1",')


@pytest.mark.parametrize("body", ["[]", '"track"', "42", "null"])
def test_a_body_that_is_not_a_json_object_is_a_bad_request(body: str) -> None:
    with pytest.raises(BadRequestError, match="the body must be a JSON object"):
        parse("track", body)


@pytest.mark.parametrize("body", [None, ""])
def test_an_empty_body_is_a_bad_request(body: str | None) -> None:
    with pytest.raises(BadRequestError, match="empty body"):
        parse("track", body)


def test_an_empty_batch_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError) as caught:
        parse("batch", _body(batch=[]))

    assert [d["loc"] for d in caught.value.details] == ["batch"]


# -- to_bus_events ---------------------------------------------------------------------------------


def _one(**fields: Any) -> Any:
    [event] = to_bus_events(parse("track", _body(userId="u-1", event="Product Added", **fields)), RECEIVED)
    return event


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


def test_a_track_call_is_published_as_segment_track_from_ingest() -> None:
    event = _one()

    assert (event.source, event.detail_type, event.detail.name) == (
        "continuum.ingest",
        "segment.track",
        "segment.track",
    )
    assert event.detail.data["type"] == "track"


def test_an_identify_call_is_published_as_segment_identify() -> None:
    [event] = to_bus_events(parse("identify", _body(userId="u-1", traits={"plan": "pro"})), RECEIVED)

    assert event.detail_type == "segment.identify"
    assert event.detail.data["traits"] == {"plan": "pro"}


def test_a_batch_becomes_one_event_per_call_in_order() -> None:
    body = _body(
        batch=[{"type": "track", "userId": "u-1", "event": "A"}, {"type": "identify", "userId": "u-1"}]
    )

    events = to_bus_events(parse("batch", body), RECEIVED)

    assert [e.detail_type for e in events] == ["segment.track", "segment.identify"]


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
