"""The Segment HTTP Tracking API: authenticate the write key, validate, dedupe, put the calls on the bus.

API Gateway's HTTP API (payload 2.0) sends every request here. The event is read directly rather
than through Powertools' resolver: a handful of fixed paths need no router, and the resolver's
import costs this, the most latency-sensitive function, ~40 ms on every cold start.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from shared import config
from shared.ingest.calls import CORS, IngestError, call_type_of, decode_body, parse, to_bus_events
from shared.ingest.service import accept
from shared.ingest.sources import SourceResolver, presented_key
from shared.models.events import PublishError
from shared.store.bus import EventPublisher
from shared.store.sources import SeenMessageStore, SourceStore

logger = Logger()
metrics = Metrics()
_sources: SourceResolver | None = None


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    method = event.get("requestContext", {}).get("http", {}).get("method", "")
    path = event.get("rawPath", "")
    call_type = call_type_of(path)
    if method == "OPTIONS":
        return _response(204, "")
    if method == "GET" and (path in ("/openapi.json", "/docs") or path.startswith("/docs/")):
        return _describe(path)
    if method != "POST" or call_type is None:
        return _json(404, {"error": f"no route {method} {path}"})
    try:
        return _ingest(call_type, event)
    except IngestError as error:
        headers = {"WWW-Authenticate": 'Basic realm="Continuum"'} if error.status == 401 else {}
        if error.status == 503:  # a copy of a call another request is accepting right now
            headers = {"Retry-After": "1"}
        return _json(error.status, error.body(), headers)
    except PublishError:
        # Nothing acknowledged is lost: the SDK retries a 5xx, and only what reached the bus counts as seen.
        logger.exception("publish failed")
        return _json(503, {"error": "the events could not be stored; retry"}, {"Retry-After": "1"})


def _ingest(call_type: str, event: dict[str, Any]) -> dict[str, Any]:
    global _sources
    settings = config.load(config.IngestSettings)
    if _sources is None:
        _sources = SourceResolver(SourceStore(settings.sources_table).find, settings.write_key_cache_seconds)
    headers = event.get("headers") or {}
    authorization = headers.get("authorization")
    # A key in the header is checked before the body is even decoded: a caller without a valid key
    # costs a hash and a cached lookup, never a gunzip. A key only in the body (analytics.js) needs
    # the body decoded first; decode_body bounds that work (input, output and gzip members).
    source = _sources.source_for(presented_key(authorization, None)) if authorization else None
    text = decode_body(event.get("body"), bool(event.get("isBase64Encoded")), headers.get("content-encoding"))
    calls, body_key = parse(call_type, text)
    source = source or _sources.source_for(presented_key(None, body_key))

    accepted = accept(
        to_bus_events(calls, source.sourceId),
        source.sourceId,
        SeenMessageStore(settings.seen_messages_table),
        EventPublisher(settings.event_bus_name),
        settings.dedupe_window_seconds,
    )

    metrics.add_metric(name="CallsPublished", unit=MetricUnit.Count, value=accepted.published)
    metrics.add_metric(name="CallsDuplicate", unit=MetricUnit.Count, value=accepted.duplicates)
    return _json(200, {"success": True})


def _describe(path: str) -> dict[str, Any]:
    if path.startswith("/docs"):
        from shared.ingest import docs  # imported on demand: nothing of it at cold start

        found = docs.page(path)
        if found is None:
            return _json(404, {"error": f"no route GET {path}"})
        return _response(200, found[0], {"Content-Type": found[1]})

    from shared.ingest import openapi  # imported on demand: nothing of it at cold start

    return _json(200, openapi.document())


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    return _response(
        status,
        json.dumps(body, separators=(",", ":")),
        {"Content-Type": "application/json", **(headers or {})},
    )


def _response(status: int, body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"statusCode": status, "headers": {**CORS, **(headers or {})}, "body": body}
