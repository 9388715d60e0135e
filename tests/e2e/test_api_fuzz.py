"""Schemathesis against the running local server, as a user would run it: `st run` on the server's own
/openapi.json, authenticated, with the checks `not_a_server_error` (no 5xx, whatever is sent) and
`negative_data_rejection` (what the document says is invalid is refused with a 4xx). The ingest API is
driven with the write key, the Profile API with the admin token. The Journeys and Segments APIs (GET
only, an id in the path) have few cases: they get every check, their answers validated against the
document included, and a short random phase too.

Run from the command line (schemathesis's pytest plugin does not run under pytest 9); a failure
prints schemathesis's own report, each finding with a curl command that reproduces it.

The same server's real answers from the Journeys and Segments APIs, after a customer went through a
journey, are validated against the served document too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import WRITE_KEY, LocalRuntime, basic
from tests.openapi_schemas import response_errors

CHECKS = "not_a_server_error,negative_data_rejection"
# schemathesis's coverage phase: for every operation, the boundary values and the documented
# constraints broken one at a time (~3,000 cases, deterministic). Its random phase adds little to that
# and doubles the run time on a laptop.
PHASES = "coverage"
MINIMUM_CASES = 2500
ADMIN_TOKEN = "dev-admin-token"  # the local runtime's default (CONTINUUM_ADMIN_TOKEN)
SCHEMATHESIS = [sys.executable, "-m", "schemathesis.cli"]  # `st`, from this virtualenv
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Every check but `unsupported_method`, which wants 405 for a method a path does not serve: API Gateway
# (HTTP API) answers 404 `{"message": "Not Found"}` to a route it does not have, and so does the local
# adapter (the document says so on each path).
ADMIN_CHECKS = ["--checks", "all", "--exclude-checks", "unsupported_method"]
ADMIN_PHASES = ["--phases", "coverage,fuzzing", "--max-examples", "25"]


def _run(
    local: LocalRuntime,
    report: Path,
    authorization: str,
    paths: str,
    checks: tuple[str, ...] = ("--checks", CHECKS),
    phases: tuple[str, ...] = ("--phases", PHASES),
) -> dict[str, object]:
    completed = subprocess.run(
        [
            *SCHEMATHESIS,
            "run",
            f"{local.url}/openapi.json",
            *checks,
            *phases,
            "--generation-deterministic",
            # Health checks judge the data generation (too slow, too filtered), not the API.
            "--suppress-health-check",
            "all",
            "--header",
            f"Authorization: {authorization}",
            "--include-path-regex",
            paths,
            # One worker: the local runtime runs one call per function at a time anyway, and Python
            # 3.11's ast.parse (used by hypothesis in each worker thread) can fail under threads.
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--no-color",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        cwd=report.parent,  # schemathesis keeps a .schemathesis directory where it runs
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stdout[-20000:] + completed.stderr[-5000:]
    document: dict[str, object] = json.loads(report.read_text())
    return document


def _cases(document: dict[str, object]) -> int:
    return int(document["test_cases"]["generated"])  # type: ignore[index]


def test_schemathesis_finds_no_server_error_and_no_accepted_invalid_input(
    local: LocalRuntime, tmp_path: Path
) -> None:
    ingest = _run(
        local,
        tmp_path / "ingest.json",
        basic(WRITE_KEY)["Authorization"],
        r"^/v1/(?!profiles|journeys|segments)",
    )
    profiles = _run(local, tmp_path / "profiles.json", f"Bearer {ADMIN_TOKEN}", r"^/v1/profiles")
    journeys_and_segments = _run(
        local,
        tmp_path / "journeys-segments.json",
        f"Bearer {ADMIN_TOKEN}",
        r"^/v1/(journeys|segments)",
        tuple(ADMIN_CHECKS),
        tuple(ADMIN_PHASES),
    )

    runs = (ingest, profiles, journeys_and_segments)
    document = local.request("GET", "/openapi.json")[1]
    operations = sum(len(HTTP_METHODS & set(item)) for item in document["paths"].values())
    tested = [run["operations"]["tested"] for run in runs]  # type: ignore[index]
    assert sum(tested) == operations
    assert tested[2] == 4
    total = _cases(ingest) + _cases(profiles)
    assert total >= MINIMUM_CASES, f"only {total} cases were generated"
    assert [run["failures"] for run in runs] == [[], [], []]
    assert [run["errors"] for run in runs] == [[], [], []]


def _get(
    local: LocalRuntime, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], object]:
    status, answer_headers, raw = local.raw("GET", path, headers=headers)
    return status, answer_headers, json.loads(raw)


def test_real_journey_and_segment_answers_match_the_served_document(local: LocalRuntime) -> None:
    # Given a customer who entered cart_abandonment (and the cart_abandoners segment) and was sent its email
    user = {"userId": "doc-reader", "context": {"traits": {"email": "doc-reader@example.com"}}}
    assert local.send("identify", {**user, "traits": {"email": "doc-reader@example.com"}})[0] == 200
    assert (
        local.send("track", {**user, "event": "Product Added", "properties": {"cart_id": "c-doc"}})[0] == 200
    )
    local.advance(3600)
    document = local.request("GET", "/openapi.json")[1]

    # When the Journeys and Segments APIs are asked, with and without the admin token
    asked = {
        ("/v1/journeys", "/v1/journeys"),
        ("/v1/journeys/{journeyId}", "/v1/journeys/cart_abandonment"),
        ("/v1/segments", "/v1/segments"),
        ("/v1/segments/{segmentId}", "/v1/segments/cart_abandoners"),
    }
    answers = {path: _get(local, real, ADMIN) for path, real in asked}
    refused = {path: _get(local, real) for path, real in asked}
    unknown = {
        path: _get(local, f"{path.split('/{')[0]}/no_such_id", ADMIN) for path, _ in asked if "{" in path
    }

    # Then each answer is the documented one for its status
    for path, (status, _, answer) in answers.items():
        assert status == 200
        assert response_errors(document, path, "GET", 200, answer) == [], path
    for path, (status, headers, answer) in refused.items():
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert response_errors(document, path, "GET", 401, answer) == [], path
    for path, (status, _, answer) in unknown.items():
        assert status == 404
        assert response_errors(document, path, "GET", 404, answer) == [], path
    # ...and the answers validated were not empty ones (the fuzzing in this module may add to them)
    journey = answers["/v1/journeys/{journeyId}"][2]
    assert isinstance(journey, dict) and journey["entered"] >= 1
    assert journey["steps"][1]["id"] == "send-email-cart-reminder" and journey["steps"][1]["sent"] >= 1
    segment = answers["/v1/segments/{segmentId}"][2]
    assert isinstance(segment, dict) and segment["size"] >= 1


def test_other_methods_on_the_journeys_and_segments_apis_are_not_found(local: LocalRuntime) -> None:
    # As API Gateway answers a route it does not have (and POST /v1/... is the ingest route's)
    for path in ("/v1/journeys", "/v1/journeys/welcome", "/v1/segments", "/v1/segments/vip"):
        assert local.request("DELETE", path, headers=ADMIN) == (404, {"message": "Not Found"})
        assert local.request("PUT", path, {}, headers=ADMIN) == (404, {"message": "Not Found"})
        assert local.request("POST", path, {}, headers=basic(WRITE_KEY))[0] == 404
