"""The Journeys API (admin credential only): every journey of the catalogue with its entries, and one
journey with its exits, conversions and each step's outcomes."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from shared import config
from shared.admin import ApiError, NotFoundError, admin_call, error_response, json_response, no_route
from shared.journeys.catalogue import load_catalogue
from shared.journeys.report import detail, summary
from shared.store.admin_token import admin_token_sha256
from shared.store.journey_stats import JourneyStats

REALM = "Continuum journeys"  # named in a 401's WWW-Authenticate

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response = _answer(event)
    # Answers by class (JourneysApi2xx, JourneysApi4xx): refused calls show on the dashboard.
    metrics.add_metric(name=f"JourneysApi{response['statusCode'] // 100}xx", unit=MetricUnit.Count, value=1)
    return response


def _answer(event: dict[str, Any]) -> dict[str, Any]:
    settings = config.load(config.JourneysApiSettings)
    try:
        call = admin_call(event, admin_token_sha256(settings), "the Journeys API")
        catalogue, stats = (
            load_catalogue(settings.journey_catalogue),
            JourneyStats(settings.journey_stats_table),
        )
        match call:
            case ("GET", []):
                journeys = [entry.definition for entry in catalogue.journeys]
                return json_response(200, {"journeys": [summary(j, stats.get(j.id)) for j in journeys]})
            case ("GET", [journey_id]):
                entry = catalogue.get(journey_id)
                if entry is None:
                    raise NotFoundError("no such journey")
                return json_response(200, detail(entry.definition, stats.get(journey_id)))
        return no_route(call.method)
    except ApiError as error:
        return error_response(error, REALM)
