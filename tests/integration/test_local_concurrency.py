"""The local runtime runs functions concurrently, as Lambda runs concurrent instances, whatever
starts them (EventBridge, SQS, Step Functions); each AWS request is still applied atomically, as the
real services apply it; and "idle" (what `advance` waits for) still means that all work is done.

Concurrency is shown by a barrier: several invocations of one function must all be inside the
handler at once to get past it. Run one at a time, the first one waits at the barrier until its
guard timeout breaks it, and the invocation fails."""

from __future__ import annotations

import json
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.local.engine import ACCOUNT, CONCURRENCY, PREFIX, REGION, LocalEngine
from infra.topology import TOPOLOGY, Function, Queue, QueueConsumer, Route
from tests.integration import concurrency_probe
from tests.integration.conftest import WRITE_KEY, client

PROBE = "probe"
SOURCE = "test.probe"
TOGETHER = 3  # invocations that must overlap (no more than the default concurrency)
GUARD_SECONDS = 30  # a barrier nobody else reaches breaks after this: the test then fails
TABLE = f"{PREFIX}-journey-runs"

TEST_TOPOLOGY = replace(
    TOPOLOGY,
    functions=(*TOPOLOGY.functions, Function(PROBE, "tests.integration.concurrency_probe", "test only")),
    routes=(*TOPOLOGY.routes, Route(PROBE, {"source": [SOURCE]}, PROBE)),
    queues=(*TOPOLOGY.queues, Queue(PROBE)),
    consumers=(*TOPOLOGY.consumers, QueueConsumer(PROBE, PROBE, batch_size=1)),
)


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalEngine]:
    local = LocalEngine(write_key=WRITE_KEY, topology=TEST_TOPOLOGY).start()
    yield local
    local.stop()


@pytest.fixture(autouse=True)
def probe() -> Iterator[None]:
    yield
    concurrency_probe.behaviour = concurrency_probe._nothing


def _meet(barrier: threading.Barrier, met: list[Any], what: Any) -> None:
    barrier.wait(timeout=GUARD_SECONDS)
    met.append(what)


def _put_events(details: list[dict[str, Any]]) -> None:
    client("events").put_events(
        Entries=[
            {
                "EventBusName": f"{PREFIX}-bus",
                "Source": SOURCE,
                "DetailType": "probe",
                "Detail": json.dumps(d),
            }
            for d in details
        ]
    )


def _queue_url() -> str:
    return str(client("sqs").get_queue_url(QueueName=f"{PREFIX}-{PROBE}")["QueueUrl"])


def test_eventbridge_targets_run_concurrently(engine: LocalEngine) -> None:
    assert CONCURRENCY >= TOGETHER
    barrier, met = threading.Barrier(TOGETHER), []
    concurrency_probe.behaviour = lambda event, _: _meet(barrier, met, event["detail"]["n"])

    _put_events([{"n": n} for n in range(TOGETHER)])
    engine.wait_idle()

    assert sorted(met) == list(range(TOGETHER))
    assert engine.failures == []


def test_queue_batches_are_handed_to_the_function_concurrently(engine: LocalEngine) -> None:
    barrier, met = threading.Barrier(TOGETHER), []
    concurrency_probe.behaviour = lambda event, _: _meet(barrier, met, event["Records"][0]["body"])
    sqs, url = client("sqs"), _queue_url()

    for n in range(TOGETHER):
        sqs.send_message(QueueUrl=url, MessageBody=str(n))
    engine.wait_idle()

    assert sorted(met) == [str(n) for n in range(TOGETHER)]
    dead = client("sqs").get_queue_url(QueueName=f"{PREFIX}-{PROBE}-dlq")["QueueUrl"]
    assert sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10).get("Messages", []) == []


