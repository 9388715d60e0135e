"""Segments (issue 9): what evaluating segments in the event path costs, and how fast a purchase takes
a customer out of the ad audiences.

1. DynamoDB requests per event, per function and for the whole event path (ingest → identity →
   segments → audiences, and the journey router), with 0, 10 and 50 segments defined (plus a row of
   0 segments with the shipped computed traits). Counted by hooking botocore (benchmarks.local_run's
   Meter, per function here), on the local runtime (moto) in-process, started with a generated
   segments folder and no journeys (journeys' own costs are benchmarks.journeys / pipeline_cost).
   Target: the segments function makes at most one read and one write per event whatever the number
   of segments.
2. The time to evaluate an event against 50 segments as a ratio to none: `shared.segments.engine.
   on_event`, in-process, the same events on the same warm state, interleaved, median of many runs.
3. Purchase → removal on the local runtime (shipped segments and journeys): the wall time from the
   purchase's HTTP call (the ingest function) until the recorder (`/_local/audiences`) holds both
   removals, and the virtual time between the purchase and the removals' `at`.

Results are reported, not enforced: the machines are shared and noisy; counts are exact."""

from __future__ import annotations

import base64
import hashlib
import json
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from benchmarks.local_run import WRITE_KEY, Driver, Meter, _scope, call, running_engine

ROOT = Path(__file__).resolve().parents[1]
SEGMENT_COUNTS = (0, 10, 50)
CUSTOMERS = 10  # per phase: each phase sends one event per customer
EVALUATIONS = 2000  # per catalogue, for the in-process timing
LATENCY_SAMPLES = 20
AUDIENCE_EVERY = 10  # one generated segment in ten is synced to an audience (Meta), as a shop might


# ---------------------------------------------------------------- generated segments


def _generated(index: int) -> dict[str, Any]:
    """One segment of five shapes in turn, over the events the benchmark sends: windowed counts (with
    and without `where`), computed traits, traits, and all / any / not / no_event_since."""
    kind = index % 5
    when: dict[str, Any]
    if kind == 0:
        when = {"event": "Product Added", "within": f"{1 + index % 14}d", "at_least": 1 + index % 3}
    elif kind == 1:
        when = {"computed": {"lifetime_revenue": {"gte": 50 * (index + 1)}}}
    elif kind == 2:
        when = {"traits": {"plan": {"equals": f"plan-{index % 7}"}}}
    elif kind == 3:
        when = {
            "all": [
                {"event": "Order Completed", "at_least": 1 + index % 2},
                {"not": {"event": "Product Removed", "within": "3d"}},
            ]
        }
    else:
        when = {
            "any": [
                {"computed": {"orders_count": {"gte": 1 + index % 5}}},
                {
                    "event": "Product Added",
                    "where": {"category": {"equals": f"c{index % 4}"}},
                    "within": "30d",
                },
                {"no_event_since": {"event": "Checkout Started", "since": "Product Added"}},
            ]
        }
    segment: dict[str, Any] = {"id": f"generated_{index}", "name": f"Generated {index}", "when": when}
    if index % AUDIENCE_EVERY == AUDIENCE_EVERY - 1:
        segment["audiences"] = [{"platform": "meta", "audience": f"generated-{index}"}]
    return segment


def segments_folder(root: Path, count: int, computed: bool) -> Path:
    """`count` segments: the two shipped ones (cart_abandoners, synced to Meta and Google, and vip)
    and generated ones; with `computed`, the shipped computed traits (always when there are segments:
    the shipped and generated ones use them)."""
    folder = root / f"segments-{count}{'-computed' if computed else ''}"
    folder.mkdir()
    shipped = ROOT / "segments"
    if computed or count:
        (folder / "computed_traits.yaml").write_text((shipped / "computed_traits.yaml").read_text())
    for name in ("cart_abandoners", "vip")[:count]:
        (folder / f"{name}.yaml").write_text((shipped / f"{name}.yaml").read_text())
    for index in range(max(0, count - 2)):
        segment = _generated(index)
        (folder / f"{segment['id']}.yaml").write_text(yaml.safe_dump(segment, sort_keys=False))
    return folder


# ---------------------------------------------------------------- 1. DynamoDB requests per event


class FunctionMeter(Meter):
    """The Meter, with each request also counted under the function that made it (the SQS event
    source's requests under `(event source)`)."""

    def __init__(self, engine: Any):
        super().__init__(engine)
        self.by_function: Counter[tuple[str, str, str]] = Counter()

    def _record(
        self, service: str, operation: str, params: dict[str, Any], response: Any, before: list[int]
    ) -> None:
        super()._record(service, operation, params, response, before)
        function = getattr(_scope, "function", None) or "(event source)"
        with self._lock:
            self.by_function[(function, service, operation)] += 1


