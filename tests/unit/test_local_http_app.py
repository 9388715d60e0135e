"""The local HTTP adapter's WSGI application (infra/local/http.py), driven in-process by werkzeug's
test client: what a failure answers and logs, and how paths appear in the access log."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from werkzeug.test import Client

from infra.local.http import LocalApp, loggable_path
from infra.topology import TOPOLOGY

EMAIL = "ada.lovelace@example.com"


class _FailingEngine:
    """An engine whose functions fail with the input in the exception's message, as a pydantic or
    boto error would."""

    topology = TOPOLOGY

    def invoke(self, function_name: str, event: dict[str, Any]) -> Any:
        raise ValueError(f"cannot store identifier {EMAIL}: {event['body']}")


def test_a_failure_answers_internal_error_with_a_request_id_and_logs_no_input(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Client(LocalApp(_FailingEngine()))  # type: ignore[arg-type]

    with caplog.at_level(logging.INFO, logger="infra.local"):
        response = client.post(f"/v1/track?email={EMAIL}", data=json.dumps({"email": EMAIL}))

    assert response.status_code == 500
    body = response.get_json()
    assert set(body) == {"error", "requestId"}
    assert body["error"] == "internal error"
    uuid.UUID(body["requestId"])
    assert EMAIL not in response.get_data(as_text=True)
    # The log says which request failed, and how, without the message that quotes the input.
    assert f"request {body['requestId']} failed: ValueError" in caplog.text
    assert EMAIL not in caplog.text
    assert "POST /v1/track 500" in caplog.text


@pytest.mark.parametrize(
    ("method", "path", "shown"),
    [
        ("GET", f"/v1/profiles/{EMAIL}", "/v1/profiles/{profileId}"),
        (
            "DELETE",
            f"/v1/profiles/p-1/identifiers/email/{EMAIL}",
            "/v1/profiles/{profileId}/identifiers/{type}/{value}",
        ),
        ("POST", "/v1/identify", "/v1/identify"),
        ("POST", f"/v1/{EMAIL}", "/v1/{proxy+}"),
        ("POST", "/v1/15551234567", "/v1/{proxy+}"),
    ],
)
def test_a_routed_path_is_logged_as_its_route_without_identifiers(method: str, path: str, shown: str) -> None:
    route, parameters = TOPOLOGY.route_for(method, path) or (None, {})

    assert loggable_path(path, route, parameters) == shown


@pytest.mark.parametrize(
    ("path", "shown"),
    [(f"/{EMAIL}", "/…"), (f"/{EMAIL}/x", "/…"), ("/v2/x", "/v2/…"), ("/nowhere", "/nowhere")],
)
def test_an_unrouted_path_is_logged_by_its_first_segment_only_when_it_is_a_plain_word(
    path: str, shown: str
) -> None:
    assert loggable_path(path, None, {}) == shown
