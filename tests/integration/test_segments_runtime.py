"""The segments function on the local runtime: real ingest → identity → segments, on moto and the
virtual clock, with the real domain (shared/segments/engine.py).

The audiences function is replaced by a recorder here: what it receives is what the segments function
(and the Profile API's erasure) sent to the FIFO audiences queue. DynamoDB requests are counted with a
botocore hook on the shared client, attributed to the segments function by the thread it runs on (the
engine runs each function on its own pool of threads, `continuum-<function>_<n>`)."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.local.engine import LocalEngine
from infra.local.http import api_gateway_event
from infra.topology import PROFILES, SEGMENTS_DIR, table_env
from shared import clock
from shared.identity.resolver import ConcurrentChangeError
from shared.models.events import DETAIL_RESOLVED, SOURCE_IDENTITY
from shared.models.segments import AudienceMessage, SegmentState
from shared.store import aws
from shared.store.segments import AudienceQueue, SegmentStore
from tests.integration.conftest import WRITE_KEY, eventbridge_event, http_event

START = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
ADMIN = {"Authorization": "Bearer dev-admin-token"}
SEGMENTS_THREAD = "continuum-segments_"  # not continuum-segments-api_


# A lost race on the state: a later version's Put, or a first state's transaction.
LOST_RACE = ("ConditionalCheckFailedException", "TransactionCanceledException")


class DynamoRequests:
    """Every DynamoDB request made on the segments function's threads, by operation, and how each ended."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failed: list[str] = []
        self._lock = threading.Lock()

    def before(self, model: Any, **_: Any) -> None:
        if threading.current_thread().name.startswith(SEGMENTS_THREAD):
            with self._lock:
                self.calls.append(model.name)

    def after(self, model: Any, parsed: Any, **_: Any) -> None:
        code = (parsed or {}).get("Error", {}).get("Code")
        if code and threading.current_thread().name.startswith(SEGMENTS_THREAD):
            with self._lock:
                self.failed.append(code)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self.failed.clear()

    @property
    def reads(self) -> int:
        return sum(1 for c in self.calls if c in ("BatchGetItem", "GetItem", "Query", "Scan"))

    @property
    def writes(self) -> int:
        return sum(
            1 for c in self.calls if c in ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")
        )


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("segments")
    shipped = root / "shipped"
    shutil.copytree(SEGMENTS_DIR, shipped)
    empty = root / "empty"
    empty.mkdir()
    journeys = root / "journeys"  # no journeys: only segments react here
    journeys.mkdir()
    return {"shipped": shipped, "empty": empty, "journeys": journeys, "root": root}


