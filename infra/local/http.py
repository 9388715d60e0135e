"""The local HTTP adapter: requests become API Gateway (HTTP API, payload 2.0) events for the ingest
function, as API Gateway would make them; `/_local/*` routes inspect and drive the local engine.
The `/_local/*` routes exist only here, never in the cloud stacks."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from infra.local.engine import LocalEngine
from shared import clock
from shared.ingest.sources import new_source
from shared.store.sources import SourceNotFoundError

log = logging.getLogger("infra.local")
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit


def api_gateway_event(method: str, target: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    url = urlsplit(target)
    now = datetime.now(UTC)
    is_text = True
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        is_text = False
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path,
        "rawQueryString": url.query,
        "queryStringParameters": {k: ",".join(v) for k, v in parse_qs(url.query).items()} or None,
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "domainName": headers.get("Host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": url.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text if is_text else base64.b64encode(body).decode(),
        "isBase64Encoded": not is_text,
    }


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], engine: LocalEngine):
        super().__init__(address, _Handler)
        self.engine = engine


class _Handler(BaseHTTPRequestHandler):
    server: LocalServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, {"error": f"request body over {MAX_BODY} bytes"})
            return
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        try:
            if path.startswith("/_local/"):
                self._local(method, path, body)
            else:
                self._api(method, body)
        except Exception as error:  # the adapter must answer; the failure is in the engine's log
            log.exception("request failed")
            self._send(500, {"error": f"{type(error).__name__}: {error}"})

    def _api(self, method: str, body: bytes) -> None:
        topology = self.server.engine.topology
        found = topology.route_for(method, urlsplit(self.path).path)
        if method == "OPTIONS":  # API Gateway answers browsers' preflights itself; locally, ingest does
            found = topology.route_for("POST", "/v1/track")
        if found is None:
            self._send(404, {"message": "Not Found"})
            return
        route, parameters = found
        event = api_gateway_event(method, self.path, dict(self.headers.items()), body)
        event["routeKey"] = f"{route.method} {route.path}"
        event["pathParameters"] = parameters
        response = self.server.engine.invoke(route.function, event)
        payload = response.get("body") or ""
        raw = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        self._send_raw(response.get("statusCode", 200), raw, response.get("headers") or {})

    def _local(self, method: str, path: str, body: bytes) -> None:
        engine = self.server.engine
        route = (method, path)
        if route == ("GET", "/_local/health"):
            self._send(200, {"status": "ready", "now": clock.iso(engine.clock.now())})
        elif route == ("GET", "/_local/clock"):
            self._send(200, {"now": clock.iso(engine.clock.now())})
        elif route == ("POST", "/_local/clock/advance"):
            seconds = _seconds(body)
            if seconds is None:
                self._send(400, {"error": 'send {"seconds": N} with N a number ≥ 0'})
                return
            started = time.monotonic()
            now = engine.advance(seconds)
            self._send(200, {"now": clock.iso(now), "tookSeconds": round(time.monotonic() - started, 3)})
        elif route == ("GET", "/_local/messages"):
            self._send(200, engine.messages())
        elif route == ("GET", "/_local/message-log"):
            self._send(200, engine.message_log())
        elif route == ("GET", "/_local/executions"):
            self._send(200, engine.executions(), default=str)
        elif route == ("GET", "/_local/events"):
            self._send(200, engine.bus_events, default=str)
        elif route == ("GET", "/_local/sources"):
            self._send(200, [source.model_dump(exclude={"keyHash"}) for source in engine.sources.all()])
        elif route == ("POST", "/_local/sources"):
            name = _field(body, "name")
            if not isinstance(name, str) or not name.strip():
                self._send(400, {"error": 'send {"name": "…"}'})
                return
            source, key = new_source(name.strip())
            engine.sources.add(source)
            self._send(201, {"source": source.model_dump(exclude={"keyHash"}), "writeKey": key})
        elif method == "DELETE" and path.startswith("/_local/sources/"):
            try:
                revoked = engine.sources.revoke(path.removeprefix("/_local/sources/"))
            except SourceNotFoundError:
                self._send(404, {"error": "no such source"})
                return
            self._send(200, {"source": revoked.model_dump(exclude={"keyHash"})})
        elif route == ("GET", "/_local/failures"):
            self._send(200, [vars(f) for f in engine.failures], default=str)
        else:
            self._send(404, {"error": f"no local route {method} {path}"})

    def _send(self, status: int, payload: Any, default: Any = None) -> None:
        self._send_raw(
            status, json.dumps(payload, default=default).encode(), {"Content-Type": "application/json"}
        )

    def _send_raw(self, status: int, raw: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def _field(body: bytes, name: str) -> Any:
    try:
        return json.loads(body or b"{}").get(name)
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        return None


def _seconds(body: bytes) -> float | None:
    seconds = _field(body, "seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return None
    return float(seconds)
