"""POST /v1/{track,identify,batch}: authenticate the write key, validate, put the calls on the bus.

API Gateway's HTTP API (payload 2.0) routes here. The event is read directly rather than through
Powertools' resolver: one route does not need a router, and the resolver's import costs this, the
most latency-sensitive function, ~40 ms on every cold start.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from shared import config
from shared.ingest.calls import CALL_TYPES, IngestError, authenticate, parse, to_bus_events
from shared.store.bus import EventPublisher, PublishError

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    method = event.get("requestContext", {}).get("http", {}).get("method", "")
    call_type = event.get("rawPath", "").removeprefix("/v1/")
    if method != "POST" or call_type not in CALL_TYPES:
        return _json(404, {"error": f"no route {method} {event.get('rawPath')}"})
    settings = config.load(config.IngestSettings)
    try:
        authenticate((event.get("headers") or {}).get("authorization"), settings.write_key_sha256)
        events = to_bus_events(parse(call_type, _body(event)))
        EventPublisher(settings.event_bus_name).publish(events)
    except IngestError as error:
        headers = {"WWW-Authenticate": 'Basic realm="Continuum"'} if error.status == 401 else {}
        return _json(error.status, {"error": error.message, "details": error.details}, headers)
    except PublishError:
        # Nothing acknowledged is lost: the SDK retries a 5xx.
        logger.exception("publish failed")
        return _json(503, {"error": "events could not be stored; retry"}, {"Retry-After": "1"})
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=len(events))
    return _json(200, {"success": True})


def _body(event: dict[str, Any]) -> str | None:
    body = event.get("body")
    if body and event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as error:
            raise IngestError("the body is not UTF-8 text") from error
    return body


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
    }
