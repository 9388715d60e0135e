"""The Journeys API (admin credential only): every journey of the catalogue with its entries, and one
journey with its exits, conversions and each step's outcomes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths

from shared import config
from shared.admin import ApiError, NotFoundError, authorize
from shared.journeys.catalogue import load_catalogue
from shared.journeys.report import detail, summary
from shared.store.admin_token import admin_token_sha256
from shared.store.journey_stats import JourneyStats

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = config.load(config.JourneysApiSettings)
    method = event.get("requestContext", {}).get("http", {}).get("method", "")
    parts = [unquote(p) for p in event.get("rawPath", "").strip("/").split("/")]
    try:
        authorize(
            (event.get("headers") or {}).get("authorization"),
            admin_token_sha256(settings),
            "the Journeys API",
        )
        catalogue, stats = (
            load_catalogue(settings.journey_catalogue),
            JourneyStats(settings.journey_stats_table),
        )
        match (method, parts[2:]):
            case ("GET", []):
                journeys = [entry.definition for entry in catalogue.journeys]
                return _json(200, {"journeys": [summary(j, stats.get(j.id)) for j in journeys]})
            case ("GET", [journey_id]):
                entry = catalogue.get(journey_id)
                if entry is None:
                    raise NotFoundError("no such journey")
                return _json(200, detail(entry.definition, stats.get(journey_id)))
        return _json(404, {"error": f"no such route for {method}"})
    except ApiError as error:
        return _error(error)


def _error(error: ApiError) -> dict[str, Any]:
    headers = {"WWW-Authenticate": 'Bearer realm="Continuum journeys"'} if error.status == 401 else {}
    return _json(error.status, {"error": error.message}, headers)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
    }