# Each phase: (label, the call each customer sends). Customers were identified (email) and have
# sent one event before the first phase, so every phase is a known customer's event.
Phase = tuple[str, Callable[[str], tuple[str, dict[str, Any]]]]
PHASES: list[Phase] = [
    (
        "track Product Added",
        lambda u: call("track", userId=u, event="Product Added", properties={"category": "c1"}),
    ),
    ("track Product Viewed (no segment names it)", lambda u: call("track", userId=u, event="Product Viewed")),
    (
        "track Order Completed",
        lambda u: call("track", userId=u, event="Order Completed", properties={"revenue": 120}),
    ),
    ("identify (a trait changes)", lambda u: call("identify", userId=u, traits={"plan": "plan-2"})),
]


def _requests_per_event(folder: Path, journeys: Path) -> dict[str, dict[str, Counter[tuple[str, str]]]]:
    """phase → function → (service, operation) → requests, for CUSTOMERS events of each phase."""
    results: dict[str, dict[str, Counter[tuple[str, str]]]] = {}
    with running_engine(segments_dir=folder, journeys_dir=journeys) as engine:
        driver = Driver(engine)
        tag = uuid.uuid4().hex[:6]
        users = [f"seg-{tag}-{n}" for n in range(CUSTOMERS)]
        driver.send([call("identify", userId=u, traits={"email": f"{u}@example.com"}) for u in users])
        driver.send([call("track", userId=u, event="Signed Up") for u in users])
        meter = FunctionMeter(engine)
        meter.install()
        try:
            for label, make in PHASES:
                meter.by_function.clear()
                driver.send([make(u) for u in users])
                phase: dict[str, Counter[tuple[str, str]]] = {}
                for (function, service, operation), n in meter.by_function.items():
                    phase.setdefault(function, Counter())[(service, operation)] += n
                results[label] = phase
        finally:
            meter.uninstall()
        assert not engine.failures, f"functions failed: {Counter(f.function for f in engine.failures)}"
    return results


def _dynamodb(counter: Counter[tuple[str, str]]) -> Counter[str]:
    return Counter({op: n for (service, op), n in counter.items() if service == "dynamodb"})


def _shown(counter: Counter[str]) -> str:
    return ", ".join(f"{op} {n / CUSTOMERS:g}" for op, n in sorted(counter.items())) or "none"


def requests_per_event() -> None:
    print(
        f"\nSegments: DynamoDB requests per event ({CUSTOMERS} known customers per row; no journeys;"
        " target: the segments function ≤ 1 read + 1 write)"
    )
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        journeys = root / "journeys"
        journeys.mkdir()
        setups = [(0, False), (0, True), *((n, True) for n in SEGMENT_COUNTS if n)]
        for count, computed in setups:
            label = f"{count} segments" + (" + 2 computed traits" if computed else " (nothing defined)")
            results = _requests_per_event(segments_folder(root, count, computed), journeys)
            print(f"  {label}")
            for phase, functions in results.items():
                segments = _dynamodb(functions.get("segments", Counter()))
                whole = sum((_dynamodb(c) for c in functions.values()), Counter())
                others = {
                    f"{s}:{op}": n
                    for (s, op), n in functions.get("segments", Counter()).items()
                    if s != "dynamodb"
                }
                by_function = ", ".join(
                    f"{name} {sum(_dynamodb(c).values()) / CUSTOMERS:g}"
                    for name, c in sorted(functions.items())
                    if sum(_dynamodb(c).values())
                )
                print(
                    f"    {phase:<44} segments fn: {sum(segments.values()) / CUSTOMERS:4.2f}"
                    f" ({_shown(segments)})"
                    f"  | whole path: {sum(whole.values()) / CUSTOMERS:5.2f} ({by_function})"
                )
                if others:
                    print(
                        f"    {'':<44} segments fn, other AWS requests per event: {_shown(Counter(others))}"
                    )


# ---------------------------------------------------------------- 2. evaluation time in-process


