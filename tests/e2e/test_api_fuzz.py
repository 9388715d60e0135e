"""The API driven by schemathesis from its own /openapi.json: whatever is sent, the answer is never a
5xx, and every rejection is a 4xx with a JSON body. Requests carry the write key, so every Profile API
request must also be refused (a write key never opens it).

schemathesis's pytest plugin does not run under pytest 9, so its strategies are driven with
hypothesis directly, one operation after another.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.e2e.conftest import WRITE_KEY, LocalRuntime, basic

EXAMPLES_PER_OPERATION = 130  # 8 ingest operations: over 1,000 ingest requests, 5 Profile API ones


def _fuzz(operation: Any, statuses: list[int]) -> Callable[[], None]:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def call(case: Any) -> None:
        response = case.call(headers=basic(WRITE_KEY))
        statuses.append(response.status_code)
        assert response.status_code < 500, (
            f"{case.method} {case.path}: {response.status_code} {response.text}"
        )
        if case.path.startswith("/v1/profiles"):
            assert response.status_code in (401, 404, 405), response.text
        if response.status_code >= 400:
            content_type = {k.lower(): v for k, v in response.headers.items()}["content-type"]
            assert content_type[0].startswith("application/json"), content_type
            assert "error" in json.loads(response.text)

    return call  # type: ignore[no-any-return]


def test_no_generated_request_is_answered_with_a_5xx(local: LocalRuntime) -> None:
    schema = schemathesis.openapi.from_url(f"{local.url}/openapi.json")
    statuses: dict[str, list[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        _fuzz(operation, statuses.setdefault(operation.label, []))()

    every = [status for per_operation in statuses.values() for status in per_operation]
    document = local.request("GET", "/openapi.json")[1]
    assert len(statuses) == sum(len(methods) for methods in document["paths"].values())
    ingest = [status for label, per in statuses.items() if "/v1/profiles" not in label for status in per]
    assert len(ingest) >= 1000, f"only {len(ingest)} ingest requests were generated"
    # Both sides were exercised: accepted calls, and rejected ones.
    assert 200 in every and any(400 <= status < 500 for status in every)