def test_step_functions_tasks_of_different_executions_run_concurrently(engine: LocalEngine) -> None:
    """Each task's Invoke request must not hold the request lock while the handler runs."""
    barrier, met = threading.Barrier(TOGETHER), []
    concurrency_probe.behaviour = lambda event, _: _meet(barrier, met, event["n"]) or {"ok": True}
    sfn = client("stepfunctions")
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {
            "FunctionName": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{PREFIX}-{PROBE}",
            "Payload.$": "$",
        },
        "End": True,
    }
    machine = sfn.create_state_machine(
        name=f"probe-{uuid.uuid4().hex[:8]}",
        definition=json.dumps({"StartAt": "Probe", "States": {"Probe": task}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/{PREFIX}-local",
    )["stateMachineArn"]

    executions = [
        sfn.start_execution(stateMachineArn=machine, name=f"probe-{n}", input=json.dumps({"n": n}))[
            "executionArn"
        ]
        for n in range(TOGETHER)
    ]
    engine.wait_idle()

    assert sorted(met) == list(range(TOGETHER))
    assert [sfn.describe_execution(executionArn=arn)["status"] for arn in executions] == [
        "SUCCEEDED"
    ] * TOGETHER


@pytest.fixture
def switch_often() -> Iterator[None]:
    """Switch threads every microsecond, so that a request that is not applied atomically is
    interleaved with another one (CPython switches every 5 ms by default)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def _at_once(count: int, request: Any) -> list[Any]:
    """Run `request(n)` in `count` threads that start together; what each returned or raised."""
    start, results = threading.Barrier(count), [None] * count

    def run(n: int) -> None:
        start.wait(timeout=GUARD_SECONDS)
        try:
            results[n] = request(n)
        except Exception as error:
            results[n] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_conditional_put_is_won_by_exactly_one_of_many_concurrent_writers(
    engine: LocalEngine, switch_often: None
) -> None:
    dynamodb, slots = client("dynamodb"), [f"race-{uuid.uuid4().hex}" for _ in range(10)]
    writers = 24
    each_slot = threading.Barrier(writers)

    def claim(n: int) -> list[str]:
        """Try every slot in turn, all writers at once; the slots this writer won."""
        won = []
        for slot in slots:
            each_slot.wait(timeout=GUARD_SECONDS)
            try:
                dynamodb.put_item(
                    TableName=TABLE,
                    Item={"profileId": {"S": slot}, "runKey": {"S": "slot"}, "writer": {"S": str(n)}},
                    ConditionExpression="attribute_not_exists(profileId)",
                )
                won.append(slot)
            except ClientError as error:
                assert error.response["Error"]["Code"] == "ConditionalCheckFailedException"
        return won

    results = _at_once(writers, claim)

    winners = {slot: [n for n, won in enumerate(results) if slot in won] for slot in slots}
    assert all(len(writers) == 1 for writers in winners.values()), winners
    for slot, [writer] in winners.items():
        item = dynamodb.get_item(TableName=TABLE, Key={"profileId": {"S": slot}, "runKey": {"S": "slot"}})
        assert item["Item"]["writer"]["S"] == str(writer)


def test_concurrent_counter_increments_are_none_of_them_lost(engine: LocalEngine, switch_often: None) -> None:
    dynamodb, key = (
        client("dynamodb"),
        {"profileId": {"S": f"count-{uuid.uuid4().hex}"}, "runKey": {"S": "n"}},
    )

    def increment(n: int) -> None:
        for _ in range(10):
            dynamodb.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="ADD hits :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

    results = _at_once(16, increment)

    assert results == [None] * 16
    assert dynamodb.get_item(TableName=TABLE, Key=key)["Item"]["hits"]["N"] == "160"


def test_advance_returns_only_when_all_the_work_it_set_off_has_finished(engine: LocalEngine) -> None:
    """Concurrent work that sets off more work: EventBridge → probe (all at once) → the bus again →
    probe → a queue → probe. `advance` must not return before the last of them is done."""
    barrier, done, sqs, url = threading.Barrier(TOGETHER), [], client("sqs"), _queue_url()

    def chain(event: dict[str, Any], _: Any) -> None:
        if "Records" in event:
            done.append(event["Records"][0]["body"])
            return
        detail = event["detail"]
        if detail["stage"] == 1:
            barrier.wait(timeout=GUARD_SECONDS)
            _put_events([{"stage": 2, "n": detail["n"]}])
        else:
            sqs.send_message(QueueUrl=url, MessageBody=str(detail["n"]))

    concurrency_probe.behaviour = chain
    _put_events([{"stage": 1, "n": n} for n in range(TOGETHER)])
    engine.advance(0)

    assert sorted(done) == [str(n) for n in range(TOGETHER)]
    assert engine.failures == []


def test_work_that_begins_and_ends_while_idleness_is_checked_is_not_missed(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`is_idle` reads the work in flight, then the queues, then the executions. An invocation that
    runs between those readings (here: made to run at that moment) and leaves a message on a queue
    already read was in flight at neither; it must still make the engine not idle."""
    engine.wait_idle()
    sqs, url = client("sqs"), _queue_url()
    concurrency_probe.behaviour = lambda event, _: sqs.send_message(QueueUrl=url, MessageBody="late")
    looking = engine._running_executions

    def meanwhile() -> set[str]:
        engine.invoke(PROBE, {"source": SOURCE})
        return looking()

    monkeypatch.setattr(engine, "_running_executions", meanwhile)
    idle = engine.is_idle()
    monkeypatch.undo()
    concurrency_probe.behaviour = concurrency_probe._nothing
    engine.wait_idle()

    assert idle is False


def test_disabled_metrics_are_never_printed_nor_shared_between_concurrent_invocations(
    engine: LocalEngine, capfd: pytest.CaptureFixture[str]
) -> None:
    # Powertools with POWERTOOLS_METRICS_DISABLED still buffers every value, in one object per module
    # that concurrent invocations share, and prints the buffer at 100 values: `make local`'s output
    # filled with metric blobs, and a print racing another thread's add could fail an invocation.
    from aws_lambda_powertools import Metrics

    metrics = Metrics(namespace="Probe")

    @metrics.log_metrics
    def add_many(event: dict[str, Any], context: Any) -> None:
        for _ in range(150):
            metrics.add_metric(name="Probed", unit="Count", value=1)

    concurrency_probe.behaviour = add_many
    threads = [threading.Thread(target=engine.invoke, args=(PROBE, {})) for _ in range(TOGETHER)]
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(GUARD_SECONDS)

    assert '"_aws"' not in capfd.readouterr().out
    assert metrics.metric_set == {}
    assert [str(w.message) for w in warned] == []  # nor "No application metrics to publish"


def test_a_single_metric_is_not_printed_while_metrics_are_disabled(
    engine: LocalEngine, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Powertools' `single_metric` (a metric with its own dimensions: the send gate's outcome by reason)
    # prints its EMF blob whatever POWERTOOLS_METRICS_DISABLED says: the benchmarks' and `make local`'s
    # output filled with `{"_aws": ...}` lines. Enabled again, it prints as in Lambda.
    from aws_lambda_powertools import single_metric

    def one_metric(event: dict[str, Any], context: Any) -> None:
        with single_metric(name="Probed", unit="Count", value=1) as metric:
            metric.add_dimension(name="reason", value=str(event["reason"]))

    concurrency_probe.behaviour = one_metric
    capfd.readouterr()
    engine.invoke(PROBE, {"reason": "disabled"})
    assert '"_aws"' not in capfd.readouterr().out

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    engine.invoke(PROBE, {"reason": "enabled"})
    printed = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["reason"] for m in printed] == ["enabled"]


def test_a_settling_longer_than_the_idle_limit_succeeds_while_it_keeps_progressing(
    engine: LocalEngine,
) -> None:
    # 1,000 sends due at one virtual instant take longer to settle than the idle limit in all, while
    # work finishes and begins all along: the limit counts from the last progress, not the start.
    # Here a chain of invocations, each starting the next, lasts about twice the limit.
    limit, links, each = 2.0, 12, 0.3
    done: list[int] = []

    def link(event: dict[str, Any], context: Any) -> None:
        threading.Event().wait(each)  # work that takes a while (a handler's requests)
        done.append(event["left"])
        if event["left"]:
            engine.enqueue(PROBE, {"left": event["left"] - 1})

    concurrency_probe.behaviour = link
    engine.enqueue(PROBE, {"left": links - 1})
    engine.wait_idle(timeout=limit)

    assert done == list(reversed(range(links)))


def test_a_settling_that_makes_no_progress_still_fails_after_the_idle_limit(engine: LocalEngine) -> None:
    stuck = threading.Event()

    def hang(event: dict[str, Any], context: Any) -> None:
        stuck.wait(GUARD_SECONDS)

    concurrency_probe.behaviour = hang
    engine.enqueue(PROBE, {})
    try:
        with pytest.raises(TimeoutError, match="did not settle"):
            engine.wait_idle(timeout=1.0)
    finally:
        stuck.set()
    engine.wait_idle()


def test_work_that_sets_off_more_work_for_ever_fails_the_settling_instead_of_hanging(
    engine: LocalEngine,
) -> None:
    # Progress resets the idle limit, so a loop of work (a function whose invocation sets off another
    # one, for ever, at one virtual instant) never runs out of it: the settling's ceiling ends it with
    # a clear error, instead of the suite hanging.
    stop = threading.Event()

    def loop(event: dict[str, Any], context: Any) -> None:
        if not stop.is_set():
            engine.enqueue(PROBE, {"again": True})

    concurrency_probe.behaviour = loop
    raised: list[BaseException] = []

    def settle() -> None:
        try:
            engine.wait_idle(timeout=0.5, ceiling=1.0)
        except BaseException as error:
            raised.append(error)

    engine.enqueue(PROBE, {"again": True})
    settling = threading.Thread(target=settle, daemon=True)
    settling.start()
    settling.join(GUARD_SECONDS)  # (only a guard: the ceiling ends it in about a second)
    ended = not settling.is_alive()
    stop.set()
    engine.wait_idle()

    assert ended
    assert len(raised) == 1 and isinstance(raised[0], TimeoutError)
    assert "still working" in str(raised[0])
