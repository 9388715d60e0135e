"""Local runtime dispatch: Segment calls per second through the whole local engine (ingest → bus →
identity → journey router, until the engine is idle), sent by 12 client threads as `make local`'s
HTTP adapter would send them, with one worker per function (serial dispatch) and with the default
number (CONCURRENCY), measured side by side in one run and reported as a ratio. Runs on moto
in-process; the machine's cores and Python's GIL bound what concurrency can gain here."""

from __future__ import annotations

import base64
import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

CALLS = 240
CLIENTS = 12
ROUNDS = 2
WRITE_KEY = "bench-write-key"


def _requests() -> list[dict[str, Any]]:
    from infra.local.http import api_gateway_event

    headers = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    tag = uuid.uuid4().hex[:8]
    calls = []
    for i in range(CALLS):
        user = f"bench-{tag}-{i % 60}"
        if i % 4 == 0:
            call = {"userId": user, "traits": {"plan": "pro"}, "messageId": f"{tag}-{i}"}
            path = "/v1/identify"
        else:
            call = {"userId": user, "event": "Product Viewed", "messageId": f"{tag}-{i}"}
            path = "/v1/track"
        event = api_gateway_event("POST", path, headers, json.dumps(call).encode())
        event["routeKey"] = "POST /v1/{proxy+}"
        calls.append(event)
    return calls


def _calls_per_second(concurrency: int) -> float:
    from infra.local.engine import LocalEngine

    engine = LocalEngine(write_key=WRITE_KEY, concurrency=concurrency).start()
    try:
        requests = _requests()
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as clients:
            statuses = list(clients.map(lambda event: engine.invoke("ingest", event)["statusCode"], requests))
        engine.wait_idle()
        elapsed = time.perf_counter() - started
        assert statuses == [200] * CALLS, "every call must be accepted"
        assert engine.failures == [], "no function may fail"
        return CALLS / elapsed
    finally:
        engine.stop()


def run() -> None:
    from infra.local.engine import CONCURRENCY

    samples: dict[int, list[float]] = {1: [], CONCURRENCY: []}
    for _ in range(ROUNDS):  # alternated, so that a noisy moment falls on both alike
        for concurrency in samples:
            samples[concurrency].append(_calls_per_second(concurrency))
    serial, concurrent = (statistics.median(samples[c]) for c in samples)
    print(f"\nLocal runtime dispatch: {CALLS} calls from {CLIENTS} threads until idle, median of {ROUNDS}")
    print(f"  1 worker per function (serial)        {serial:8.1f} calls/s")
    ratio = concurrent / serial
    print(f"  {CONCURRENCY} workers per function (default)     {concurrent:8.1f} calls/s   ratio {ratio:.2f}")


if __name__ == "__main__":
    run()
