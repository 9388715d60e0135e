"""`GET /_local/audiences` and `POST /_local/audiences/failures` of the local HTTP adapter."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from werkzeug.test import Client

from infra.local.audiences import AudienceRecorder, local_credentials
from infra.local.http import LocalApp
from infra.topology import TOPOLOGY
from shared.store.ad_platforms import (
    AdPlatformRequestError,
    Member,
    MetaAudiences,
    MetaCredentials,
    RetryPolicy,
)

ADA = hashlib.sha256(b"ada@example.com").hexdigest()


class _Engine:
    topology = TOPOLOGY

    def __init__(self) -> None:
        self.audiences = AudienceRecorder(lambda: datetime(2026, 11, 28, 9, 0, tzinfo=UTC))


def _meta(engine: _Engine) -> MetaAudiences:
    credentials = MetaCredentials.model_validate(local_credentials([("meta", "cart-abandoners")])["meta"])
    return MetaAudiences(credentials, engine.audiences, RetryPolicy(attempts=1, sleep=lambda s: None))


def test_the_audiences_route_lists_what_the_platforms_received() -> None:
    engine = _Engine()
    _meta(engine).apply("cart-abandoners", "add", [Member(emails=(ADA,))])

    response = Client(LocalApp(engine)).get("/_local/audiences")  # type: ignore[arg-type]

    assert response.status_code == 200
    (request,) = response.get_json()["requests"]
    assert (
        request["platform"],
        request["audience"],
        request["action"],
        request["hashes"],
        request["at"],
    ) == (
        "meta",
        "cart-abandoners",
        "add",
        [ADA],
        "2026-11-28T09:00:00.000Z",
    )


def test_a_failure_can_be_injected_over_http() -> None:
    engine = _Engine()
    client = Client(LocalApp(engine))  # type: ignore[arg-type]

    answer = client.post("/_local/audiences/failures", json={"status": 503, "count": 1, "platform": "meta"})

    assert answer.status_code == 200
    try:
        _meta(engine).apply("cart-abandoners", "add", [Member(emails=(ADA,))])
        raise AssertionError("the injected failure did not happen")
    except AdPlatformRequestError as error:
        assert error.status == 503
    assert client.get("/_local/audiences").get_json() == {"requests": []}


def test_a_malformed_failure_is_refused() -> None:
    client = Client(LocalApp(_Engine()))  # type: ignore[arg-type]

    for body in (
        {"status": 200},
        {"status": "500"},
        {"status": 500, "platform": "tiktok"},
        {"status": 500, "count": 0},
    ):
        assert client.post("/_local/audiences/failures", json=body).status_code == 400
