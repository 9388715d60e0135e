"""Ingest: a 500-call batch through the ingest handler, AWS answered by in-memory fakes, as a ratio to
`json.loads` + pydantic validation of the same payload, measured side by side in one run.
Target ≤ 2. Also counts PutEvents calls per call (target 0.1: batches of 10)."""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

CALLS = 500
ROUNDS = 25
TARGET = 2.0


class _FakeEvents:
    def __init__(self) -> None:
        self.put_events_calls = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        self.put_events_calls += 1
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i in range(len(Entries))]}


class _FakeDynamoDB:
    def __init__(self, source_item: dict[str, Any]):
        self._source = source_item

    def get_item(self, **_: Any) -> dict[str, Any]:
        return {"Item": self._source}

    def batch_get_item(self, **_: Any) -> dict[str, Any]:
        return {"Responses": {}}

    def batch_write_item(self, **_: Any) -> dict[str, Any]:
        return {"UnprocessedItems": {}}

    def put_item(self, **_: Any) -> dict[str, Any]:  # a dedupe reservation: always granted here
        return {}


class _Context:
    function_name = "ingest"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ingest"
    aws_request_id = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def _payload() -> str:
    calls = [
        {
            "type": "track",
            "userId": f"user-{i % 50}",
            "anonymousId": f"anon-{i}",
            "event": "Product Viewed",
            "messageId": f"bench-{i}",
            "timestamp": "2026-11-24T10:00:00.000Z",
            "sentAt": "2026-11-24T10:00:01.000Z",
            "properties": {
                "product_id": f"sku-{i}",
                "name": "Trail running shoes",
                "price": 89.5,
                "tags": ["run"],
            },
            "context": {"library": {"name": "analytics-python", "version": "2.3.2"}, "ip": "203.0.113.7"},
        }
        for i in range(CALLS)
    ]
    return json.dumps({"batch": calls})


def run() -> bool:
    os.environ.update(
        {
            "EVENT_BUS_NAME": "bench-bus",
            "SOURCES_TABLE": "bench-sources",
            "SEEN_MESSAGES_TABLE": "bench-seen",
            "DEDUPE_WINDOW_SECONDS": "604800",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    from pydantic import TypeAdapter

    from functions.ingest import handler as ingest
    from shared import config
    from shared.ingest.sources import new_source
    from shared.models.segment import Batch
    from shared.store import aws

    source, key = new_source("bench")
    events, dynamodb = (
        _FakeEvents(),
        _FakeDynamoDB({k: {"S": v} for k, v in source.model_dump(exclude_none=True).items()}),
    )
    fakes = {"events": events, "dynamodb": dynamodb}
    aws.client.cache_clear()
    config.reset()
    import boto3

    boto3.client = lambda service, *a, **k: fakes[service]  # type: ignore[assignment]

    body = _payload()
    request = {
        "version": "2.0",
        "rawPath": "/v1/batch",
        "headers": {"authorization": "Basic " + __import__("base64").b64encode(f"{key}:".encode()).decode()},
        "requestContext": {"http": {"method": "POST", "path": "/v1/batch"}, "requestId": "bench"},
        "body": body,
        "isBase64Encoded": False,
    }
    adapter = TypeAdapter(Batch)

    def validate_only() -> None:
        adapter.validate_python(json.loads(body))

    def through_handler() -> None:
        response = ingest.handler(request, _Context())
        assert response["statusCode"] == 200, response

    through_handler(), validate_only()  # warm: first-use model builds are not what is measured
    events.put_events_calls = 0
    samples: dict[str, list[float]] = {"handler": [], "validate": []}
    for _ in range(ROUNDS):
        for name, work in (("handler", through_handler), ("validate", validate_only)):
            started = time.perf_counter()
            work()
            samples[name].append(time.perf_counter() - started)
    handler_s, validate_s = statistics.median(samples["handler"]), statistics.median(samples["validate"])
    ratio = handler_s / validate_s
    per_call = events.put_events_calls / (ROUNDS * CALLS)
    print(f"\nIngest: a {CALLS}-call batch, median of {ROUNDS} runs")
    print(f"  json.loads + pydantic validation  {validate_s * 1000:8.1f} ms")
    print(f"  through the ingest handler        {handler_s * 1000:8.1f} ms   ratio {ratio:.2f}", end="")
    print(f"  (target ≤ {TARGET})")
    print(f"  PutEvents calls per call          {per_call:8.3f}      (target 0.1)")
    return ratio <= TARGET and per_call <= 0.1


if __name__ == "__main__":
    run()