def evaluation_time() -> None:
    from shared.models.profile import Identifier, Profile
    from shared.segments.catalogue import SegmentCatalogue, load_segments
    from shared.segments.engine import on_event

    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        catalogues = {
            "none (empty catalogue)": SegmentCatalogue(),
            "0 segments + 2 computed traits": load_segments(segments_folder(root, 0, True)),
            "50 segments + 2 computed traits": load_segments(segments_folder(root, 50, True)),
        }
    now = datetime(2026, 6, 1, tzinfo=UTC)
    profile = Profile(
        profileId="p-bench",
        identifiers=[Identifier(type="email", value="bench@example.com")],
        traits={"email": "bench@example.com", "plan": "plan-2"},
        createdAt="2026-01-01T00:00:00.000Z",
        updatedAt="2026-01-01T00:00:00.000Z",
    )
    events = [
        {"type": "track", "event": "Product Added", "properties": {"category": "c1"}},
        {"type": "track", "event": "Order Completed", "properties": {"revenue": 120}},
        {"type": "track", "event": "Product Viewed", "properties": {}},
        {"type": "identify", "traits": {"plan": "plan-3"}},
    ]

    def stamped(event: dict[str, Any], at: datetime) -> dict[str, Any]:
        iso = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {**event, "messageId": uuid.uuid4().hex, "timestamp": iso, "receivedAt": iso}

    # A warm state per catalogue: 200 events over the 30 days before `now` (what a customer's state
    # holds is bounded by the catalogue, not by this history).
    states: dict[str, Any] = {}
    for name, catalogue in catalogues.items():
        state = None
        for n in range(200):
            at = now - timedelta(days=30) + timedelta(hours=3.6 * n)
            state = on_event(state, profile, stamped(events[n % len(events)], at), catalogue, at).state
        states[name] = state

    samples: dict[str, list[float]] = {name: [] for name in catalogues}
    by_kind: dict[tuple[str, str], list[float]] = {}
    for n in range(EVALUATIONS):
        event = events[n % len(events)]
        kind = str(event.get("event") or event["type"])
        for name, catalogue in catalogues.items():  # interleaved: drift on a shared machine hits all alike
            one = stamped(event, now)
            started = time.perf_counter()
            on_event(states[name], profile, one, catalogue, now)
            elapsed = time.perf_counter() - started
            samples[name].append(elapsed)
            by_kind.setdefault((name, kind), []).append(elapsed)

    print(
        f"\nSegments: on_event in-process, median of {EVALUATIONS} evaluations per catalogue (four event"
        " kinds in turn, on a warm state)"
    )
    base = statistics.median(samples["none (empty catalogue)"])
    traits_only = statistics.median(samples["0 segments + 2 computed traits"])
    for name, values in samples.items():
        median = statistics.median(values)
        print(
            f"  {name:<34} {median * 1e6:8.1f} µs   ×{median / base:6.1f} of none"
            f"   ×{median / traits_only:5.2f} of 0 segments + computed traits"
        )
    kinds = sorted({kind for _, kind in by_kind})
    print("  by event, 50 segments vs 0 segments + computed traits:")
    for kind in kinds:
        fifty = statistics.median(by_kind[("50 segments + 2 computed traits", kind)])
        zero = statistics.median(by_kind[("0 segments + 2 computed traits", kind)])
        print(f"    {kind:<20} {fifty * 1e6:8.1f} µs vs {zero * 1e6:8.1f} µs   ×{fifty / zero:5.2f}")


# ---------------------------------------------------------------- 3. purchase → removal latency


def removal_latency() -> None:
    from infra.local.http import api_gateway_event
    from shared import clock
    from shared.segments.hashing import normalised_email

    headers = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    walls: list[float] = []
    virtual: list[float] = []
    with running_engine() as engine:
        driver = Driver(engine)
        recorder = engine.audiences
        tag = uuid.uuid4().hex[:6]
        for n in range(LATENCY_SAMPLES + 1):  # the first is a warm-up, not counted
            user = f"lat-{tag}-{n}"
            email = f"{user}@example.com"
            digest = hashlib.sha256(normalised_email(email).encode()).hexdigest()
            driver.send(
                [
                    call("identify", userId=user, traits={"email": email}),
                    call("track", userId=user, event="Product Added", properties={"cart_id": "c"}),
                ]
            )
            purchase = call("track", userId=user, event="Order Completed", properties={"revenue": 30})[1]
            event = api_gateway_event("POST", "/v1/track", headers, json.dumps(purchase).encode())
            event["routeKey"] = "POST /v1/{proxy+}"
            bought_at = engine.clock.now()
            started = time.perf_counter()
            assert engine.invoke("ingest", event)["statusCode"] == 200
            while True:
                removals = [
                    r for r in recorder.requests() if digest in r["hashes"] and r["action"] == "remove"
                ]
                if len(removals) >= 2:
                    break
                if time.perf_counter() - started > 60:
                    raise RuntimeError("no removal within 60 s of wall time")
                time.sleep(0.001)
            elapsed = time.perf_counter() - started
            engine.wait_idle()
            if n:
                walls.append(elapsed)
                virtual.extend((clock.parse(r["at"]) - bought_at).total_seconds() for r in removals)
        assert not engine.failures, f"functions failed: {Counter(f.function for f in engine.failures)}"
    walls.sort()
    print(
        f"\nSegments: purchase → both removals recorded, local runtime (shipped segments and journeys),"
        f" {LATENCY_SAMPLES} customers one after another"
    )
    print(
        f"  wall time from the purchase's ingest call: median {statistics.median(walls) * 1000:.0f} ms,"
        f" p90 {walls[int(len(walls) * 0.9) - 1] * 1000:.0f} ms, max {walls[-1] * 1000:.0f} ms"
    )
    print(f"  virtual time from the purchase to each removal's `at`: max {max(virtual):g} s")


def run() -> None:
    requests_per_event()
    evaluation_time()
    removal_latency()


if __name__ == "__main__":
    run()