@pytest.fixture(scope="module")
def started(folders: dict[str, Path]) -> Iterator[tuple[LocalEngine, list[AudienceMessage], DynamoRequests]]:
    engine = LocalEngine(
        write_key=WRITE_KEY, start=START, journeys_dir=folders["journeys"], segments_dir=folders["shipped"]
    ).start()
    received: list[AudienceMessage] = []
    lock = threading.Lock()

    def audiences(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            received.extend(AudienceMessage.model_validate_json(r["body"]) for r in event["Records"])
        return {"batchItemFailures": []}

    engine._handlers["audiences"] = audiences
    requests = DynamoRequests()
    dynamodb = aws.client("dynamodb")
    dynamodb.meta.events.register("before-call.dynamodb", requests.before)
    dynamodb.meta.events.register("after-call.dynamodb", requests.after)
    yield engine, received, requests
    engine.stop()


@pytest.fixture
def runtime(
    started: tuple[LocalEngine, list[AudienceMessage], DynamoRequests], folders: dict[str, Path]
) -> tuple[LocalEngine, list[AudienceMessage], DynamoRequests]:
    engine, received, requests = started
    engine.reset()
    engine.reload_segments(folders["shipped"])
    received.clear()
    requests.clear()
    return started


def _send(engine: LocalEngine, call: str, body: dict[str, Any]) -> str:
    body = {"messageId": f"m-{uuid.uuid4().hex}", "timestamp": clock.iso(engine.clock.now()), **body}
    assert engine.invoke("ingest", http_event(f"/v1/{call}", body))["statusCode"] == 200
    engine.wait_idle()
    return str(body["messageId"])


def _profile_id(engine: LocalEngine, **identifier: str) -> str:
    ((kind, value),) = identifier.items()
    event = api_gateway_event("GET", f"/v1/profiles?{kind}={value}", ADMIN, b"")
    response = engine.invoke("profiles", event)
    assert response["statusCode"] == 200, response
    return str(json.loads(response["body"])["profileId"])


def _profile_view(engine: LocalEngine, profile_id: str) -> dict[str, Any]:
    response = engine.invoke("profiles", api_gateway_event("GET", f"/v1/profiles/{profile_id}", ADMIN, b""))
    assert response["statusCode"] == 200
    body: dict[str, Any] = json.loads(response["body"])
    return body


def _state(engine: LocalEngine, profile_id: str) -> SegmentState | None:
    states = SegmentStore(engine._env[table_env(PROFILES)]).states([profile_id])
    return states[0] if states else None


def _segment_events(engine: LocalEngine) -> list[dict[str, Any]]:
    return [e for e in engine.bus_events if e["source"] == "continuum.segments"]


def _resolved(profile_id: str, call: dict[str, Any]) -> dict[str, Any]:
    """The `event.resolved` identity would put on the bus for `call`."""
    detail = {
        "name": DETAIL_RESOLVED,
        "version": 1,
        "correlationId": call["messageId"],
        "time": call["timestamp"],
        "data": {"profileId": profile_id, "userId": call.get("userId"), "event": call},
    }
    return eventbridge_event(DETAIL_RESOLVED, SOURCE_IDENTITY, detail)


def _order(engine: LocalEngine, user: str, revenue: float, message_id: str | None = None) -> dict[str, Any]:
    now = clock.iso(engine.clock.now())
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "properties": {"revenue": revenue},
        "messageId": message_id or f"m-{uuid.uuid4().hex}",
        "timestamp": now,
        "receivedAt": now,
    }


