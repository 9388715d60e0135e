"""What the journey benchmarks share: customers driven through the local runtime (`LocalEngine`, on
moto, on the virtual clock), and what they spend measured as it happens — every AWS request the
functions make (by service and operation, with the units AWS bills it in), every function invocation
with its handler's duration, and every Step Functions state entered (from the executions' histories).

Nothing here is an estimate: counts come from hooks on botocore and on the engine's handlers, and
the benchmarks' own inspection requests (histories, idleness checks) are not counted."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

WRITE_KEY = "bench-write-key"
DAY = 86400
# Where the virtual clock starts: a fixed instant, so that what falls in quiet hours (policy.yaml:
# 21:00–08:00 in the recipient's zone) and on which calendar day (the daily caps) is the same
# whenever the benchmark runs. A Tuesday, 09:00 UTC (10:00 in Paris, the scenarios' zone).
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
KB = 1024
# A ReceiveMessage made by the local SQS event source (the engine's poller threads): in AWS, Lambda's
# event source mapping makes it and the SQS request is billed.
_POLLER_THREAD = "continuum-sqs-"


def call(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    """A Segment call (`identify`, `track`) with a fresh messageId."""
    return kind, {"messageId": uuid.uuid4().hex, **fields}


# ---------------------------------------------------------------- metering


@dataclass
class Usage:
    """Everything counted while a `Meter` is installed."""

    # (service, operation) → requests, and → billed units (DynamoDB RRU/WRU, EventBridge events,
    # SQS 64 KB chunks, SES recipients, SNS mobile deliveries).
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    units: dict[tuple[str, str, str], float] = field(default_factory=lambda: defaultdict(float))
    # function → handler durations in seconds: wall time, and the CPU time of the handler's thread
    # (wall time in-process includes waiting for other invocations: the GIL, moto's request lock).
    durations: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    cpu: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    http_requests: int = 0  # calls made through the HTTP API (API Gateway in the cloud)


_scope = threading.local()


class Meter:
    """Hooks that count what the engine's functions spend. Install after `engine.start()`:
    - every handler is wrapped (`engine._handlers`): its duration is recorded and, while it runs,
      its AWS requests are counted (handlers create clients anywhere, e.g. `shared.store.aws.client`,
      so the hook is botocore's one request path, `BaseClient._make_api_call`, filtered by thread);
    - the SQS event source's requests (receives that returned messages, deletes, visibility changes)
      are counted too, as AWS bills them; requests made by Step Functions itself (Lambda invokes, which
      are counted as invocations), by the engine's idleness checks and by the benchmark are not."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.usage = Usage()
        self._lock = threading.Lock()
        self._restore: list[Callable[[], None]] = []

    def install(self) -> Meter:
        from botocore.client import BaseClient

        meter = self
        original_call = BaseClient._make_api_call

        def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            service = client.meta.service_model.service_name
            in_handler = getattr(_scope, "function", None) is not None
            in_event_source = getattr(_scope, "event_source", False)
            poller = threading.current_thread().name.startswith(_POLLER_THREAD)
            counted = in_handler or in_event_source or (poller and operation == "ReceiveMessage")
            # A Lambda invoke is counted as the invocation it causes (see `_timed`), not as a request.
            counted = counted and (service, operation) != ("lambda", "Invoke")
            if not counted:
                return original_call(client, operation, params)
            before = meter._before(service, operation, params)
            response = original_call(client, operation, params)
            if poller and not in_handler and not response.get("Messages"):
                return response  # an empty receive: locally short polling, in AWS long polling
            meter._record(service, operation, params, response, before)
            return response

        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        self._restore.append(lambda: setattr(BaseClient, "_make_api_call", original_call))

        handlers = self.engine._handlers
        for name, handler in list(handlers.items()):
            handlers[name] = self._timed(name, handler)
        original_batch = self.engine._handle_batch

        def handle_batch(*args: Any, **kwargs: Any) -> Any:
            _scope.event_source = True
            try:
                return original_batch(*args, **kwargs)
            finally:
                _scope.event_source = False

        self.engine._handle_batch = handle_batch
        return self

    def uninstall(self) -> None:
        for restore in reversed(self._restore):
            restore()

    def _timed(self, name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        def timed(event: Any, context: Any) -> Any:
            outer = getattr(_scope, "function", None)
            _scope.function = name
            started, started_cpu = time.perf_counter(), time.thread_time()
            try:
                return handler(event, context)
            finally:
                elapsed, cpu = time.perf_counter() - started, time.thread_time() - started_cpu
                _scope.function = outer
                with self._lock:
                    self.usage.durations[name].append(elapsed)
                    self.usage.cpu[name].append(cpu)
                    if name == "ingest":
                        self.usage.http_requests += 1

        return timed

    # -- billed units of one request (DynamoDB capacity needs the items as stored before the write)

    def _before(self, service: str, operation: str, params: dict[str, Any]) -> list[int]:
        if service != "dynamodb":
            return []
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            return [_stored_size(params["TableName"], params.get("Key") or params.get("Item") or {})]
        if operation == "TransactWriteItems":
            sizes = []
            for action in params["TransactItems"]:
                request = next(iter(action.values()))
                sizes.append(
                    _stored_size(request["TableName"], request.get("Key") or request.get("Item") or {})
                )
            return sizes
        return []

    def _record(
        self, service: str, operation: str, params: dict[str, Any], response: Any, before: list[int]
    ) -> None:
        units = _billed_units(service, operation, params, response, before)
        with self._lock:
            self.usage.requests[(service, operation)] += 1
            for unit, amount in units.items():
                self.usage.units[(service, operation, unit)] += amount


def _dynamodb_backend() -> Any:
    from moto.dynamodb.models import dynamodb_backends

    from infra.local.engine import ACCOUNT, REGION

    return dynamodb_backends[ACCOUNT][REGION]


def _item_size(attributes: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it (names + values), computed by moto's own implementation."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    return sum(len(name.encode()) + DynamoType(value).size() for name, value in attributes.items())


def _stored_size(table: str, item_or_key: dict[str, Any]) -> int:
    """The size of the item stored under this key now (0 if none). Read from moto's backend directly,
    which is no AWS request; outside moto's request lock, so a concurrent write may race it: at worst
    one capacity unit of rounding."""
    try:
        backend = _dynamodb_backend()
        stored = backend.get_table(table)
        key = {
            a: item_or_key[a] for a in (stored.hash_key_attr, stored.range_key_attr) if a and a in item_or_key
        }
        item = backend.get_item(table, key)
    except Exception:  # no such table or key: the request itself reports it
        return 0
    return int(item.size()) if item is not None else 0


def _index_copies(table: str, items: list[dict[str, Any]]) -> int:
    """Global secondary indexes an item written to `table` lands in (each costs its own write)."""
    try:
        indexes = _dynamodb_backend().get_table(table).global_indexes
    except Exception:
        return 0
    count = 0
    for index in indexes:
        key = next(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH")
        if any(key in item for item in items):
            count += 1
    return count


def _units_of(size: int, per: int) -> int:
    return max(1, math.ceil(size / per))


def _billed_units(
    service: str, operation: str, params: dict[str, Any], response: Any, before: list[int]
) -> dict[str, float]:
    """The units AWS bills one request in (see benchmarks/prices.py for each price and its source)."""
    if service == "dynamodb":
        return _dynamodb_units(operation, params, response, before)
    if service == "events" and operation == "PutEvents":
        # EventBridge bills each event in 64 KB chunks.
        return {"events": sum(_units_of(len(json.dumps(e).encode()), 64 * KB) for e in params["Entries"])}
    if service == "sqs":
        # SQS bills each request in 64 KB chunks of payload.
        if operation == "SendMessageBatch":
            body = sum(len(e["MessageBody"].encode()) for e in params["Entries"])
        else:
            body = len(params.get("MessageBody", "").encode())
        return {"requests": _units_of(body, 64 * KB)}
    if service == "sesv2" and operation == "SendEmail":
        destination = params.get("Destination", {})
        recipients = sum(len(destination.get(k, [])) for k in ("ToAddresses", "CcAddresses", "BccAddresses"))
        return {"emails": recipients}
    if service == "sns":
        units: dict[str, float] = {"requests": 1}
        if operation == "Publish" and params.get("TargetArn"):
            units["mobile push deliveries"] = 1
        return units
    return {"requests": 1}


def _dynamodb_units(
    operation: str, params: dict[str, Any], response: dict[str, Any], before: list[int]
) -> dict[str, float]:
    read_factor = 1.0 if params.get("ConsistentRead") else 0.5
    if operation == "GetItem":
        return {"RRU": read_factor * _units_of(_item_size(response.get("Item", {})), 4 * KB)}
    if operation in ("Query", "Scan"):
        # Billed on the items read, summed then rounded (a filter would read more than it returns).
        read = sum(_item_size(item) for item in response.get("Items", []))
        return {"RRU": read_factor * _units_of(read, 4 * KB)}
    if operation == "BatchGetItem":
        total = 0.0
        for table, items in response.get("Responses", {}).items():
            factor = 1.0 if params["RequestItems"][table].get("ConsistentRead") else 0.5
            total += sum(factor * _units_of(_item_size(i), 4 * KB) for i in items)
        return {"RRU": total}
    if operation == "TransactGetItems":
        items = [r.get("Item", {}) for r in response.get("Responses", [])]
        return {"RRU": sum(2 * _units_of(_item_size(i), 4 * KB) for i in items)}
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        table = params["TableName"]
        after = _stored_size(table, params.get("Key") or params.get("Item") or {})
        size = max(before[0] if before else 0, after)
        copies = 1 + _index_copies(table, [params.get("Item") or {}, _stored_attrs(table, params)])
        return {"WRU": copies * _units_of(size, KB)}
    if operation == "BatchWriteItem":
        total = 0
        for requests in params["RequestItems"].values():
            for request in requests:
                item = request.get("PutRequest", {}).get("Item", {})
                total += _units_of(_item_size(item), KB)
        return {"WRU": total}
    if operation == "TransactWriteItems":
        total = 0
        for i, action in enumerate(params["TransactItems"]):
            request = next(iter(action.values()))
            after = _stored_size(request["TableName"], request.get("Key") or request.get("Item") or {})
            total += 2 * _units_of(max(before[i] if i < len(before) else 0, after), KB)
        return {"WRU": total}
    return {"requests": 1}


def _stored_attrs(table: str, params: dict[str, Any]) -> dict[str, Any]:
    """The attribute names of the item now stored under the request's key (for its index copies)."""
    try:
        backend = _dynamodb_backend()
        stored = backend.get_table(table)
        source = params.get("Key") or params.get("Item") or {}
        key = {a: source[a] for a in (stored.hash_key_attr, stored.range_key_attr) if a and a in source}
        item = backend.get_item(table, key)
    except Exception:
        return {}
    return dict(item.attrs) if item is not None else {}


# ---------------------------------------------------------------- driving the engine


class Driver:
    """Customers' Segment calls into a started `LocalEngine`, as `make local`'s HTTP adapter sends
    them (the ingest function with an API Gateway event), and virtual time moved on."""

    def __init__(self, engine: Any, clients: int = 8, idle_limit: float | None = None):
        self.engine = engine
        self.clients = clients
        self._headers = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
        # How long each settling took (wall seconds): the engine's `advance` waits for idleness after
        # every due wait, and gives up when nothing has progressed for its idle limit
        # (IDLE_TIMEOUT_SECONDS). `idle_limit` overrides that limit (BENCH_IDLE_SECONDS); say so.
        self.settles: list[float] = []
        original = engine.wait_idle

        def wait_idle(timeout: float | None = None) -> None:
            started = time.perf_counter()
            try:
                limit = idle_limit if idle_limit is not None else timeout
                original(**({"timeout": limit} if limit is not None else {}))
            finally:
                self.settles.append(time.perf_counter() - started)

        engine.wait_idle = wait_idle

    def send(self, calls: list[tuple[str, dict[str, Any]]]) -> None:
        """Send the calls concurrently (each customer's calls in order), then wait until idle."""
        from infra.local.http import api_gateway_event

        def one(item: tuple[str, dict[str, Any]]) -> int:
            kind, payload = item
            event = api_gateway_event("POST", f"/v1/{kind}", self._headers, json.dumps(payload).encode())
            event["routeKey"] = "POST /v1/{proxy+}"
            return int(self.engine.invoke("ingest", event)["statusCode"])

        by_customer: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for item in calls:
            payload = item[1]
            by_customer[str(payload.get("userId") or payload.get("anonymousId"))].append(item)

        def customer(items: list[tuple[str, dict[str, Any]]]) -> list[int]:
            return [one(item) for item in items]

        with ThreadPoolExecutor(self.clients) as pool:
            statuses = [s for batch in pool.map(customer, by_customer.values()) for s in batch]
        refused = [s for s in statuses if s != 200]
        if refused:
            raise RuntimeError(f"{len(refused)} of {len(statuses)} calls were refused: {Counter(refused)}")
        self.engine.wait_idle()

    def advance(self, seconds: float) -> None:
        self.engine.advance(seconds)

    def advance_until_settled(self, journeys: set[str], step: float = DAY, limit: float = 60 * DAY) -> float:
        """Advance a day at a time until no execution of these journeys is still running; the
        simulated seconds it took."""
        moved = 0.0
        while any(e["status"] == "RUNNING" and e["journey"] in journeys for e in self.engine.executions()):
            if moved >= limit:
                raise RuntimeError(f"journeys {sorted(journeys)} still running after {limit / DAY:.0f} days")
            self.advance(step)
            moved += step
        return moved


@contextlib.contextmanager
def running_engine(**options: Any) -> Iterator[Any]:
    from infra.local.engine import LocalEngine

    # moto logs every failed state with its whole parsed program; the benchmarks report executions
    # by status instead.
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
    engine = LocalEngine(write_key=WRITE_KEY, **{"start": START, **options}).start()
    try:
        yield engine
    finally:
        engine.stop()


# ---------------------------------------------------------------- Step Functions histories


def history(execution_arn: str) -> list[dict[str, Any]]:
    """An execution's whole history (the benchmark's own requests: not metered)."""
    from shared.store import aws

    sfn = aws.client("stepfunctions")
    events: list[dict[str, Any]] = []
    request: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**request)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        request["nextToken"] = page["nextToken"]


def states_entered(events: list[dict[str, Any]]) -> list[str]:
    """The names of the states entered, in order: each StateEntered event is one billed transition."""
    return [
        e["stateEnteredEventDetails"]["name"]
        for e in events
        if e["type"].endswith("StateEntered") and "stateEnteredEventDetails" in e
    ]


_SCHEDULED = ("TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled")


def retries(events: list[dict[str, Any]]) -> int:
    """Task attempts after the first: AWS bills each retry as one more state transition, and a
    retry enters no state again (its history shows another TaskScheduled, not another TaskStateEntered)."""
    scheduled = sum(1 for e in events if e["type"] in _SCHEDULED)
    entered = sum(1 for e in events if e["type"] == "TaskStateEntered")
    return max(0, scheduled - entered)


def step_of(state: str, step_ids: set[str]) -> str | None:
    """The step a state belongs to: state names are step ids, helper states add a suffix
    (`<id>.at`, `<id>.choice`); derived ids may themselves contain dots, so the longest known
    prefix wins. None for a state that is no step's (e.g. a shared end state)."""
    name = state
    while True:
        if name in step_ids:
            return name
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]


# The state a deferred send waits on (shared/journeys/compiler.py, `emit_send`: `<step id>.defer`).
DEFER_SUFFIX = ".defer"


def deferral_transitions(entered: list[str]) -> int:
    """The transitions of one execution spent on deferred sends: every entry of a send's deferral
    Wait, and every state entered again (a journey's steps form a tree: the one way back is a
    deferred send running its gate again)."""
    return sum(1 for name in entered if name.endswith(DEFER_SUFFIX)) + len(entered) - len(set(entered))


@dataclass
class Transitions:
    executions: int = 0
    transitions: int = 0  # states entered + retries: what AWS bills
    retries: int = 0
    steps: int = 0  # distinct steps entered, summed over executions
    deferral: int = 0  # of the transitions, those of deferred sends (`deferral_transitions`)
    by_state: Counter[str] = field(default_factory=Counter)

    @property
    def per_step(self) -> float:
        return self.transitions / self.steps if self.steps else float("nan")

    @property
    def per_step_undeferred(self) -> float:
        """Transitions per step had no send been deferred."""
        return (self.transitions - self.deferral) / self.steps if self.steps else float("nan")


def count_transitions(executions: list[dict[str, Any]], step_ids: set[str]) -> Transitions:
    counted = Transitions()
    for execution in executions:
        events = history(execution["executionArn"])
        entered = states_entered(events)
        retried = retries(events)
        counted.executions += 1
        counted.transitions += len(entered) + retried
        counted.retries += retried
        counted.deferral += deferral_transitions(entered)
        counted.steps += len({s for s in (step_of(name, step_ids) for name in entered) if s is not None})
        counted.by_state.update(entered)
    return counted


def journey_counters(engine: Any, journey_id: str) -> dict[str, float]:
    """A journey's counters (shared/store/journey_stats.py: entered, heldOut, step#…), as the
    harness reads them (the benchmark's own request: not metered)."""
    from infra.topology import JOURNEY_STATS, table_env
    from shared.store.journey_stats import JourneyStats

    return JourneyStats(engine._env[table_env(JOURNEY_STATS)]).get(journey_id)


def send_outcomes(engine: Any, journey_id: str) -> Counter[str]:
    """What the send gate decided for a journey's sends, from the journey's counters: `sent`
    (queued), `dropped <reason>`, and `deferred <reason>` (a message's first deferral; its final
    outcome, sent or dropped, is counted as well)."""
    outcomes: Counter[str] = Counter()
    for name, value in journey_counters(engine, journey_id).items():
        parts = name.split("#")
        if parts[0] != "step":
            continue
        if parts[-1] == "sent":
            outcomes["sent"] += int(value)
        elif len(parts) >= 4 and parts[-2] in ("dropped", "deferred"):
            outcomes[f"{parts[-2]} {parts[-1]}"] += int(value)
    return outcomes


def deferred(outcomes: Counter[str]) -> int:
    return sum(n for outcome, n in outcomes.items() if outcome.startswith("deferred"))


def journey_step_ids() -> dict[str, set[str]]:
    """Each shipped journey's step ids: from the model's `walk()` (every step of the tree, with its
    stable id); for a model without it, the compiled state names (one state per step)."""
    from infra.topology import TOPOLOGY
    from shared.journeys.compiler import compile_journey
    from shared.journeys.loader import load_journeys

    ids = {}
    for journey in load_journeys(TOPOLOGY.journeys_dir):
        definition = journey.definition
        if hasattr(definition, "walk"):
            ids[definition.id] = {step.id for step in definition.walk()}
        else:
            ids[definition.id] = set(compile_journey(journey)["States"])
    return ids


def trigger_event(definition: Any) -> str:
    """The name of the event that starts a journey (`trigger: {event: ...}` or `trigger: Name`)."""
    trigger = definition.trigger
    return str(getattr(trigger, "event", trigger))
