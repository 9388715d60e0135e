"""DynamoDB requests the segments function adds to the event path, with 0, 10 and 50 segments defined.

Customers (BENCH_SEGMENT_CUSTOMERS, 50 by default) each identify and send four track calls through the
local runtime (ingest → identity → segments → ...). Every DynamoDB request made while the segments
function's handler runs is counted (botocore's one request path, filtered by the handler's thread), per
resolved event. The target (issue 9): at most one read and one write per event whatever the number of
segments; an empty catalogue makes none. Reported, not enforced: concurrent events of one customer can
lose a conditional write and retry (one more read and write each)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.local_run import Driver, call, running_engine

CUSTOMERS = int(os.environ.get("BENCH_SEGMENT_CUSTOMERS", "50"))
SEGMENT_COUNTS = (0, 10, 50)
READS = {"GetItem", "BatchGetItem", "Query", "Scan"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_scope = threading.local()


def _segments(folder: Path, count: int) -> Path:
    """`count` segments over the events the customers send, with windows and counts of every kind."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    events = ("Product Added", "Product Viewed", "Order Completed")
    for n in range(count):
        (folder / f"s{n}.yaml").write_text(
            f"id: s{n}\nname: Segment {n}\nwhen:\n  event: {events[n % 3]}\n  within: {n % 14 + 1}d\n"
            f"  at_least: {n % 3 + 1}\n"
        )
    return folder


def _customers(count: int) -> list[tuple[str, dict[str, Any]]]:
    tag = uuid.uuid4().hex[:6]
    calls = []
    for i in range(count):
        user = f"s-{tag}-{i}"
        calls.append(call("identify", userId=user, traits={"email": f"{user}@example.com"}))
        for event in ("Product Viewed", "Product Added", "Product Added", "Order Completed"):
            calls.append(call("track", userId=user, event=event, properties={"revenue": 20}))
    return calls


def _measure(segments_dir: Path) -> tuple[int, Counter[str]]:
    """(resolved events handled by the segments function, DynamoDB requests it made by operation)."""
    from botocore.client import BaseClient

    requests: Counter[str] = Counter()
    invocations = 0
    lock = threading.Lock()
    original = BaseClient._make_api_call

    def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if getattr(_scope, "segments", False) and client.meta.service_model.service_name == "dynamodb":
            with lock:
                requests[operation] += 1
        return original(client, operation, params)

    journeys = Path(tempfile.mkdtemp(prefix="no-journeys-"))
    with running_engine(journeys_dir=journeys, segments_dir=segments_dir) as engine:
        handler = engine._handlers["segments"]

        def counted(event: Any, context: Any) -> Any:
            nonlocal invocations
            _scope.segments = True
            try:
                with lock:
                    invocations += 1
                return handler(event, context)
            finally:
                _scope.segments = False

        engine._handlers["segments"] = counted
        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        try:
            Driver(engine).send(_customers(CUSTOMERS))
        finally:
            BaseClient._make_api_call = original  # type: ignore[method-assign]
    shutil.rmtree(journeys, ignore_errors=True)
    return invocations, requests


def main() -> None:
    print(f"\n== Segments: DynamoDB requests per resolved event ({CUSTOMERS} customers, 5 calls each)")
    print(f"{'segments':>9} {'events':>7} {'reads/event':>12} {'writes/event':>13}  requests")
    root = Path(tempfile.mkdtemp(prefix="segments-bench-"))
    try:
        for count in SEGMENT_COUNTS:
            events, requests = _measure(_segments(root / f"n{count}", count))
            reads = sum(n for op, n in requests.items() if op in READS)
            writes = sum(n for op, n in requests.items() if op in WRITES)
            per = max(events, 1)
            print(f"{count:>9} {events:>7} {reads / per:>12.3f} {writes / per:>13.3f}  {dict(requests)}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
