"""The Profile API refuses what can never be stored with a 4xx naming the field and the limit, and
neither its answers nor the identity function's logs carry an address, a number or an identifier."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from infra.local.engine import LocalEngine
from infra.local.http import api_gateway_event
from shared.store.profiles import identifier_max_bytes
from tests.integration.conftest import http_event

ADMIN = {"Authorization": "Bearer dev-admin-token"}
EMAIL_MAX = identifier_max_bytes("email")  # 2,031 bytes: `identifier#email#<value>` fills a 2,048-byte key


def _api(engine: LocalEngine, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    response: dict[str, Any] = engine.invoke("profiles", api_gateway_event(method, path, ADMIN, body))
    return response["statusCode"], json.loads(response["body"])


def _email_of_bytes(size: int, letter: str = "é") -> str:
    domain = "@example.com"
    width = len(letter.encode())
    return letter * ((size - len(domain)) // width) + "a" * ((size - len(domain)) % width) + domain


@pytest.mark.parametrize(
    ("email", "status"),
    [
        (_email_of_bytes(1025, "a"), 404),  # 1,025 characters: valid, nobody has it (it was a 500)
        (_email_of_bytes(EMAIL_MAX), 404),
        (_email_of_bytes(EMAIL_MAX + 1), 400),
    ],
)
def test_an_email_lookup_is_answered_404_up_to_the_key_limit_and_400_past_it(
    engine: LocalEngine, email: str, status: int
) -> None:
    answered, body = _api(engine, "GET", f"/v1/profiles?email={quote(email)}")

    assert answered == status
    if status == 400:
        assert body == {"error": f"email: longer than {EMAIL_MAX} bytes (UTF-8)"}


@pytest.mark.parametrize(("extra", "status"), [(0, 404), (1, 400)])
def test_removing_an_identifier_at_and_past_the_key_limit_is_answered_4xx(
    engine: LocalEngine, extra: int, status: int
) -> None:
    tag = uuid.uuid4().hex[:10]
    assert engine.invoke("ingest", http_event("/v1/identify", {"userId": f"u-{tag}"}))["statusCode"] == 200
    engine.wait_idle()
    profile_id = _api(engine, "GET", f"/v1/profiles?userId=u-{tag}")[1]["profileId"]
    value = "a" * (identifier_max_bytes("anonymous_id") + extra)

    answered, body = _api(engine, "DELETE", f"/v1/profiles/{profile_id}/identifiers/anonymous_id/{value}")

    assert answered == status
    assert value not in json.dumps(body)
    if status == 400:
        assert body["error"] == f"value: longer than {identifier_max_bytes('anonymous_id')} bytes (UTF-8)"


def test_a_profile_id_too_long_for_any_key_is_answered_404(engine: LocalEngine) -> None:
    assert _api(engine, "GET", "/v1/profiles/" + "p" * 3000)[0] == 404


def test_a_100000_deep_json_body_is_answered_400(engine: LocalEngine) -> None:
    tag = uuid.uuid4().hex[:10]
    assert engine.invoke("ingest", http_event("/v1/identify", {"userId": f"u-{tag}"}))["statusCode"] == 200
    engine.wait_idle()
    profile_id = _api(engine, "GET", f"/v1/profiles?userId=u-{tag}")[1]["profileId"]

    deep = b"[" * 100_000 + b"]" * 100_000
    answered, body = _api(engine, "POST", f"/v1/profiles/{profile_id}/unmerge", deep)

    assert (answered, body) == (400, {"error": "the body is nested too deeply"})


@pytest.mark.parametrize(
    "query", ["email=ada.lovelace.private-example.com", "phone=ada-lovelace-555", "userId=%20"]
)
def test_a_refused_lookup_does_not_echo_the_value(engine: LocalEngine, query: str) -> None:
    answered, body = _api(engine, "GET", f"/v1/profiles?{query}")

    assert answered == 400
    assert "lovelace" not in body["error"]
    assert body["error"].startswith(query.split("=")[0] + ": ")


def test_an_unknown_route_does_not_echo_its_path(engine: LocalEngine) -> None:
    answered, body = _api(engine, "GET", "/v1/profiles/p-1/identifiers/email/ada.lovelace%40example.com")

    assert answered == 404
    assert "lovelace" not in json.dumps(body)


# -- logs ------------------------------------------------------------------------------------------


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {vars(record)}")


@pytest.fixture
def logs() -> Iterator[_Captured]:
    captured = _Captured()
    service = logging.getLogger("continuum")  # Powertools' logger: named after POWERTOOLS_SERVICE_NAME
    service.addHandler(captured)
    try:
        yield captured
    finally:
        service.removeHandler(captured)


def test_the_identity_function_logs_what_it_left_out_but_never_the_value(
    engine: LocalEngine, logs: _Captured
) -> None:
    tag = uuid.uuid4().hex[:10]
    call = {
        "userId": f"u-{tag}",
        "traits": {"email": f"lovelace-{tag}-at-example.com", "phone": f"555-{tag}"},
        "context": {"device": {"id": "00000000-0000-0000-0000-000000000000"}},
    }

    assert engine.invoke("ingest", http_event("/v1/identify", call))["statusCode"] == 200
    engine.wait_idle()

    warned = "\n".join(logs.lines)
    assert "email left out of matching" in warned  # the capture works
    assert "phone left out of matching" in warned
    assert tag not in warned
    assert "lovelace" not in warned
