"""The Segment HTTP Tracking API as SDKs call it, through the local runtime, checked on the bus."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urljoin

import pytest

from shared import clock
from tests.e2e.conftest import ROOT, WRITE_KEY, LocalRuntime, basic

CALLS: dict[str, dict[str, Any]] = {
    "identify": {"userId": "u-1", "traits": {"email": "ada@example.com", "plan": "pro", "seats": 3}},
    "track": {"anonymousId": "a-1", "event": "Product Added", "properties": {"price": 89.5, "tags": ["x"]}},
    "page": {"anonymousId": "a-1", "name": "Pricing", "category": "Docs", "properties": {"path": "/pricing"}},
    "screen": {"userId": "u-1", "name": "Cart", "properties": {"items": 2}},
    "group": {"userId": "u-1", "groupId": "acme", "traits": {"name": "Acme", "employees": 40}},
    "alias": {"userId": "u-1", "previousId": "a-1"},
}


def _post(local: LocalRuntime, path: str, payload: dict[str, Any], gzipped: bool, **headers: str) -> int:
    data = json.dumps(payload).encode()
    sent = {**basic(WRITE_KEY), "Content-Type": "application/json", **headers}
    if gzipped:
        data, sent["Content-Encoding"] = gzip.compress(data), "gzip"
    return local.raw("POST", path, data, sent)[0]


def _on_bus(local: LocalRuntime, message_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in local.events()
        if e["source"] == "continuum.ingest" and e["detail"]["correlationId"] == message_id
    ]


def _assert_intact(event: dict[str, Any], call_type: str, sent: dict[str, Any]) -> None:
    assert event["detail-type"] == f"segment.{call_type}"
    data = event["detail"]["data"]
    assert data["type"] == call_type
    assert {k: data[k] for k in sent} == sent
    assert data["sourceId"].startswith("src_")
    assert data["receivedAt"] and data["timestamp"]
    assert "writeKey" not in data


@pytest.mark.parametrize("gzipped", [False, True], ids=["json", "gzip"])
@pytest.mark.parametrize("call_type", sorted(CALLS))
def test_every_call_type_reaches_the_bus_intact_single(
    local: LocalRuntime, call_type: str, gzipped: bool
) -> None:
    call = {**CALLS[call_type], "messageId": f"single-{call_type}-{uuid.uuid4().hex}"}
    assert _post(local, f"/v1/{call_type}", call, gzipped) == 200
    [event] = _on_bus(local, call["messageId"])
    _assert_intact(event, call_type, call)


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/import"])
@pytest.mark.parametrize("gzipped", [False, True], ids=["json", "gzip"])
def test_every_call_type_reaches_the_bus_intact_batched(
    local: LocalRuntime, gzipped: bool, path: str
) -> None:
    tag = uuid.uuid4().hex
    batch = [{**call, "type": t, "messageId": f"batch-{t}-{tag}"} for t, call in sorted(CALLS.items())]
    assert (
        _post(local, path, {"batch": batch, "context": {"library": {"name": "analytics-python"}}}, gzipped)
        == 200
    )
    for call in batch:
        [event] = _on_bus(local, call["messageId"])
        _assert_intact(event, call["type"], {k: v for k, v in call.items() if k != "context"})
        assert event["detail"]["data"]["context"] == {"library": {"name": "analytics-python"}}


def test_json_sent_as_text_plain_with_the_write_key_in_the_body_is_accepted(local: LocalRuntime) -> None:
    # What analytics.js does to avoid a CORS preflight.
    call = {**CALLS["track"], "messageId": uuid.uuid4().hex, "writeKey": WRITE_KEY}
    status = local.raw("POST", "/v1/track", json.dumps(call).encode(), {"Content-Type": "text/plain"})[0]
    assert status == 200
    [event] = _on_bus(local, call["messageId"])
    assert "writeKey" not in event["detail"]["data"]


def test_a_browser_preflight_is_answered_with_cors_headers(local: LocalRuntime) -> None:
    status, headers, _ = local.raw(
        "OPTIONS",
        "/v1/track",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    assert "POST" in headers["Access-Control-Allow-Methods"]


def test_a_repeated_message_id_is_published_once(local: LocalRuntime) -> None:
    call = {**CALLS["track"], "messageId": f"dup-{uuid.uuid4().hex}"}
    assert _post(local, "/v1/track", call, False) == 200
    assert _post(local, "/v1/track", call, True) == 200
    assert (
        _post(local, "/v1/batch", {"batch": [{**call, "type": "track"}, {**call, "type": "track"}]}, False)
        == 200
    )
    assert len(_on_bus(local, call["messageId"])) == 1


def test_an_oversized_call_is_refused_with_the_limit_and_its_index(local: LocalRuntime) -> None:
    big = {**CALLS["track"], "properties": {"blob": "x" * 33_000}}
    status, body = local.send("track", big)
    assert (status, body["limit"]) == (413, "call_bytes")

    batch = [{**CALLS["track"], "type": "track"}] * 3 + [{**big, "type": "track"}]
    status, body = local.send("batch", {"batch": batch})
    assert (status, body["limit"], body["index"]) == (413, "call_bytes", 3)
    assert "32768" in body["error"]


def test_an_oversized_batch_is_refused_with_the_limit_named(local: LocalRuntime) -> None:
    calls = [{**CALLS["track"], "type": "track", "properties": {"blob": "x" * 30_000}}] * 20  # ~600 KB
    status, body = local.send("batch", {"batch": calls})
    assert (status, body["limit"]) == (413, "batch_bytes")

    many = [{"type": "track", "userId": "u", "event": "E"}] * 2501
    status, body = local.send("batch", {"batch": many})
    assert (status, body["limit"]) == (413, "batch_calls")


@pytest.mark.parametrize(
    ("data", "headers", "fragment"),
    [
        (b"\x1f\x8b not gzip", {"Content-Encoding": "gzip"}, "not valid gzip"),
        (b'{"userId": "u", "event": ', {}, "malformed JSON"),
        (b'{"userId": ["u"], "event": "E"}', {}, "userId"),
        (b'{"event": "E"}', {}, "userId or anonymousId"),
        (json.dumps({"userId": "u", "event": "E"}).encode(), {"Content-Encoding": "br"}, "Content-Encoding"),
    ],
)
def test_bad_bodies_are_answered_400_with_json_saying_what(
    local: LocalRuntime, data: bytes, headers: dict[str, str], fragment: str
) -> None:
    status, response_headers, raw = local.raw("POST", "/v1/track", data, {**basic(WRITE_KEY), **headers})
    assert status == 400
    assert response_headers["Content-Type"] == "application/json"
    assert fragment in raw.decode()


def test_a_wrong_key_with_a_hostile_gzip_body_is_answered_401_before_any_decoding(
    local: LocalRuntime,
) -> None:
    # 10,000 empty gzip members (quadratic to inflate, as it was), and bytes that are not gzip at all
    for hostile in (gzip.compress(b"") * 10_000, b"\x1f\x8b" + b"\x00" * 4096):
        status, headers, raw = local.raw(
            "POST", "/v1/batch", hostile, {**basic("not-a-key"), "Content-Encoding": "gzip"}
        )

        assert status == 401
        assert "unknown write key" in json.loads(raw)["error"]


def test_a_missing_key_is_answered_401_with_a_challenge(local: LocalRuntime) -> None:
    status, headers, raw = local.raw("POST", "/v1/track", json.dumps(CALLS["track"]).encode())
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert "missing write key" in json.loads(raw)["error"]


def test_sources_are_created_used_and_revoked_with_the_cli(local: LocalRuntime) -> None:
    def cli(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "infra.sources", "--local", local.url, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    created = cli("create", "mobile app")
    source_id = created.split()[1]
    key = created.split("write key: ")[1].split()[0]
    assert local.send("track", CALLS["track"], write_key=key)[0] == 200
    assert source_id in cli("list") and key not in cli("list")

    cli("revoke", source_id)
    status, body = local.send("track", CALLS["track"], write_key=key)
    assert (status, body["error"]) == (401, "this write key was revoked")
    assert "revoked" in cli("list")


def test_the_api_describes_itself(local: LocalRuntime) -> None:
    status, document = local.request("GET", "/openapi.json")
    assert status == 200
    assert {f"/v1/{t}" for t in [*CALLS, "batch", "import"]} <= set(document["paths"])
    assert "/v1/profiles/{profileId}" in document["paths"]
    status, headers, page = local.raw("GET", "/docs")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"openapi.json" in page


def test_the_docs_page_and_everything_it_loads_are_served_locally(local: LocalRuntime) -> None:
    status, _, page = local.raw("GET", "/docs")
    html = page.decode()
    assert status == 200
    # Nothing from a CDN or any other host: the page must work offline.
    assert re.findall(r"(?:https?:)?//", html) == []
    loaded = re.findall(r'<(?:script|link)[^>]* (?:src|href)="([^"]+)"', html)
    kinds = {url.rsplit(".", 1)[-1] for url in loaded}
    assert kinds == {"js", "css"}
    for url in loaded:
        # Relative to the page at /docs, as a browser resolves it.
        status, headers, body = local.raw("GET", urljoin("/docs", url))
        expected = "text/javascript" if url.endswith(".js") else "text/css"
        assert (status, headers["Content-Type"].split(";")[0]) == (200, expected), url
        assert len(body) > 10_000, url  # the real Swagger UI file, not an error page
    assert b"SwaggerUIBundle" in local.raw("GET", "/docs/swagger-ui-bundle.js")[2]
    assert local.raw("GET", "/docs/..%2Fpyproject.toml")[0] == 404
    assert local.raw("GET", "/docs/swagger-ui-bundle.js.map")[0] == 404


def test_analytics_js_one_letter_paths_and_batch_sent_at_are_understood(local: LocalRuntime) -> None:
    # analytics.js (AJS 2.0): /v1/t, /v1/i, … and, batching, /v1/b with one sentAt for the batch,
    # the write key in the body and the JSON as text/plain.
    tag = uuid.uuid4().hex
    single = {**CALLS["page"], "messageId": f"ajs-p-{tag}", "writeKey": WRITE_KEY}
    assert local.raw("POST", "/v1/p", json.dumps(single).encode(), {"Content-Type": "text/plain"})[0] == 200
    assert _on_bus(local, single["messageId"])[0]["detail-type"] == "segment.page"

    # The device's clock is 10 minutes fast: its timestamp and sentAt both say so.
    batch = {
        "writeKey": WRITE_KEY,
        "sentAt": "2030-01-01T00:10:00.000Z",
        "batch": [
            {
                **CALLS["track"],
                "type": "track",
                "messageId": f"ajs-b-{tag}",
                "timestamp": "2030-01-01T00:09:00.000Z",
            }
        ],
    }
    assert local.raw("POST", "/v1/b", json.dumps(batch).encode(), {"Content-Type": "text/plain"})[0] == 200
    [event] = _on_bus(local, f"ajs-b-{tag}")
    data = event["detail"]["data"]
    received, stamped = clock.parse(data["receivedAt"]), clock.parse(data["timestamp"])
    assert received - stamped == timedelta(minutes=1)
