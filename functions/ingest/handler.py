"""POST /v1/{track,identify,batch}: authenticate the write key, validate, put the calls on the bus."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from shared import config
from shared.ingest.calls import IngestError, authenticate, parse, to_bus_events
from shared.store.bus import EventPublisher, PublishError

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()


@app.post("/v1/<call_type>")
def ingest(call_type: str) -> Response[Any]:
    settings = config.load(config.IngestSettings)
    authenticate(app.current_event.headers.get("authorization"), settings.write_key_sha256)
    if call_type not in ("track", "identify", "batch"):
        return _json(404, {"error": f"unknown call /v1/{call_type}"})
    events = to_bus_events(parse(call_type, app.current_event.decoded_body))
    EventPublisher(settings.event_bus_name).publish(events)
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=len(events))
    return _json(200, {"success": True})


@app.exception_handler(IngestError)
def _rejected(error: IngestError) -> Response[Any]:
    headers = {"WWW-Authenticate": 'Basic realm="Continuum"'} if error.status == 401 else None
    return _json(error.status, {"error": error.message, "details": error.details}, headers)


@app.exception_handler(PublishError)
def _unavailable(error: PublishError) -> Response[Any]:
    # Nothing acknowledged is lost: the SDK retries a 5xx.
    logger.exception("publish failed")
    return _json(503, {"error": "events could not be stored; retry"}, {"Retry-After": "1"})


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(status_code=status, content_type="application/json", body=body, headers=headers)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