def _write_segments(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.yaml"):
        path.unlink()
    for n in range(count):
        (folder / f"s{n}.yaml").write_text(
            f"id: s{n}\nname: Segment {n}\nwhen:\n  event: Product Added\n  within: {n + 1}d\n"
            f"  at_least: {n % 3 + 1}\n"
        )
    return folder


class _Together:
    """Makes the first `parties` reads of segment state wait for each other: every racer reads the
    same version before any of them writes (a race that would otherwise depend on timing)."""

    def __init__(self, parties: int):
        self._barrier = threading.Barrier(parties, timeout=10)
        self._left = parties
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self._left == 0:
                return
            self._left -= 1
        self._barrier.wait()


@pytest.fixture
def racing(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(parties: int) -> None:
        together = _Together(parties)
        read = SegmentStore.read

        def read_together(store: SegmentStore, profile_id: str) -> Any:
            found = read(store, profile_id)
            together()
            return found

        monkeypatch.setattr(SegmentStore, "read", read_together)

    return install


# --- membership and its events --------------------------------------------------------------------------


def test_an_event_that_changes_membership_publishes_segment_entered_with_its_message_id(runtime: Any) -> None:
    engine, received, _ = runtime
    tag = uuid.uuid4().hex[:8]
    _send(engine, "identify", {"userId": f"u-{tag}", "traits": {"email": f" Ada-{tag}@Example.com "}})
    added = _send(engine, "track", {"userId": f"u-{tag}", "event": "Product Added"})
    profile_id = _profile_id(engine, userId=f"u-{tag}")

    [entered] = _segment_events(engine)
    assert entered["detail-type"] == "segment.entered"
    assert entered["detail"]["correlationId"] == added
    assert entered["detail"]["data"] == {
        "profileId": profile_id,
        "segment": "cart_abandoners",
        "entered": True,
        "at": clock.iso(START),
        "reason": "event",
        "merged": [],
    }
    [message] = received
    assert (message.profileId, message.segment, message.entered) == (profile_id, "cart_abandoners", True)
    assert sorted((i.platform, i.audience, i.action) for i in message.intents) == [
        ("google", "cart-abandoners", "add"),
        ("meta", "cart-abandoners", "add"),
    ]
    assert engine.failures == []


def test_the_profile_api_shows_segments_and_computed_traits(runtime: Any) -> None:
    engine, _, _ = runtime
    tag = uuid.uuid4().hex[:8]
    _send(engine, "track", {"userId": f"u-{tag}", "event": "Order Completed", "properties": {"revenue": 600}})
    shown = _profile_view(engine, _profile_id(engine, userId=f"u-{tag}"))
    assert shown["segments"] == ["vip"]
    assert shown["computed"] == {"orders_count": 1, "lifetime_revenue": 600}


def test_a_profile_with_no_segment_state_shows_none(runtime: Any, folders: dict[str, Path]) -> None:
    engine, _, _ = runtime
    engine.reload_segments(folders["empty"])
    _send(engine, "identify", {"userId": "nobody", "traits": {"plan": "free"}})
    shown = _profile_view(engine, _profile_id(engine, userId="nobody"))
    assert (shown["segments"], shown["computed"]) == ([], {})


# --- cost: one read, at most one write, whatever the number of segments --------------------------------


@pytest.mark.parametrize("count", [1, 50])
def test_each_resolved_event_costs_one_read_and_at_most_one_write(
    runtime: Any, folders: dict[str, Path], count: int
) -> None:
    engine, _, requests = runtime
    engine.reload_segments(_write_segments(folders["root"] / f"n{count}", count))
    tag = uuid.uuid4().hex[:8]
    calls = [
        ("identify", {"userId": f"u-{tag}", "traits": {"email": f"c-{tag}@example.com"}}),
        ("track", {"userId": f"u-{tag}", "event": "Product Added"}),
        ("track", {"userId": f"u-{tag}", "event": "Product Added"}),
        ("track", {"userId": f"u-{tag}", "event": "Page Viewed"}),
        ("page", {"userId": f"u-{tag}", "name": "Home"}),
    ]
    for call, body in calls:
        requests.clear()
        _send(engine, call, body)
        assert requests.reads == 1, (call, requests.calls)
        assert requests.writes <= 1, (call, requests.calls)
        # The write: a conditional Put, or for a profile's first state a transaction that also checks
        # the profile is still there (one request either way).
        assert set(requests.calls) <= {"BatchGetItem", "PutItem", "TransactWriteItems"}, requests.calls
    assert engine.failures == []


def test_with_an_empty_catalogue_the_segments_function_makes_no_request(
    runtime: Any, folders: dict[str, Path]
) -> None:
    engine, received, requests = runtime
    engine.reload_segments(folders["empty"])
    _send(engine, "track", {"userId": "u-empty", "event": "Product Added"})
    assert requests.calls == []
    assert _segment_events(engine) == [] and received == []
    assert engine.failures == []


# --- concurrency ------------------------------------------------------------------------------------------


def test_two_copies_of_the_same_event_at_once_count_once(runtime: Any, racing: Any) -> None:
    engine, _, requests = runtime
    _send(engine, "identify", {"userId": "twice", "traits": {"plan": "pro"}})
    profile_id = _profile_id(engine, userId="twice")
    racing(2)
    requests.clear()
    order = _resolved(profile_id, _order(engine, "twice", 300))
    engine.enqueue("segments", order)
    engine.enqueue("segments", order)
    engine.wait_idle()

    state = _state(engine, profile_id)
    assert state is not None and state.computed == {"orders_count": 1, "lifetime_revenue": 300}
    # Both read the same version; one wrote, the other lost the race, read again and found it counted.
    assert len(requests.failed) == 1 and requests.failed[0] in LOST_RACE
    assert engine.failures == []


def test_two_different_events_for_one_profile_at_once_are_both_counted(runtime: Any, racing: Any) -> None:
    engine, _, requests = runtime
    _send(engine, "identify", {"userId": "both", "traits": {"plan": "pro"}})
    profile_id = _profile_id(engine, userId="both")
    racing(2)
    requests.clear()
    engine.enqueue("segments", _resolved(profile_id, _order(engine, "both", 300)))
    engine.enqueue("segments", _resolved(profile_id, _order(engine, "both", 250)))
    engine.wait_idle()

    state = _state(engine, profile_id)
    assert state is not None and state.computed == {"orders_count": 2, "lifetime_revenue": 550}
    assert state.segments == ["vip"]
    assert len(requests.failed) == 1 and requests.failed[0] in LOST_RACE  # the loser retried
    assert [e["detail"]["data"]["segment"] for e in _segment_events(engine)] == ["vip"]
    assert engine.failures == []


# --- time ---------------------------------------------------------------------------------------------------


def test_a_window_expiry_fires_its_schedule_at_the_due_instant_and_publishes_segment_exited(
    runtime: Any,
) -> None:
    engine, received, _ = runtime
    _send(engine, "identify", {"userId": "browser", "traits": {"email": "browser@example.com"}})
    _send(engine, "track", {"userId": "browser", "event": "Product Added"})
    profile_id = _profile_id(engine, userId="browser")
    due = START + timedelta(days=7)

    engine.advance((due - engine.clock.now()).total_seconds() - 1)
    assert [e["detail-type"] for e in _segment_events(engine)] == ["segment.entered"]
    assert engine.schedules_fired == []

    engine.advance(1)
    [fired] = engine.schedules_fired
    assert fired["due"] == due
    assert fired["input"] == {"recheck": profile_id, "due": clock.iso(due)}
    exited = _segment_events(engine)[-1]
    assert exited["detail-type"] == "segment.exited"
    assert exited["detail"]["data"] == {
        "profileId": profile_id,
        "segment": "cart_abandoners",
        "entered": False,
        "at": clock.iso(due),
        "reason": "time",
        "merged": [],
    }
    removal = received[-1]
    assert (removal.segment, removal.entered, removal.at) == ("cart_abandoners", False, clock.iso(due))
    assert {i.action for i in removal.intents} == {"remove"}
    assert engine.failures == []


# --- merges, erasure ------------------------------------------------------------------------------------


def test_a_merge_folds_the_losers_aggregates_into_the_survivor(runtime: Any) -> None:
    engine, _, _ = runtime
    _send(
        engine,
        "track",
        {"anonymousId": "phone-1", "event": "Order Completed", "properties": {"revenue": 300}},
    )
    _send(engine, "track", {"userId": "laptop-1", "event": "Order Completed", "properties": {"total": 250}})
    phone, laptop = _profile_id(engine, anonymousId="phone-1"), _profile_id(engine, userId="laptop-1")
    assert phone != laptop and _state(engine, phone) is not None

    _send(engine, "identify", {"userId": "laptop-1", "anonymousId": "phone-1"})  # the same person
    survivor = _profile_id(engine, userId="laptop-1")
    loser = phone if survivor == laptop else laptop
    state = _state(engine, survivor)
    assert state is not None and state.computed == {"orders_count": 2, "lifetime_revenue": 550}
    assert state.segments == ["vip"]
    assert _state(engine, loser) is None
    assert engine.failures == []


def test_erasure_sends_the_audience_removals_before_erasing(runtime: Any) -> None:
    engine, received, _ = runtime
    _send(engine, "identify", {"userId": "leaver", "traits": {"email": "leaver@example.com"}})
    _send(engine, "track", {"userId": "leaver", "event": "Product Added"})
    profile_id = _profile_id(engine, userId="leaver")
    [added] = received
    added_hashes = {(i.platform, h.sha256) for i in added.intents for h in i.identifiers}

    response = engine.invoke(
        "profiles", api_gateway_event("DELETE", f"/v1/profiles/{profile_id}", ADMIN, b"")
    )
    assert response["statusCode"] == 200
    engine.wait_idle()

    removal = received[-1]
    assert (removal.profileId, removal.segment, removal.entered) == (profile_id, "cart_abandoners", False)
    assert {i.action for i in removal.intents} == {"remove"}
    assert {(i.platform, h.sha256) for i in removal.intents for h in i.identifiers} == added_hashes
    assert _state(engine, profile_id) is None  # erased with the rest of the profile
    assert engine.failures == []


def test_an_erasure_whose_removals_failed_to_queue_sends_them_when_retried(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, received, _ = runtime
    _send(engine, "identify", {"userId": "retry", "traits": {"email": "retry@example.com"}})
    _send(engine, "track", {"userId": "retry", "event": "Product Added"})
    profile_id = _profile_id(engine, userId="retry")
    [added] = received
    added_hashes = {(i.platform, h.sha256) for i in added.intents for h in i.identifiers}
    send = AudienceQueue.send
    failures = [RuntimeError("SQS unavailable")]

    def failing_once(queue: AudienceQueue, messages: Any) -> None:
        if failures:
            raise failures.pop()
        send(queue, messages)

    monkeypatch.setattr(AudienceQueue, "send", failing_once)
    delete = api_gateway_event("DELETE", f"/v1/profiles/{profile_id}", ADMIN, b"")
    with pytest.raises(RuntimeError):
        engine.invoke("profiles", delete)
    # Before the retry the state says "nothing synced": a message reconciled with it now keeps every
    # removal (and drops any add), whatever order the queue delivers them in.
    state = _state(engine, profile_id)
    assert state is not None and state.synced == {} and state.segments == []

    assert engine.invoke("profiles", delete)["statusCode"] == 200
    engine.wait_idle()

    removal = received[-1]
    assert (removal.profileId, removal.entered) == (profile_id, False)
    assert {(i.platform, h.sha256) for i in removal.intents for h in i.identifiers} == added_hashes
    assert {i.action for i in removal.intents} == {"remove"}
    assert _state(engine, profile_id) is None


def test_a_first_state_written_after_the_profile_was_erased_is_refused(runtime: Any) -> None:
    # The segments function read "no state" for a live profile; an erasure then deleted everything;
    # its write must not re-create a state (and audience hashes) for a person who is gone.
    engine, _, _ = runtime
    _send(engine, "identify", {"userId": "gone", "traits": {"email": "gone@example.com"}})
    profile_id = _profile_id(engine, userId="gone")
    store = SegmentStore(engine._env[table_env(PROFILES)])
    response = engine.invoke(
        "profiles", api_gateway_event("DELETE", f"/v1/profiles/{profile_id}", ADMIN, b"")
    )
    assert response["statusCode"] == 200
    engine.wait_idle()

    with pytest.raises(ConcurrentChangeError):
        store.put(SegmentState(profileId=profile_id, segments=["cart_abandoners"]), 0)
    assert _state(engine, profile_id) is None
    # A live profile's first state is written as before.
    _send(engine, "identify", {"userId": "here", "traits": {"email": "here@example.com"}})
    here = _profile_id(engine, userId="here")
    store.delete([here])
    assert store.put(SegmentState(profileId=here), 0) == 1


def test_a_profiles_recheck_is_one_schedule_moved_to_the_latest_time(runtime: Any) -> None:
    import boto3

    from shared.store.schedules import Rechecks, schedule_name

    engine, _, _ = runtime
    group, role = engine._env["RECHECK_SCHEDULE_GROUP"], engine._env["RECHECK_ROLE_ARN"]
    target = "arn:aws:lambda:us-east-1:123456789012:function:continuum-segments"
    rechecks = Rechecks(group, role, target)
    rechecks.schedule("p-1", START + timedelta(days=7))
    rechecks.schedule("p-1", START + timedelta(days=8, milliseconds=5))

    scheduler = boto3.client("scheduler", region_name="us-east-1")
    [listed] = scheduler.list_schedules(GroupName=group)["Schedules"]
    schedule = scheduler.get_schedule(GroupName=group, Name=listed["Name"])
    assert schedule["Name"] == schedule_name("p-1")
    assert schedule["ScheduleExpression"] == "at(2030-03-12T09:00:01)"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["Target"]["Arn"] == target and schedule["Target"]["RoleArn"] == role
    assert json.loads(schedule["Target"]["Input"]) == {
        "recheck": "p-1",
        "due": clock.iso(START + timedelta(days=8, milliseconds=5)),
    }


def _admin(engine: LocalEngine, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    response = engine.invoke("profiles", api_gateway_event(method, path, ADMIN, payload))
    assert response["statusCode"] == 200, response
    engine.wait_idle()
    result: dict[str, Any] = json.loads(response["body"])
    return result


def test_an_unmerge_rebuilds_both_profiles_from_their_timelines(runtime: Any) -> None:
    engine, _, _ = runtime
    _send(
        engine,
        "track",
        {"anonymousId": "phone-2", "event": "Order Completed", "properties": {"revenue": 300}},
    )
    _send(engine, "track", {"userId": "laptop-2", "event": "Order Completed", "properties": {"revenue": 250}})
    _send(engine, "identify", {"userId": "laptop-2", "anonymousId": "phone-2"})
    survivor = _profile_id(engine, userId="laptop-2")
    merged = _admin(engine, "GET", f"/v1/profiles/{survivor}")["mergedFrom"]
    assert len(merged) == 1

    _admin(engine, "POST", f"/v1/profiles/{survivor}/unmerge", {"mergedProfileId": merged[0]})

    kept, restored = _state(engine, survivor), _state(engine, merged[0])
    assert kept is not None and restored is not None
    revenues = sorted([kept.computed["lifetime_revenue"], restored.computed["lifetime_revenue"]])
    assert revenues == [250, 300]
    assert (kept.segments, restored.segments) == ([], [])
    exits = [e["detail"]["data"] for e in _segment_events(engine) if e["detail-type"] == "segment.exited"]
    assert [(e["profileId"], e["segment"], e["reason"]) for e in exits] == [(survivor, "vip", "unmerge")]
    assert engine.failures == []


def test_a_removed_email_leaves_the_audiences(runtime: Any) -> None:
    engine, received, _ = runtime
    _send(engine, "identify", {"userId": "mover", "traits": {"email": "old-mover@example.com"}})
    _send(engine, "track", {"userId": "mover", "event": "Product Added"})
    profile_id = _profile_id(engine, userId="mover")
    [added] = received

    _admin(engine, "DELETE", f"/v1/profiles/{profile_id}/identifiers/email/old-mover@example.com")

    removal = received[-1]
    assert removal is not added and removal.entered is None  # still a member, without that address
    assert {i.action for i in removal.intents} == {"remove"}
    assert {h.sha256 for i in removal.intents for h in i.identifiers} == {
        h.sha256 for i in added.intents for h in i.identifiers
    }
    assert engine.failures == []


def test_the_local_audiences_queue_is_fifo_with_a_fifo_dead_letter_queue(runtime: Any) -> None:
    import boto3

    engine, _, _ = runtime
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = engine._env["AUDIENCES_QUEUE_URL"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert url.endswith(".fifo") and attributes["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "false"
    dead_letters = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
    assert dead_letters.endswith("-dlq.fifo")


def test_the_local_ad_platform_credentials_are_secrets_naming_the_catalogues_audiences(runtime: Any) -> None:
    import boto3

    engine, _, _ = runtime
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    assert engine._env["AD_PLATFORMS"] == "local"
    secret = {
        platform: json.loads(
            secrets.get_secret_value(SecretId=engine._env[f"{platform.upper()}_CREDENTIALS_SECRET_ARN"])[
                "SecretString"
            ]
        )
        for platform in ("meta", "google")
    }
    # Locally an audience's id is its name: the recorder lists it as the segment names it.
    assert secret["meta"]["audiences"] == {"cart-abandoners": "cart-abandoners"}
    assert secret["google"]["user_lists"] == {"cart-abandoners": "cart-abandoners"}
