"""The Segments API (admin credential only): every segment of the catalogue with its definition and
size, and the computed traits; one segment by id."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from shared import config
from shared.admin import ApiError, NotFoundError, admin_call, error_response, json_response, no_route
from shared.segments.catalogue import load_segment_catalogue
from shared.segments.report import computed_trait_view, segment_view
from shared.store.admin_token import admin_token_sha256
from shared.store.segment_members import SegmentMembers

REALM = "Continuum segments"  # named in a 401's WWW-Authenticate

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response = _answer(event)
    metrics.add_metric(name=f"SegmentsApi{response['statusCode'] // 100}xx", unit=MetricUnit.Count, value=1)
    return response


def _answer(event: dict[str, Any]) -> dict[str, Any]:
    settings = config.load(config.SegmentsApiSettings)
    try:
        call = admin_call(event, admin_token_sha256(settings), "the Segments API")
        catalogue = load_segment_catalogue(settings.segment_catalogue)
        members = SegmentMembers(settings.segment_members_table)
        match call:
            case ("GET", []):
                return json_response(
                    200,
                    {
                        "segments": [segment_view(s, members.size(s.id)) for s in catalogue.segments],
                        "computedTraits": [computed_trait_view(trait) for trait in catalogue.computed],
                    },
                )
            case ("GET", [segment_id]):
                segment = catalogue.get(segment_id)
                if segment is None:
                    raise NotFoundError("no such segment")
                return json_response(200, segment_view(segment, members.size(segment.id)))
        return no_route(call.method)
    except ApiError as error:
        return error_response(error, REALM)
