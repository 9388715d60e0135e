"""Frequency caps under concurrency and retries, against moto (the local runtime's DynamoDB): the
gate's one transaction (message log entry + cap items, each conditional) never lets a profile get more
sends than a rule allows, however many sends race and however often a step is retried."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.local.engine import LocalEngine
from shared import config
from shared.delivery.service import handle_send
from shared.models.message import MessageLogEntry, SendRequest
from shared.models.policy import CapRule, Policy
from shared.models.profile import Identifier, Profile
from shared.store.caps import SendGateStore
from shared.store.messages import MessageLog
from shared.store.profiles import profile_item
from tests.integration.conftest import WRITE_KEY, client
from tests.policies import PERMISSIVE, PERMISSIVE_POLICY_FILE
from tests.unit.fakes import FakeJourneyStats, FakeQueue, FakeSegmentStates


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalEngine]:
    local = LocalEngine(write_key=WRITE_KEY, policy_file=PERMISSIVE_POLICY_FILE).start()
    yield local
    local.stop()


def _policy(limit: int, on_cap: str) -> Policy:
    rule = CapRule.model_validate(
        {"id": "daily", "limit": limit, "window": "calendar_day", "per_channel": True, "on_cap": on_cap}
    )
    weekly = CapRule.model_validate({"id": "weekly", "limit": limit + 1, "window": "7d", "on_cap": on_cap})
    return PERMISSIVE.model_copy(update={"caps": [rule, weekly]})


def _seed_profile() -> str:
    profile_id = f"p-{uuid.uuid4().hex[:12]}"
    profile = Profile(
        profileId=profile_id,
        identifiers=[Identifier(type="email", value=f"{profile_id}@example.com")],
        createdAt="2026-01-01T00:00:00.000Z",
        updatedAt="2026-01-01T00:00:00.000Z",
    )
    settings_ = config.load(config.DeliverSettings)
    client("dynamodb").put_item(TableName=settings_.profiles_table, Item=profile_item(profile))
    return profile_id


def _request(profile_id: str, run: int) -> SendRequest:
    return SendRequest(
        journey="j",
        step="send-email-hello",
        channel="email",
        template="hello",
        content={"subject": "Hi", "text": "Hi"},
        profileId=profile_id,
        enteredAt="2026-01-01T00:00:00.000Z",
        executionId=f"arn:aws:states:us-east-1:1:execution:j:{profile_id}-{run}",
    )


def _race(requests: list[SendRequest], policy: Policy) -> tuple[list[MessageLogEntry], FakeQueue]:
    """Every request at once (a barrier releases them together), each on its own thread."""
    settings_ = config.load(config.DeliverSettings)
    queue = FakeQueue()
    barrier = threading.Barrier(len(requests))

    def send(request: SendRequest) -> MessageLogEntry:
        barrier.wait()
        return handle_send(
            request,
            SendGateStore(settings_.profiles_table),
            MessageLog(settings_.messages_table),
            queue,
            FakeJourneyStats(),
            FakeSegmentStates(),
            policy,
            profiles_table=settings_.profiles_table,
        )

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests)), queue


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    runs=st.integers(min_value=2, max_value=5),
    retries=st.lists(st.integers(min_value=0, max_value=4), max_size=3),
    limit=st.integers(min_value=1, max_value=3),
    on_cap=st.sampled_from(["drop", "defer"]),
)
def test_concurrent_and_retried_sends_never_exceed_a_cap(
    engine: LocalEngine, runs: int, retries: list[int], limit: int, on_cap: str
) -> None:
    profile_id = _seed_profile()
    policy = _policy(limit, on_cap)
    # Each run's step once, and some of them again at the same time (a retried step).
    requests = [_request(profile_id, run) for run in range(runs)]
    requests += [_request(profile_id, run % runs) for run in retries]

    entries, queue = _race(requests, policy)

    settings_ = config.load(config.DeliverSettings)
    log = MessageLog(settings_.messages_table)
    final = {key: log.get(key) for key in {r.message_key for r in requests}}
    queued = [key for key, entry in final.items() if entry is not None and entry.status == "queued"]
    assert len(queued) == min(limit, runs)
    assert len({m.messageKey for m in queue.messages}) == len(queued)
    expected = "dropped" if on_cap == "drop" else "deferred"
    assert all(e is not None and e.status in ("queued", expected) for e in final.values())
    # Every invocation of one step answered the same outcome.
    for request, entry in zip(requests, entries, strict=True):
        assert entry.status == final[request.message_key].status  # type: ignore[union-attr]
    item = client("dynamodb").get_item(
        TableName=settings_.profiles_table,
        Key={"pk": {"S": f"profile#{profile_id}"}, "sk": {"S": "cap#daily#email"}},
        ConsistentRead=True,
    )["Item"]
    counted = [send["M"]["key"]["S"] for send in item["sends"]["L"]]
    assert sorted(counted) == sorted(queued)  # each queued send counted once, nothing else


def test_a_send_to_a_merged_profile_counts_the_merged_profiles_sends(engine: LocalEngine) -> None:
    survivor, merged = _seed_profile(), _seed_profile()
    policy = _policy(1, "drop")
    first = _race([_request(merged, 0)], policy)[0][0]
    assert first.status == "queued"
    settings_ = config.load(config.DeliverSettings)
    dynamodb = client("dynamodb")
    dynamodb.update_item(
        TableName=settings_.profiles_table,
        Key={"pk": {"S": f"profile#{survivor}"}, "sk": {"S": "profile"}},
        UpdateExpression="SET mergedFrom = :m",
        ExpressionAttributeValues={":m": {"L": [{"S": merged}]}},
    )

    second = _race([_request(survivor, 1)], policy)[0][0]
    assert (second.status, second.reason) == ("dropped", "capped")


def _deferred_event(**extra: object) -> tuple[dict[str, object], datetime]:
    """A send request deferred by quiet hours around the engine's now (the journey's override, in the
    recipient's zone, UTC), and the instant the deferral ends."""
    from shared import clock

    profile_id = _seed_profile()
    client("dynamodb").update_item(
        TableName=config.load(config.DeliverSettings).profiles_table,
        Key={"pk": {"S": f"profile#{profile_id}"}, "sk": {"S": "profile"}},
        UpdateExpression="SET #z = :z",
        ExpressionAttributeNames={"#z": "timezone"},
        ExpressionAttributeValues={":z": {"S": "UTC"}},
    )
    now = clock.now()
    quiet = {"start": f"{(now.hour - 1) % 24:02d}:00", "end": f"{(now.hour + 1) % 24:02d}:00"}
    event = _request(profile_id, 0).model_dump(mode="json") | {"quietHours": quiet} | extra
    return event, now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def test_the_deliver_function_answers_a_deferral_and_counts_it_by_reason(
    engine: LocalEngine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.deliver.handler import handler
    from shared import clock
    from tests.integration.conftest import LambdaContext

    event, until = _deferred_event()  # no token: a direct call still gets the outcome back
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # the local engine drops them; read here
    capsys.readouterr()

    answer = handler(event, LambdaContext("deliver"))

    assert answer["status"] == "deferred" and answer["reason"] == "deferred_quiet_hours"
    assert clock.parse(answer["until"]) == until
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    deferred = [m for m in metrics if "SendDeferred" in m]
    assert deferred and deferred[0]["reason"] == "deferred_quiet_hours" and deferred[0]["channel"] == "email"


def test_a_deferral_on_a_token_answered_already_returns_normally_and_logs_no_token(
    engine: LocalEngine, caplog: pytest.LogCaptureFixture
) -> None:
    # A retried invocation answers again; a run stopped meanwhile has no task left to answer. Step
    # Functions refuses the answer (InvalidToken here): nothing to do, and not an error of the function.
    from functions.deliver.handler import handler, logger
    from tests.integration.conftest import LambdaContext

    token = f"secret-token-{uuid.uuid4().hex}"
    event, _ = _deferred_event(token=token)
    level = logger.log_level
    logger.setLevel("INFO")  # the local runtime logs warnings only
    try:
        answer = handler(event, LambdaContext("deliver"))
    finally:
        logger.setLevel(level)

    assert answer["status"] == "deferred"
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "answered already" in logged
    assert token not in logged


def test_a_token_answer_that_fails_raises_after_the_outcome_is_logged(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Step Functions retries the invocation; the retry finds the outcome in the log and answers it.
    import functions.deliver.handler as deliver
    from tests.integration.conftest import LambdaContext

    class Unreachable:
        def resume(self, token: str) -> bool:
            raise ConnectionError("Step Functions unreachable")

        def fail(self, token: str, error: str, cause: str) -> bool:
            raise ConnectionError("Step Functions unreachable")

    monkeypatch.setattr(deliver, "TaskTokens", Unreachable)
    event, until = _deferred_event(token="t")

    with pytest.raises(ConnectionError):
        deliver.handler(event, LambdaContext("deliver"))

    logged = MessageLog(config.load(config.DeliverSettings).messages_table).get(
        SendRequest.model_validate(event).message_key
    )
    assert logged is not None and logged.status == "deferred"


@pytest.mark.parametrize("topic", ["marketing", "transactional"])
def test_a_profile_erased_between_the_gates_read_and_its_commit_gets_nothing(
    engine: LocalEngine, topic: str
) -> None:
    # The erasure (profiles API) deletes the profile's items, then its message log entries. A send
    # whose gate read the profile just before must not commit afterwards: it used to write a queued
    # entry holding the address and content (outliving the erasure), a cap item under the erased
    # profile, and enqueue the mail to the erased person.
    from shared.delivery.gate import GateFacts

    profile_id = _seed_profile()
    settings_ = config.load(config.DeliverSettings)
    dynamodb = client("dynamodb")

    class ErasedAfterRead(SendGateStore):
        erased = False

        def gate_facts(self, profile: Profile, channel: str, topic: str, policy: Policy) -> GateFacts:
            facts = super().gate_facts(profile, channel, topic, policy)
            if not self.erased:
                self.erased = True
                for item in dynamodb.query(
                    TableName=settings_.profiles_table,
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": {"S": f"profile#{profile_id}"}},
                )["Items"]:
                    dynamodb.delete_item(
                        TableName=settings_.profiles_table, Key={"pk": item["pk"], "sk": item["sk"]}
                    )
            return facts

    queue = FakeQueue()
    request = _request(profile_id, 0).model_copy(update={"topic": topic})
    entry = handle_send(
        request,
        ErasedAfterRead(settings_.profiles_table),
        MessageLog(settings_.messages_table),
        queue,
        FakeJourneyStats(),
        FakeSegmentStates(),
        _policy(1, "drop"),
        profiles_table=settings_.profiles_table,
    )

    assert (entry.status, entry.reason, entry.to, entry.content) == (
        "dropped",
        "profile_not_found",
        None,
        None,
    )
    assert queue.messages == []
    left = dynamodb.query(
        TableName=settings_.profiles_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"profile#{profile_id}"}},
    )["Items"]
    assert left == []
