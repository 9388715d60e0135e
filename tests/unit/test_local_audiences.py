"""The local stand-in for the ad platforms (infra/local/audiences.py): it reads the requests the real
clients build as the platforms would, lists adds and removes in order on the virtual clock, and fails
on demand."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from infra.local.audiences import AudienceRecorder, local_credentials
from shared.store.ad_platforms import (
    AdPlatformRequestError,
    GoogleCredentials,
    GoogleCustomerMatch,
    Member,
    MetaAudiences,
    MetaCredentials,
    RetryPolicy,
)

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
ADA = hashlib.sha256(b"ada@example.com").hexdigest()
PHONE = hashlib.sha256(b"447700900123").hexdigest()
CREDENTIALS = local_credentials([("meta", "cart-abandoners"), ("google", "cart-abandoners")])
NO_WAIT = RetryPolicy(sleep=lambda seconds: None)


def clients(recorder: AudienceRecorder) -> tuple[MetaAudiences, GoogleCustomerMatch]:
    return (
        MetaAudiences(MetaCredentials.model_validate(CREDENTIALS["meta"]), recorder, NO_WAIT),
        GoogleCustomerMatch(GoogleCredentials.model_validate(CREDENTIALS["google"]), recorder, NO_WAIT),
    )


def test_adds_and_removes_are_listed_in_order_with_their_hashes_and_the_virtual_time() -> None:
    recorder = AudienceRecorder(lambda: NOW)
    meta, google = clients(recorder)

    meta.apply("cart-abandoners", "add", [Member(emails=(ADA,), phones=(PHONE,))])
    google.apply("cart-abandoners", "add", [Member(emails=(ADA,))])
    meta.apply("cart-abandoners", "remove", [Member(emails=(ADA,), phones=(PHONE,))])
    google.apply("cart-abandoners", "remove", [Member(emails=(ADA,))])

    assert recorder.requests() == [
        {
            "platform": "meta",
            "audience": "cart-abandoners",
            "action": "add",
            "hashes": [ADA, PHONE],
            "identifiers": [{"kind": "email", "sha256": ADA}, {"kind": "phone", "sha256": PHONE}],
            "at": "2026-11-28T09:30:00.000Z",
        },
        {
            "platform": "google",
            "audience": "cart-abandoners",
            "action": "add",
            "hashes": [ADA],
            "identifiers": [{"kind": "email", "sha256": ADA}],
            "at": "2026-11-28T09:30:00.000Z",
        },
        {
            "platform": "meta",
            "audience": "cart-abandoners",
            "action": "remove",
            "hashes": [ADA, PHONE],
            "identifiers": [{"kind": "email", "sha256": ADA}, {"kind": "phone", "sha256": PHONE}],
            "at": "2026-11-28T09:30:00.000Z",
        },
        {
            "platform": "google",
            "audience": "cart-abandoners",
            "action": "remove",
            "hashes": [ADA],
            "identifiers": [{"kind": "email", "sha256": ADA}],
            "at": "2026-11-28T09:30:00.000Z",
        },
    ]


def test_an_injected_rate_limit_is_retried_and_recorded_once() -> None:
    recorder = AudienceRecorder(lambda: NOW)
    meta, _ = clients(recorder)
    recorder.fail(429, count=1, platform="meta", retry_after=1)

    meta.apply("cart-abandoners", "add", [Member(emails=(ADA,))])

    assert [(r["platform"], r["action"]) for r in recorder.requests()] == [("meta", "add")]


def test_injected_server_errors_outlast_the_retries_and_nothing_is_recorded() -> None:
    recorder = AudienceRecorder(lambda: NOW)
    _, google = clients(recorder)
    recorder.fail(500, count=100, platform="google")

    with pytest.raises(AdPlatformRequestError) as failed:
        google.apply("cart-abandoners", "add", [Member(emails=(ADA,))])

    assert failed.value.status == 500
    assert recorder.requests() == []


def test_a_request_the_platform_would_refuse_is_refused_and_not_listed() -> None:
    recorder = AudienceRecorder(lambda: NOW)

    status, _, _ = recorder(
        "POST",
        "https://graph.facebook.com/v26.0/cart-abandoners/users",
        {},
        b'{"payload":{"schema":["EMAIL"],"data":[["ada@example.com"]]},"session":{},"access_token":"t"}',
    )

    assert status == 400  # a plain email, not its SHA-256
    assert recorder.requests() == []


def test_a_failure_must_be_a_4xx_or_5xx() -> None:
    with pytest.raises(ValueError):
        AudienceRecorder().fail(200)
