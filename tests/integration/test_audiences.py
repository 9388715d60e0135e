"""The audiences function on the local runtime (moto): the FIFO queue, the segment-members table, the
credentials secrets, the recorder standing in for Meta and Google, and dead-lettering."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.engine import LocalEngine
from shared.models.segments import AudienceIntent, AudienceMessage, HashedIdentifier, SegmentState
from shared.segments.engine import synced_key
from shared.store import ad_platforms
from shared.store.segments import SegmentStore, state_item
from tests.integration.conftest import client

ADA = hashlib.sha256(b"ada@example.com").hexdigest()
AT = "2026-11-28T10:00:00.000Z"


@pytest.fixture
def local(engine: LocalEngine) -> Iterator[LocalEngine]:
    engine.reset()
    yield engine
    engine.reset()


def message(profile: str, entered: bool | None, action: str | None) -> AudienceMessage:
    intents = [
        AudienceIntent(
            platform=platform,  # type: ignore[arg-type]
            audience="cart-abandoners",
            action=action,  # type: ignore[arg-type]
            segment="cart_abandoners",
            profileId=profile,
            at=AT,
            identifiers=[HashedIdentifier(kind="email", sha256=ADA)],
        )
        for platform in ("meta", "google")
        if action is not None
    ]
    return AudienceMessage(
        profileId=profile, segment="cart_abandoners", entered=entered, at=AT, intents=intents
    )


def decided(queued: AudienceMessage) -> None:
    """Write the segment state the message was decided with, as the segments function does before it
    sends one (the audiences function reconciles each message with that state)."""
    store = SegmentStore(os.environ["PROFILES_TABLE"])
    [before] = store.states([queued.profileId]) or [SegmentState(profileId=queued.profileId)]
    synced = {k: {kind: list(v) for kind, v in kinds.items()} for k, kinds in before.synced.items()}
    for intent in queued.intents:
        held = synced.setdefault(synced_key(intent.platform, intent.audience, intent.segment), {"email": []})
        hashes = [i.sha256 for i in intent.identifiers]
        held["email"] = hashes if intent.action == "add" else [h for h in held["email"] if h not in hashes]
    segments = before.segments
    if queued.entered is not None:
        segments = [queued.segment] if queued.entered else []
    state = before.model_copy(update={"synced": synced, "segments": segments})
    client("dynamodb").put_item(TableName=store.table, Item=state_item(state, before.version + 1))


def send(*messages: AudienceMessage) -> None:
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName="continuum-audiences.fifo")["QueueUrl"]
    for queued in messages:
        decided(queued)
        sqs.send_message(
            QueueUrl=url,
            MessageBody=queued.model_dump_json(),
            MessageGroupId=queued.profileId,
            MessageDeduplicationId=uuid.uuid4().hex,
        )


def member(segment: str, profile: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        client("dynamodb")
        .get_item(
            TableName="continuum-segment-members",
            Key={"segment": {"S": segment}, "profileId": {"S": profile}},
        )
        .get("Item")
    )
    return item


def dead_letters() -> list[str]:
    """The dead-letter queue's messages, taken off it (a FIFO group stays blocked while one of its
    messages is received and not deleted)."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName="continuum-audiences-dlq.fifo")["QueueUrl"]
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for dead in received:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=dead["ReceiptHandle"])
    return [m["Body"] for m in received]


def recorded(engine: LocalEngine) -> list[tuple[str, str, str, list[str]]]:
    return [(r["platform"], r["audience"], r["action"], r["hashes"]) for r in engine.audiences.requests()]


def test_entering_puts_the_member_and_adds_the_hash_to_both_audiences(local: LocalEngine) -> None:
    send(message("p1", True, "add"))
    local.wait_idle()

    assert member("cart_abandoners", "p1") == {
        "segment": {"S": "cart_abandoners"},
        "profileId": {"S": "p1"},
        "since": {"S": AT},
    }
    assert recorded(local) == [
        ("meta", "cart-abandoners", "add", [ADA]),
        ("google", "cart-abandoners", "add", [ADA]),
    ]


def test_leaving_deletes_the_member_and_removes_the_hash(local: LocalEngine) -> None:
    send(message("p1", True, "add"))
    local.wait_idle()
    send(message("p1", False, "remove"))
    local.wait_idle()

    assert member("cart_abandoners", "p1") is None
    assert recorded(local)[2:] == [
        ("meta", "cart-abandoners", "remove", [ADA]),
        ("google", "cart-abandoners", "remove", [ADA]),
    ]


def test_a_rate_limit_then_success_is_retried_and_recorded_once(local: LocalEngine) -> None:
    local.audiences.fail(429, count=1, platform="meta", retry_after=1)

    send(message("p1", True, "add"))
    local.wait_idle()

    assert recorded(local) == [
        ("meta", "cart-abandoners", "add", [ADA]),
        ("google", "cart-abandoners", "add", [ADA]),
    ]
    assert dead_letters() == []


def test_a_message_whose_requests_keep_failing_is_dead_lettered(
    local: LocalEngine, caplog: pytest.LogCaptureFixture
) -> None:
    local.audiences.fail(500, count=1_000, platform="google")
    queued = message("p1", True, "add")

    send(queued)
    local.wait_idle()

    assert [AudienceMessage.model_validate_json(body) for body in dead_letters()] == [queued]
    assert [r[0] for r in recorded(local)] == ["meta"] * 3  # each delivery's Meta add succeeded; Google never
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "google answered 500" in logged  # the failures are logged ...
    assert ADA not in logged and "local-google-token" not in logged  # ... without hashes or tokens


def test_the_credentials_come_from_the_secret_and_are_cached(local: LocalEngine) -> None:
    secrets = client("secretsmanager")
    arn = os.environ["META_CREDENTIALS_SECRET_ARN"]
    original = secrets.get_secret_value(SecretId=arn)["SecretString"]
    try:
        send(message("p1", True, "add"))  # reads (and caches) the secret as the engine wrote it
        local.wait_idle()
        secrets.put_secret_value(
            SecretId=arn,
            SecretString=json.dumps({"access_token": "rotated", "audiences": {"cart-abandoners": "6001"}}),
        )
        send(message("p2", True, "add"))  # within the cache time: the cached secret
        local.wait_idle()
        ad_platforms.forget_credentials()  # the cache expires
        send(message("p3", True, "add"))
        local.wait_idle()
    finally:
        secrets.put_secret_value(SecretId=arn, SecretString=original)
        ad_platforms.forget_credentials()

    assert [r[1] for r in recorded(local) if r[0] == "meta"] == ["cart-abandoners", "cart-abandoners", "6001"]


def test_a_platform_without_credentials_fails_loudly(
    local: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared import config

    monkeypatch.delenv("GOOGLE_CREDENTIALS_SECRET_ARN")
    config.reset()
    try:
        send(message("p1", True, "add"))
        local.wait_idle()
    finally:
        monkeypatch.undo()
        config.reset()

    assert len(dead_letters()) == 1
    assert member("cart_abandoners", "p1") is not None  # membership is kept whatever the platforms say
