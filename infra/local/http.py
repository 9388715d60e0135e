"""The local HTTP adapter: requests become API Gateway (HTTP API, payload 2.0) events for the ingest
and profiles functions, as API Gateway would make them; `/_local/*` routes inspect and drive the local
engine. The `/_local/*` routes exist only here, never in the cloud stacks.

Served by werkzeug's threaded WSGI server (installed with moto), not by a hand-written
http.server handler: it accepts every method, decodes chunked bodies, keeps a deep listen queue and
closes each connection after its response, so a body's bytes are never read as another request.
What stays here is what API Gateway does in front of a function: the body limit, refusing what it
cannot frame, answering 404 where no route matches, and an access log without personal data.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from infra.local.engine import LocalEngine
from infra.topology import HttpRoute
from shared import clock
from shared.ingest.sources import new_source
from shared.store.sources import SourceNotFoundError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger("infra.local")
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
# Seconds the server waits for the next bytes of a request: a client that announces more body than it
# sends is answered 408 instead of holding a thread forever.
READ_TIMEOUT_SECONDS = 10
_DIGITS = re.compile(r"[0-9]+")
_WORD = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # a path segment that cannot be an email or a phone
MAX_ADVANCE_SECONDS = 100 * 365 * 24 * 3600  # beyond this the calendar, not the journey, is tested


def api_gateway_event(
    method: str, target: str, headers: dict[str, str], body: bytes, request_id: str | None = None
) -> dict[str, Any]:
    url = urlsplit(target)
    now = datetime.now(UTC)
    is_text = True
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        is_text = False
    lowered = {name.lower(): value for name, value in headers.items()}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path,
        "rawQueryString": url.query,
        "queryStringParameters": {k: ",".join(v) for k, v in parse_qs(url.query).items()} or None,
        "headers": lowered,
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": url.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": request_id or str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text if is_text else base64.b64encode(body).decode(),
        "isBase64Encoded": not is_text,
    }


class _Refused(Exception):
    """A request refused before it reaches a route; the connection is closed after the answer, since
    the rest of the body may still be on it."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def read_body(environ: WSGIEnvironment) -> bytes:
    """The request body, framed as API Gateway frames it: by Content-Length, or chunked."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    encoding = environ.get("HTTP_TRANSFER_ENCODING")
    try:
        if encoding is not None:
            # werkzeug decodes chunked bodies and marks them terminated; any other coding, or a
            # Content-Length as well (the classic smuggling pair), cannot be framed safely.
            if not environ.get("wsgi.input_terminated") or encoding.strip().lower() != "chunked":
                raise _Refused(400, "unsupported Transfer-Encoding")
            if length is not None:
                raise _Refused(400, "both Content-Length and Transfer-Encoding")
            body = bytearray()
            while chunk := stream.read(64 * 1024):
                body += chunk
                if len(body) > MAX_BODY:
                    raise _Refused(413, f"request body over {MAX_BODY} bytes")
            return bytes(body)
        if length is None or length == "":
            return b""
        if not _DIGITS.fullmatch(length):
            raise _Refused(400, "Content-Length is not a number")
        if int(length) > MAX_BODY:
            raise _Refused(413, f"request body over {MAX_BODY} bytes")
        body = stream.read(int(length))
    except TimeoutError as error:
        raise _Refused(408, "the request body did not arrive in time") from error
    except OSError as error:  # werkzeug's chunk decoder: a malformed chunk
        raise _Refused(400, "malformed chunked body") from error
    if len(body) < int(length):  # the client closed the connection before sending it all
        raise _Refused(400, "the request body is shorter than its Content-Length")
    return bytes(body)


def loggable_path(path: str, route: HttpRoute | None, parameters: dict[str, str]) -> str:
    """The path as the access log shows it. A matched route shows its template, so the identifiers a
    Profile API path carries (an email in /v1/profiles/{profileId}/identifiers/email/{value}) stay out
    of the log; /v1/{proxy+} shows the Segment call's name. An unmatched path shows only its first
    segment: it may be anything."""
    if route is None:
        first = path.lstrip("/").split("/", 1)[0]
        if not _WORD.fullmatch(first):
            return "/…"
        return f"/{first}/…" if "/" in path.lstrip("/") else f"/{first}"
    shown = route.path
    for name, value in parameters.items():
        if name == "proxy" and _WORD.fullmatch(value):
            shown = shown.replace("{proxy+}", value)
    return shown


_LOCAL_ROUTES = Map(
    [
        Rule("/_local/health", methods=["GET"], endpoint="health"),
        Rule("/_local/clock", methods=["GET"], endpoint="clock"),
        Rule("/_local/clock/advance", methods=["POST"], endpoint="advance"),
        Rule("/_local/messages", methods=["GET"], endpoint="messages"),
        Rule("/_local/message-log", methods=["GET"], endpoint="message_log"),
        Rule("/_local/executions", methods=["GET"], endpoint="executions"),
        Rule("/_local/events", methods=["GET"], endpoint="events"),
        Rule("/_local/sources", methods=["GET"], endpoint="sources"),
        Rule("/_local/sources", methods=["POST"], endpoint="new_source"),
        Rule("/_local/sources/<source_id>", methods=["DELETE"], endpoint="revoke_source"),
        Rule("/_local/failures", methods=["GET"], endpoint="failures"),
        Rule("/_local/audiences", methods=["GET"], endpoint="audiences"),
        Rule("/_local/audiences/failures", methods=["POST"], endpoint="audience_failures"),
        Rule("/_local/push/disable", methods=["POST"], endpoint="push_disable"),
    ]
)
_LOCAL = _LOCAL_ROUTES.bind("localhost")


class LocalApp:
    """The WSGI application: one request in, one answer out, one access-log line."""

    def __init__(self, engine: LocalEngine):
        self.engine = engine

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        request = Request(environ)
        request_id = str(uuid.uuid4())
        # The target as the client sent it, as http.server read it (werkzeug's PATH_INFO is
        # percent-decoded, and REQUEST_URI re-encoded for WSGI).
        target = str(environ["REQUEST_URI"]).encode("latin-1").decode("utf-8")
        path = urlsplit(target).path
        handle, shown = self._route(request.method, path)
        try:
            response = handle(request, target, request_id)
        except _Refused as refused:
            # werkzeug closes every connection after its answer, so unread body bytes go with it.
            response = _json(refused.status, {"error": refused.message})
        except Exception as error:  # the adapter must answer; what failed goes to the log
            # Neither the answer nor the log repeats the exception's message: it may quote the input.
            log.error(
                "request %s failed: %s\n%s",
                request_id,
                type(error).__name__,
                "".join(traceback.format_tb(error.__traceback__)),
            )
            response = _json(500, {"error": "internal error", "requestId": request_id})
        log.info(
            "%s %s %d %.1fms",
            request.method,
            shown,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response(environ, start_response)

    def _route(self, method: str, path: str) -> tuple[Callable[[Request, str, str], Response], str]:
        """What answers the request, and the path as the access log shows it."""
        if path.startswith("/_local/"):
            try:
                rule, arguments = _LOCAL.match(path, method, return_rule=True)
                assert isinstance(rule, Rule)
            except HTTPException:
                return _local_not_found, "/_local/…"
            local = getattr(self, f"_local_{rule.endpoint}")
            return (
                lambda request, target, request_id: local(read_body(request.environ), **arguments),
                rule.rule.replace("<source_id>", "{sourceId}"),
            )
        topology = self.engine.topology
        found = topology.route_for(method, path)
        if method == "OPTIONS":  # API Gateway answers browsers' preflights itself; locally, ingest does
            found = topology.route_for("POST", "/v1/track")
        if found is None:
            return _not_found, loggable_path(path, None, {})
        route, parameters = found
        return (
            lambda request, target, request_id: self._invoke(route, parameters, request, target, request_id),
            loggable_path(path, route, parameters),
        )

    def _invoke(
        self, route: HttpRoute, parameters: dict[str, str], request: Request, target: str, request_id: str
    ) -> Response:
        body = read_body(request.environ)
        event = api_gateway_event(request.method, target, dict(request.headers.items()), body, request_id)
        event["routeKey"] = f"{route.method} {route.path}"
        event["pathParameters"] = parameters
        answer = self.engine.invoke(route.function, event)
        payload = answer.get("body") or ""
        raw = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode()
        response = Response(raw, status=answer.get("statusCode", 200))
        response.headers.clear()
        for name, value in (answer.get("headers") or {}).items():
            response.headers[name] = value
        return response

    def _local_health(self, body: bytes) -> Response:
        return _json(200, {"status": "ready", "now": clock.iso(self.engine.clock.now())})

    def _local_clock(self, body: bytes) -> Response:
        return _json(200, {"now": clock.iso(self.engine.clock.now())})

    def _local_advance(self, body: bytes) -> Response:
        seconds = _seconds(body)
        if seconds is None:
            return _json(
                400, {"error": f'send {{"seconds": N}} with N a number from 0 to {MAX_ADVANCE_SECONDS}'}
            )
        started = time.monotonic()
        now = self.engine.advance(seconds)
        return _json(200, {"now": clock.iso(now), "tookSeconds": round(time.monotonic() - started, 3)})

    def _local_messages(self, body: bytes) -> Response:
        return _json(200, self.engine.messages())

    def _local_message_log(self, body: bytes) -> Response:
        return _json(200, self.engine.message_log())

    def _local_executions(self, body: bytes) -> Response:
        return _json(200, self.engine.executions(), default=str)

    def _local_events(self, body: bytes) -> Response:
        return _json(200, self.engine.bus_events, default=str)

    def _local_sources(self, body: bytes) -> Response:
        return _json(200, [source.model_dump(exclude={"keyHash"}) for source in self.engine.sources.all()])

    def _local_new_source(self, body: bytes) -> Response:
        name = _field(body, "name")
        if not isinstance(name, str) or not name.strip():
            return _json(400, {"error": 'send {"name": "…"}'})
        source, key = new_source(name.strip())
        self.engine.sources.add(source)
        return _json(201, {"source": source.model_dump(exclude={"keyHash"}), "writeKey": key})

    def _local_revoke_source(self, body: bytes, source_id: str) -> Response:
        try:
            revoked = self.engine.sources.revoke(source_id)
        except SourceNotFoundError:
            return _json(404, {"error": "no such source"})
        return _json(200, {"source": revoked.model_dump(exclude={"keyHash"})})

    def _local_failures(self, body: bytes) -> Response:
        return _json(200, [vars(f) for f in self.engine.failures], default=str)

    def _local_audiences(self, body: bytes) -> Response:
        """Every request the ad platforms would have received, in order (infra/local/audiences.py)."""
        return _json(200, {"requests": self.engine.audiences.requests()})

    def _local_audience_failures(self, body: bytes) -> Response:
        """`{"status": 429, "count": 1, "platform": "meta"|"google" (optional), "retryAfter": s
        (optional)}`: the next `count` platform requests fail with `status`."""
        status, count = _field(body, "status"), _field(body, "count")
        platform, retry_after = _field(body, "platform"), _field(body, "retryAfter")
        try:
            if not isinstance(status, int) or isinstance(status, bool) or not isinstance(count, int | None):
                raise ValueError
            if retry_after is not None and (
                isinstance(retry_after, bool) or not isinstance(retry_after, int | float)
            ):
                raise ValueError
            self.engine.audiences.fail(status, 1 if count is None else count, platform, retry_after)
        except ValueError:
            usage = 'send {"status": 4xx|5xx, "count": N, "platform": "meta"|"google", "retryAfter": s}'
            return _json(400, {"error": usage})
        return _json(200, {"status": status, "count": 1 if count is None else count, "platform": platform})

    def _local_push_disable(self, body: bytes) -> Response:
        """`{"token": "…"}`: disable the device token's SNS endpoint, as SNS does when the platform
        reports the token invalid (the next push to it fails with EndpointDisabled)."""
        token = _field(body, "token")
        if not isinstance(token, str) or not token.strip():
            return _json(400, {"error": 'send {"token": "…"}'})
        self.engine.disable_push_token(token.strip())
        return _json(200, {"disabled": True})


class _RequestHandler(WSGIRequestHandler):
    timeout = READ_TIMEOUT_SECONDS

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """LocalApp writes the access log; werkzeug's would print the query string (`?email=`)."""

    def log_error(self, format: str, *args: Any) -> None:
        # http.server's messages quote the raw request line, whose query may hold an email: log the
        # status code alone.
        code = args[0] if format.startswith("code %d") and args else None
        log.warning("request refused by the HTTP server%s", f" ({code})" if code else "")


def local_server(address: tuple[str, int], engine: LocalEngine) -> BaseWSGIServer:
    """werkzeug's threaded server around LocalApp. Its `serve_forever` returns on KeyboardInterrupt,
    which is how SIGTERM stops it too (see infra.local.__main__)."""
    return make_server(
        address[0], address[1], LocalApp(engine), threaded=True, request_handler=_RequestHandler
    )


def _not_found(request: Request, target: str, request_id: str) -> Response:
    read_body(request.environ)  # a body that cannot be framed is refused first, as API Gateway does
    return _json(404, {"message": "Not Found"})


def _local_not_found(request: Request, target: str, request_id: str) -> Response:
    read_body(request.environ)
    return _json(404, {"error": f"no local route {request.method} {urlsplit(target).path}"})


def _json(status: int, payload: Any, default: Any = None) -> Response:
    return Response(json.dumps(payload, default=default), status=status, content_type="application/json")


def _field(body: bytes, name: str) -> Any:
    try:
        return json.loads(body or b"{}").get(name)
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        return None


def _seconds(body: bytes) -> float | None:
    seconds = _field(body, "seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    if not 0 <= seconds <= MAX_ADVANCE_SECONDS:  # also refuses NaN
        return None
    return float(seconds)
