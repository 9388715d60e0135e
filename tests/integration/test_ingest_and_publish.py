"""The ingest function and the one publisher against moto's EventBridge (and botocore's Stubber
for the failure paths AWS produces but moto does not)."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.local.engine import REGION, LocalEngine
from shared.models.events import BusEvent, Envelope
from shared.store.bus import EventPublisher, PublishError
from tests.integration.conftest import WRITE_KEY, http_event


def _calls_of(engine: LocalEngine, message_ids: set[str]) -> list[dict]:
    return [
        e
        for e in engine.bus_events
        if e["detail"]["correlationId"] in message_ids and e["source"] == "continuum.ingest"
    ]


def test_a_batch_of_25_calls_reaches_the_bus_in_three_put_events_calls(engine: LocalEngine) -> None:
    calls = [
        {"type": "track", "userId": f"u{i}", "event": "Viewed", "messageId": f"batch25-{i}"}
        for i in range(25)
    ]
    put_events: list[list[dict]] = []

    def count(params: dict, **_: object) -> None:
        # The identity function publishes on the same client from the engine's worker: count ingest's only.
        if params["Entries"][0]["Source"] == "continuum.ingest":
            put_events.append(params["Entries"])

    from shared.store.aws import client

    client("events").meta.events.register("provide-client-params.events.PutEvents", count)

    response = engine.invoke("ingest", http_event("/v1/batch", {"batch": calls}))

    assert response["statusCode"] == 200
    assert [len(entries) for entries in put_events] == [10, 10, 5]
    on_bus = _calls_of(engine, {c["messageId"] for c in calls})
    assert sorted(e["detail"]["data"]["userId"] for e in on_bus) == sorted(f"u{i}" for i in range(25))
    assert {e["detail-type"] for e in on_bus} == {"segment.track"}
    client("events").meta.events.unregister("provide-client-params.events.PutEvents", count)


def test_track_and_identify_reach_the_bus_with_their_fields_intact(engine: LocalEngine) -> None:
    track = {
        "userId": "u-1",
        "event": "Product Added",
        "properties": {"price": 9.5, "tags": ["a"]},
        "messageId": "m-track",
    }
    identify = {"anonymousId": "a-1", "traits": {"email": "A@B.io"}, "messageId": "m-identify"}

    assert engine.invoke("ingest", http_event("/v1/track", track))["statusCode"] == 200
    assert engine.invoke("ingest", http_event("/v1/identify", identify))["statusCode"] == 200

    by_id = {e["detail"]["correlationId"]: e for e in _calls_of(engine, {"m-track", "m-identify"})}
    assert by_id["m-track"]["detail"]["data"]["properties"] == {"price": 9.5, "tags": ["a"]}
    assert by_id["m-identify"]["detail"]["data"]["traits"] == {"email": "A@B.io"}
    assert by_id["m-identify"]["detail-type"] == "segment.identify"


@pytest.mark.parametrize(
    ("raw", "status", "fragment"),
    [
        ("{not json", 400, "malformed JSON"),
        ("[1, 2]", 400, "JSON object"),
        ('{"event": "X"}', 400, "userId or anonymousId"),
        ('{"userId": "u", "event": 5}', 400, "event"),
    ],
)
def test_bad_requests_are_answered_400_with_a_json_error(
    engine: LocalEngine, raw: str, status: int, fragment: str
) -> None:
    response = engine.invoke("ingest", http_event("/v1/track", None, raw=raw))
    assert response["statusCode"] == status
    assert fragment in response["body"]
    json.loads(response["body"])


def test_a_wrong_write_key_is_answered_401_with_a_challenge(engine: LocalEngine) -> None:
    response = engine.invoke(
        "ingest", http_event("/v1/track", {"userId": "u", "event": "X"}, write_key="nope")
    )
    assert response["statusCode"] == 401
    assert response["headers"]["WWW-Authenticate"].startswith("Basic")


def _event(i: int) -> BusEvent:
    return BusEvent.of("s", "d", Envelope(name="n", correlationId=str(i), time="t", data={}))


def test_the_publisher_retries_only_the_failed_entries() -> None:
    events_client = boto3.client("events", region_name=REGION)
    with Stubber(events_client) as stub:
        stub.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [{"EventId": "1"}, {"ErrorCode": "InternalFailure", "ErrorMessage": "x"}],
            },
        )
        stub.add_response(
            "put_events",
            {"FailedEntryCount": 0, "Entries": [{"EventId": "2"}]},
            expected_params={
                "Entries": [
                    {
                        "EventBusName": "bus",
                        "Source": "s",
                        "DetailType": "d",
                        "Detail": _event(1).detail_json,
                    }
                ]
            },
        )
        EventPublisher("bus", events_client, backoff_seconds=0).publish([_event(0), _event(1)])
        stub.assert_no_pending_responses()


def test_the_publisher_raises_when_entries_keep_failing() -> None:
    events_client = boto3.client("events", region_name=REGION)
    failing = {
        "FailedEntryCount": 1,
        "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}],
    }
    with Stubber(events_client) as stub:
        for _ in range(3):
            stub.add_response("put_events", failing)
        with pytest.raises(PublishError, match="ThrottlingException"):
            EventPublisher("bus", events_client, backoff_seconds=0).publish([_event(0)])


def test_a_publish_failure_answers_503_and_the_clients_retry_is_accepted(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.store.aws import client

    events_client = client("events")
    real_put_events = events_client.put_events

    def bus_down(**kwargs: object) -> dict:
        entries = kwargs["Entries"]
        assert isinstance(entries, list)
        return {
            "FailedEntryCount": len(entries),
            "Entries": [{"ErrorCode": "InternalFailure"} for _ in entries],
        }

    call = {"userId": "u-retry", "event": "Order Completed", "messageId": "m-retry-after-outage"}
    monkeypatch.setattr(events_client, "put_events", bus_down)
    failed = engine.invoke("ingest", http_event("/v1/track", call))
    assert failed["statusCode"] == 503
    assert failed["headers"]["Retry-After"] == "1"
    assert _calls_of(engine, {"m-retry-after-outage"}) == []

    monkeypatch.setattr(events_client, "put_events", real_put_events)
    retried = engine.invoke("ingest", http_event("/v1/track", call))
    assert retried["statusCode"] == 200
    assert len(_calls_of(engine, {"m-retry-after-outage"})) == 1


def test_after_a_partial_publish_failure_the_retry_publishes_only_what_was_lost(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.store.aws import client

    events_client = client("events")
    real_put_events = events_client.put_events
    calls = [{"type": "track", "userId": "u", "event": "E", "messageId": f"partial-{i}"} for i in range(15)]

    def second_chunk_fails(**kwargs: object) -> dict:
        entries = kwargs["Entries"]
        assert isinstance(entries, list)
        ids = {json.loads(e["Detail"])["correlationId"] for e in entries}
        if ids & {f"partial-{i}" for i in range(10, 15)}:
            return {
                "FailedEntryCount": len(entries),
                "Entries": [{"ErrorCode": "InternalFailure"} for _ in entries],
            }
        return real_put_events(**kwargs)

    monkeypatch.setattr(events_client, "put_events", second_chunk_fails)
    assert engine.invoke("ingest", http_event("/v1/batch", {"batch": calls}))["statusCode"] == 503
    assert len(_calls_of(engine, {c["messageId"] for c in calls})) == 10

    monkeypatch.setattr(events_client, "put_events", real_put_events)
    assert engine.invoke("ingest", http_event("/v1/batch", {"batch": calls}))["statusCode"] == 200
    on_bus = _calls_of(engine, {c["messageId"] for c in calls})
    assert sorted(e["detail"]["correlationId"] for e in on_bus) == sorted(c["messageId"] for c in calls)


def _gzip_event(body: bytes, write_key: str) -> dict:
    event = http_event("/v1/track", None, write_key=write_key, raw="")
    event["headers"]["content-encoding"] = "gzip"
    event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


@pytest.mark.parametrize(
    "hostile",
    [
        b"\x1f\x8b" + b"\x00" * 5000,  # not gzip at all: decoding it would answer 400
        gzip.compress(b"") * 5000,  # thousands of empty members
        gzip.compress(b" " * (16 * 1024 * 1024)),  # a bomb
    ],
    ids=["garbage", "empty-members", "bomb"],
)
def test_a_wrong_key_with_a_hostile_gzip_body_is_answered_401_without_decoding(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch, hostile: bytes
) -> None:
    # Given a body no one should spend time inflating, under a wrong key in the Authorization header
    from functions.ingest import handler

    inflated: list[int] = []
    real = handler.decode_body

    def decode_body(*args: Any) -> str:
        inflated.append(1)
        return real(*args)

    monkeypatch.setattr(handler, "decode_body", decode_body)

    response = engine.invoke("ingest", _gzip_event(hostile, write_key="wrong-key"))

    # Then it is refused as unauthenticated, and the body was never decoded
    assert response["statusCode"] == 401
    assert inflated == []


def test_with_the_right_key_a_body_of_many_gzip_members_is_refused_naming_the_limit(
    engine: LocalEngine,
) -> None:
    response = engine.invoke("ingest", _gzip_event(gzip.compress(b"") * 5000, write_key=WRITE_KEY))

    assert response["statusCode"] == 400
    assert json.loads(response["body"])["limit"] == "gzip_members"


@pytest.mark.parametrize(
    ("path", "call", "loc"),
    [
        ("/v1/track", {"anonymousId": "\N{GRINNING FACE}" * 600, "event": "A"}, "anonymousId"),
        ("/v1/track", {"userId": "u", "event": "A", "messageId": "\N{GRINNING FACE}" * 256}, "messageId"),
        ("/v1/identify", {"userId": "u", "traits": {"email": "a" * 1020 + "@b.io"}}, "traits.email"),
        (
            "/v1/track",
            {"userId": "u", "event": "A", "context": {"device": {"token": "t" * 1025}}},
            "context.device.token",
        ),
    ],
    ids=["anonymousId-600-emoji", "messageId-256-emoji", "email-1025", "device-token-1025"],
)
def test_a_value_that_could_never_be_stored_is_refused_not_acknowledged(
    engine: LocalEngine, path: str, call: dict, loc: str
) -> None:
    response = engine.invoke("ingest", http_event(path, call))

    assert response["statusCode"] == 400
    details = json.loads(response["body"])["details"]
    assert [d["loc"] for d in details] == [loc]
    assert "bytes in UTF-8" in details[0]["error"]


def test_a_device_clock_in_the_future_does_not_pin_the_profiles_traits(engine: LocalEngine) -> None:
    # Given an identify stamped 2030 by a device with a wrong clock (and no sentAt to correct it)
    import os

    from shared.models.profile import Identifier
    from shared.store.profiles import DynamoProfileStore

    user = "u-future-clock"
    future = {"userId": user, "timestamp": "2030-01-01T00:00:00Z", "traits": {"unsubscribed": False}}
    assert engine.invoke("ingest", http_event("/v1/identify", future))["statusCode"] == 200
    engine.wait_idle()

    # When the customer unsubscribes now
    now = {"userId": user, "traits": {"unsubscribed": True}}
    assert engine.invoke("ingest", http_event("/v1/identify", now))["statusCode"] == 200
    engine.wait_idle()

    # Then the later change wins: the 2030 stamp was replaced by the time it was received
    store = DynamoProfileStore(os.environ["PROFILES_TABLE"])
    owner = store.lookup([Identifier(type="user_id", value=user)]).owners[
        Identifier(type="user_id", value=user)
    ]
    profile = store.profile(owner)
    assert profile is not None
    assert profile.traits["unsubscribed"] is True
