"""The served OpenAPI document (shared/ingest/openapi.py) against what the HTTP API serves
(infra/topology.py) and against what the admin APIs answer (the Journeys and Segments APIs' shapes).
tests/e2e/test_admin_openapi.py validates the running server's real answers the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.topology import TOPOLOGY, HttpRoute
from shared.ingest.openapi import document
from shared.journeys.loader import load_journeys
from shared.journeys.report import detail, summary
from shared.segments.catalogue import load_segments
from shared.segments.report import computed_trait_view, segment_view
from tests.openapi_schemas import response_errors

ROOT = Path(__file__).resolve().parents[2]
JOURNEYS = [journey.definition for journey in load_journeys(ROOT / "journeys")]
SEGMENTS = load_segments(ROOT / "segments")
# The API's routes under /v1, but the ingest catch-all (POST /v1/{proxy+}: one path per call type,
# tests/unit/test_ingest_openapi.py).
V1_ROUTES = [r for r in TOPOLOGY.http_routes if r.path.startswith("/v1/") and "{proxy+}" not in r.path]


@pytest.mark.parametrize("route", V1_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_route_the_api_serves_under_v1_is_documented(route: HttpRoute) -> None:
    assert route.method.lower() in document()["paths"].get(route.path, {})


def test_every_documented_operation_is_served_by_a_route_of_the_api() -> None:
    unserved = []
    for path, operations in document()["paths"].items():
        concrete = path.replace("{", "x-").replace("}", "")  # a value for each path parameter
        for method in operations.keys() - {"description", "summary", "parameters"}:
            found = TOPOLOGY.route_for(method.upper(), concrete)
            if found is None or found[0].public:
                unserved.append(f"{method.upper()} {path}")

    assert unserved == []


@pytest.mark.parametrize(
    ("path", "unknown"),
    [
        ("/v1/journeys", False),
        ("/v1/journeys/{journeyId}", True),
        ("/v1/segments", False),
        ("/v1/segments/{segmentId}", True),
    ],
)
def test_the_journeys_and_segments_apis_need_the_admin_token_and_say_what_they_answer(
    path: str, unknown: bool
) -> None:
    get = document()["paths"][path]["get"]

    assert get["security"] == [{"adminToken": []}]
    assert set(get["responses"]) == {"200", "401"} | ({"404"} if unknown else set())
    assert "WWW-Authenticate" in get["responses"]["401"]["headers"]


# Counters as journey-stats holds them: whole numbers, revenue with cents, reasons by name.
def _counters(step_ids: list[str]) -> dict[str, float]:
    counters: dict[str, float] = {
        "entered": 12,
        "exited#goal": 3,
        "exited#completed": 2,
        "heldOut": 1,
        "conversions": 3,
        "revenue": 129.5,
        "heldOutConversions": 1,
        "heldOutRevenue": 20,
    }
    for step_id in step_ids:
        counters |= {f"step#{step_id}#sent": 4, f"step#{step_id}#dropped#quiet_hours": 1}
        counters |= {f"step#{step_id}#deferred#cap": 2, f"step#{step_id}#revenue": 9.99}
    return counters


@pytest.mark.parametrize("journey", JOURNEYS, ids=lambda j: j.id)
def test_a_shipped_journeys_answer_matches_the_documented_journey(journey: Any) -> None:
    counters = _counters([step.id for step in journey.walk()])

    assert (
        response_errors(document(), "/v1/journeys/{journeyId}", "GET", 200, detail(journey, counters)) == []
    )
    assert response_errors(document(), "/v1/journeys/{journeyId}", "GET", 200, detail(journey, {})) == []


def test_the_journey_list_matches_the_documented_list() -> None:
    answer = {"journeys": [summary(journey, {"entered": 2, "exited#goal": 1}) for journey in JOURNEYS]}

    assert response_errors(document(), "/v1/journeys", "GET", 200, answer) == []


def test_the_documented_journey_refuses_an_answer_without_its_steps() -> None:
    # The schema is not vacuous: an answer missing a promised field is refused.
    answer = detail(JOURNEYS[0], {})
    del answer["steps"]

    assert response_errors(document(), "/v1/journeys/{journeyId}", "GET", 200, answer) != []


@pytest.mark.parametrize("segment", SEGMENTS.segments, ids=lambda s: s.id)
def test_a_shipped_segments_answer_matches_the_documented_segment(segment: Any) -> None:
    answer = segment_view(segment, 7)

    assert response_errors(document(), "/v1/segments/{segmentId}", "GET", 200, answer) == []


def test_the_segment_list_with_the_computed_traits_matches_the_documented_list() -> None:
    answer = {
        "segments": [segment_view(segment, 0) for segment in SEGMENTS.segments],
        "computedTraits": [computed_trait_view(trait) for trait in SEGMENTS.computed],
    }

    assert SEGMENTS.computed
    assert response_errors(document(), "/v1/segments", "GET", 200, answer) == []
