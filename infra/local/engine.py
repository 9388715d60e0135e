"""The local runtime: the whole engine in one process, on moto, with a virtual clock.

It builds the resources of `infra.topology` inside moto and runs the real handlers in-process.
moto covers the AWS APIs; what it does not do, this module does, in the way AWS does it:
- EventBridge → Lambda targets: moto matches the rule's pattern (so local routing equals cloud
  routing) and this runtime invokes the function asynchronously, retrying twice as Lambda does.
- Lambda invokes (Step Functions tasks): moto's single invoke point runs the real handler here.
- SQS → Lambda: a poller hands batches to the channel function and honours partial-batch failures;
  moto's redrive policy dead-letters a message after its maximum receives.
- Step Functions Wait states block on the virtual clock (`infra.local.clock`).
- Concurrency, as in the cloud: each function runs up to `concurrency` invocations at once (Lambda's
  concurrent instances), whatever starts them; each AWS request is applied atomically, as the real
  services apply it, while handlers run in parallel.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import io
import json
import logging
import math
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any

from infra.local.audiences import AudienceRecorder, local_credentials
from infra.local.clock import VirtualClock
from infra.topology import (
    AD_PLATFORM_SECRET_ENVS,
    AD_PLATFORMS_ENV,
    EMAIL_CONFIGURATION_SET_ENV,
    EVENT_BUS_ENV,
    JOURNEY_ALIAS_ENV,
    JOURNEY_ARN_PREFIX_ENV,
    JOURNEY_CATALOGUE_ENV,
    LINK_SIGNING_KEY_ENV,
    POLICY_FILE_ENV,
    PUBLIC_BASE_URL_ENV,
    RECHECK_ROLE_ARN_ENV,
    RECHECK_SCHEDULE_GROUP_ENV,
    SEGMENT_CATALOGUE_ENV,
    SOURCES,
    TOPOLOGY,
    QueueConsumer,
    Table,
    Topology,
    queue_env,
    table_env,
)
from shared.delivery.feedback import SOURCE_SES
from shared.ingest.sources import new_source
from shared.models.events import DETAIL_EXECUTION_STATUS_CHANGE, SOURCE_STATES
from shared.store.sources import SourceStore

log = logging.getLogger("infra.local")

REGION = "us-east-1"
ACCOUNT = "123456789012"
PREFIX = "continuum"
EMAIL_SENDER = "no-reply@continuum.local"
ASYNC_ATTEMPTS = 3  # EventBridge → Lambda is an async invoke: Lambda tries it three times in all
IDLE_TIMEOUT_SECONDS = 120.0
# A settling that keeps progressing for longer than this (real time) is a loop of work setting off more
# work at one virtual instant, not a long settling: the longest measured (1,000 customers' sends due at
# once, benchmarks/RESULTS.md) takes minutes. Without it such a loop spun for ever, the idle limit
# being counted from the last progress.
SETTLE_CEILING_SECONDS = 1800.0
CONCURRENCY = 4  # invocations of one function at a time (Lambda's concurrent instances), by default
POLL_SECONDS = 0.02  # how often an idle queue consumer asks SQS again (moto has no long polling worth using)
STOP_SECONDS = 2.0  # how long `stop` lets running invocations finish
DEDUPE_WINDOW_SECONDS = 7 * 86400  # Segment's
# Where the links in emails point while no server runs (the harness, integration tests): `serve_at`
# replaces it with the server's address once it listens.
PLACEHOLDER_BASE_URL = "http://localhost"


_EVERY_PARTITION = object()  # an index query's items: every partition's, in no order
ARCHIVE_RULE_PREFIX = "Events-Archive-"  # moto names the rule that feeds an archive this way


def _print_unless_metrics_disabled(*args: Any, **kwargs: Any) -> None:
    """`print` for Powertools' metrics module: drops the output while POWERTOOLS_METRICS_DISABLED
    says so (read at each call, as Powertools reads it), else prints."""
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if not is_metrics_disabled():
        print(*args, **kwargs)


def _epoch_millis(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


# `at(yyyy-mm-ddThh:mm:ss)`: an EventBridge Scheduler one-time schedule's expression.
_AT_EXPRESSION = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")


def _schedule_due(expression: str, timezone: str | None) -> datetime | None:
    """When a one-time schedule fires (None: not a one-time schedule; rate / cron are not fired)."""
    from zoneinfo import ZoneInfo

    match = _AT_EXPRESSION.match(expression)
    if match is None:
        return None
    local = datetime.fromisoformat(match.group(1)).replace(tzinfo=ZoneInfo(timezone or "UTC"))
    return local.astimezone(UTC)


# A placeholder in a compiled journey (`${DeliverFunctionArn}`) left unsubstituted.
_PLACEHOLDER = re.compile(r"\$\{[A-Za-z]+Arn\}")


def state_machine_name(journey_id: str) -> str:
    return f"{PREFIX}-{journey_id}"


@dataclass
class Failure:
    """A function invocation that failed for good (locally the stand-in for a dead-letter queue)."""

    function: str
    error: str
    event: dict[str, Any]


def create_table(dynamodb: Any, table: Table, name: str) -> str:
    """Create a topology table in moto as the CDK stack declares it (string keys, on-demand)."""
    attributes = {table.partition_key, *(k for k in [table.sort_key] if k)}
    keys = [{"AttributeName": table.partition_key, "KeyType": "HASH"}]
    if table.sort_key:
        keys.append({"AttributeName": table.sort_key, "KeyType": "RANGE"})
    indexes = []
    for index in table.indexes:
        index_keys = [{"AttributeName": index.partition_key, "KeyType": "HASH"}]
        attributes.add(index.partition_key)
        if index.sort_key:
            index_keys.append({"AttributeName": index.sort_key, "KeyType": "RANGE"})
            attributes.add(index.sort_key)
        indexes.append(
            {"IndexName": index.name, "KeySchema": index_keys, "Projection": {"ProjectionType": "ALL"}}
        )
    dynamodb.create_table(
        TableName=name,
        KeySchema=keys,
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
        BillingMode="PAY_PER_REQUEST",
        **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
    )
    return name


def _execution_id(env: Any) -> str:
    """The ARN of the execution a moto Step Functions environment (or frame) evaluates."""
    return str(env.states.context_object.context_object_data["Execution"]["Id"])


# What AWS accepts as a Wait state's timestamp: RFC 3339, `T` between date and time, `Z` or an offset.
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _parse_timestamp(text: Any) -> datetime | None:
    if not isinstance(text, str) or not _TIMESTAMP.match(text):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class _RequestLock:
    """One lock for all of moto's requests, re-entrant per thread, that a thread can let go of for
    a while (hand-written: `threading.RLock` cannot be released by a thread whatever its depth)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()

    def _holding(self) -> bool:
        return bool(getattr(self._local, "holding", False))

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._holding():
            yield
            return
        with self._lock:
            self._local.holding = True
            try:
                yield
            finally:
                self._local.holding = False

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        if not self._holding():
            yield
            return
        self._local.holding = False
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()
            self._local.holding = True


class _LambdaContext:
    def __init__(self, function_name: str, timeout_seconds: int, memory_mb: int):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{PREFIX}-{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{PREFIX}-{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalEngine:
    def __init__(
        self,
        write_key: str,
        topology: Topology = TOPOLOGY,
        start: datetime | None = None,
        dedupe_window_seconds: int = DEDUPE_WINDOW_SECONDS,
        admin_token: str = "dev-admin-token",
        identity_rules: str = "{}",
        concurrency: int = CONCURRENCY,
        default_timezone: str = "UTC",  # journeys' local-time waits for a recipient with no known zone
        journeys_dir: Path | None = None,
        segments_dir: Path | None = None,  # segments/<id>.yaml and computed_traits.yaml; default: the repo's
        policy_file: Path | None = None,  # the send policy (YAML); default: the repo's policy.yaml
        link_signing_key: str | None = None,  # hex, at least 32 bytes; default: a new random key
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.topology = topology
        self.concurrency = concurrency
        self.write_key = write_key
        self.dedupe_window_seconds = dedupe_window_seconds
        self.admin_token = admin_token
        self.identity_rules = identity_rules
        self.default_timezone = default_timezone
        # Signs the links in emails (LINK_SIGNING_KEY): by default new at every start (links from an
        # earlier run then answer 403), like the cloud's secret per stack; tests sign with it too.
        self.link_signing_key = link_signing_key or secrets.token_hex(32)
        bytes.fromhex(self.link_signing_key)  # a key that is not hex fails here, not at the first email
        if len(self.link_signing_key) < 64:
            raise ValueError("the link signing key is at least 32 bytes (64 hex digits)")
        self.public_base_url = PLACEHOLDER_BASE_URL
        self._start = start or datetime.now(UTC).replace(microsecond=0)
        self.clock = VirtualClock(self._start)
        self.failures: list[Failure] = []  # appended under `failures_lock`
        self.failures_lock = threading.Lock()
        self.bus_events: list[dict[str, Any]] = []
        # Work in progress: asynchronous invocations queued or running, and invocations running.
        # `_started` counts every piece of work ever begun, so that `is_idle` can tell that nothing
        # began while it was looking at the queues and executions.
        self._activity = threading.Lock()
        self._in_flight = 0
        self._started = 0
        self._finished = 0  # and every piece ended: with `_started`, what `wait_idle` sees progress by
        self._stopped = threading.Event()
        self._instances = {f.name: threading.BoundedSemaphore(concurrency) for f in topology.functions}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pollers: list[threading.Thread] = []
        self._sqs: Any = None
        self._events: Any = None
        self._handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        self._env: dict[str, str] = {}
        self._queue_urls: dict[str, str] = {}
        self._dead_letter_urls: list[str] = []
        self._state_machine_arns: dict[str, str] = {}
        self._definitions: dict[str, str] = {}  # journey id → its state machine's definition now
        self._journeys: dict[str, Any] = {}  # journey id → Journey, as registered last
        self._step_ids: dict[str, set[str]] = {}  # journey id → the step ids of all its definitions
        self._function_arns: dict[str, str] = {}
        self._role_arn = ""
        self._catalogue_dir: Path | None = None
        self.journeys_dir = Path(journeys_dir) if journeys_dir is not None else topology.journeys_dir
        self.segments_dir = Path(segments_dir) if segments_dir is not None else topology.segments_dir
        self.policy_file = Path(policy_file) if policy_file is not None else topology.policy_file
        self._segment_catalogues = 0  # catalogue files written (each reload writes a new one)
        self._requests_lock: _RequestLock | None = None
        self.schedules_fired: list[dict[str, Any]] = []  # one-time schedules fired: name, due, input
        # The ad platforms' stand-in: every request Meta / Google would have received (GET /_local/audiences).
        self.audiences = AudienceRecorder(self.clock.now)
        self._mock: Any = None
        self._patches: list[Callable[[], None]] = []

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> LocalEngine:
        from moto import mock_aws

        self._set_process_environment()
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        self._patch_moto()
        self._provision()
        self._install_handlers()
        import boto3

        self._sqs = boto3.client("sqs", region_name=REGION)
        self._events = boto3.client("events", region_name=REGION)
        self._pools = {
            f.name: ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"continuum-{f.name}")
            for f in self.topology.functions
        }
        for consumer in self.topology.consumers:
            poller = threading.Thread(
                target=self._consume, args=(consumer,), name=f"continuum-sqs-{consumer.queue}", daemon=True
            )
            poller.start()
            self._pollers.append(poller)
        return self

    def stop(self) -> None:
        self._stopped.set()
        for poller in self._pollers:
            poller.join(timeout=STOP_SECONDS)
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._abort_executions()
        # Let running invocations finish before moto goes away (their requests would reach AWS).
        deadline = time.monotonic() + STOP_SECONDS
        while self._busy() and time.monotonic() < deadline:
            time.sleep(0.01)
        for patcher in reversed(self._patches):
            patcher()
        if self._mock:
            self._mock.stop()
        from shared import clock, config
        from shared.store import ad_platforms, aws

        clock.reset()
        config.reset()
        aws.reset()
        ad_platforms.reset()
        if self._catalogue_dir is not None:
            shutil.rmtree(self._catalogue_dir, ignore_errors=True)

    def _abort_executions(self) -> None:
        """End every running execution, as if stopped, so that none of their threads is left
        waiting on the clock (or running on after moto is gone)."""
        if self._mock is None:
            return
        now = self.clock.now()
        for execution in self._executions():
            worker = execution.exec_worker
            if worker is not None and worker.env is not None and worker.env.is_running():
                worker.env.set_stop(stop_date=now, cause="the local engine stopped", error=None)
        self.clock.interrupt_all()

    def _set_process_environment(self) -> None:
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_SESSION_TOKEN": "local",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "MOTO_ACCOUNT_ID": ACCOUNT,
                # botocore ≥ 1.40 sends some calls to account-ID endpoints moto does not route.
                "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                "POWERTOOLS_SERVICE_NAME": "continuum",
                "POWERTOOLS_METRICS_NAMESPACE": "Continuum",
                "POWERTOOLS_METRICS_DISABLED": "true",
            }
        )
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    # ---------------------------------------------------------------- moto patches

    def _patch_moto(self) -> None:
        from aws_lambda_powertools.metrics import base as metrics_base
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
            AmazonCloudWatchEMFProvider,
        )
        from moto.awslambda.models import LambdaFunction
        from moto.events.models import Rule, events_backends
        from moto.stepfunctions.models import StepFunctionBackend
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
            FailureEventException,
        )
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
        from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (  # noqa: E501
            StateTaskServiceCallback,
        )
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
            WaitFunction,
        )
        from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackOutcomeTimedOut
        from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution
        from moto.stepfunctions.responses import StepFunctionResponse

        engine = self

        def patch(owner: Any, name: str, replacement: Any) -> None:
            if name in vars(owner):
                original = vars(owner)[name]
                self._patches.append(lambda: setattr(owner, name, original))
            else:
                self._patches.append(lambda: delattr(owner, name))
            setattr(owner, name, replacement)

        def invoke_lambda(function: Any, event: Any = None) -> tuple[str, bool, str]:
            # Step Functions' lambda:invoke arrives here (moto would start a Docker container).
            name = function.function_name.removeprefix(f"{PREFIX}-")
            try:
                # The Invoke request holds the request lock; the handler's own requests need it.
                with requests_lock.released():
                    result = engine.invoke(
                        name, event if isinstance(event, dict) else json.loads(event or "{}")
                    )
                return json.dumps(result), False, ""
            except Exception as error:  # the function's error, reported the way Lambda reports it
                payload = {"errorType": type(error).__name__, "errorMessage": str(error)}
                return json.dumps(payload), True, traceback.format_exc()

        original_send = Rule.send_to_targets

        def send_to_targets(rule: Any, event: dict[str, Any], transform_input: bool = True) -> None:
            if rule.event_pattern.matches_event(event):
                # Step Functions' status changes (and SES's feedback) reach the default bus in AWS, not
                # the engine's bus whose archive this mirrors; locally they travel on the engine's bus
                # only to reach the route for them.
                if rule.name == f"{PREFIX}-archive-recorder" and event.get("source") not in (
                    SOURCE_STATES,
                    SOURCE_SES,
                ):
                    engine.bus_events.append(copy.deepcopy(event))
                    engine.forget_erased(event)
                for target in rule.targets:
                    if ":function:" in target["Arn"]:
                        engine.enqueue(
                            target["Arn"].rsplit(":function:", 1)[1].removeprefix(f"{PREFIX}-"), event
                        )
            others = copy.copy(rule)
            others.targets = []
            for target in rule.targets:
                if ":function:" in target["Arn"]:
                    continue
                if rule.name.startswith(ARCHIVE_RULE_PREFIX) and target["Id"] == rule.name:
                    # moto forwards each event to its archive through an input transformer (seven
                    # JSONPath finds, a JSON dump and load of the event) only to store the event
                    # unchanged; stored here directly. Saves ~0.2 ms of CPU per event (jsonpath parsing
                    # already cached), under the request lock.
                    backend = events_backends[rule.account_id][rule.region_name]
                    backend.archives[rule.name.removeprefix(ARCHIVE_RULE_PREFIX)].events.append(event)  # type: ignore[arg-type]
                else:
                    others.targets.append(target)
            if others.targets:
                original_send(others, event, transform_input)  # type: ignore[arg-type]

        def wait_interval(wait: Any, env: Any, wait_seconds: int) -> None:
            # A Wait state blocks on the virtual clock; a wait already due (a timestamp in the
            # past, `Seconds: 0`) continues at once, as in AWS.
            engine.clock.sleep(_execution_id(env), wait_seconds, cancelled=lambda: not env.is_running())

        def timestamp_wait_seconds(wait: Any, env: Any) -> int:
            # moto measures a `Timestamp` / `TimestampPath` wait against the real time; here it is
            # measured against the virtual clock. Like AWS (and unlike moto), an offset such as
            # `+02:00` is accepted besides `Z`.
            wait.string.eval(env=env)
            text = env.stack.pop()
            at = _parse_timestamp(text)
            if at is None:
                raise FailureEventException(wait._create_failure_event(env, text))
            return math.ceil((at - engine.clock.now()).total_seconds())

        def wait_for_task_token(
            task: Any, env: Any, timeout_seconds: int, callback_endpoint: Any, heartbeat_endpoint: Any
        ) -> Any:
            # moto waits for the token on the real clock (a 23 h TimeoutSeconds is 23 real hours) and
            # a StopExecution does not end the wait. Here the timeout runs on the virtual clock, the
            # token's answer (SendTaskSuccess / Failure sets the endpoint's event) ends the wait at
            # once, and a stop interrupts it. An execution parked on a token counts as waiting on
            # the clock, so the engine is idle while it waits.
            if heartbeat_endpoint is not None:  # HeartbeatSeconds: moto's own (real-time) wait
                return original_token_wait(task, env, timeout_seconds, callback_endpoint, heartbeat_endpoint)
            # (A SendTaskSuccess after the timeout is accepted and ignored here; AWS refuses it with
            # TaskTimedOut. moto's path for that answer is broken: it fails with a TypeError.)
            engine.clock.sleep(
                _execution_id(env),
                timeout_seconds,
                cancelled=lambda: not env.is_running(),
                wake=callback_endpoint._notify_event,  # moto is pinned exactly; see pyproject.toml
            )
            outcome = callback_endpoint.get_outcome()
            if outcome is not None:
                return outcome
            return CallbackOutcomeTimedOut(callback_id=callback_endpoint.callback_id)

        original_evaluate = ExecutionState._evaluate_with_timeout

        def evaluate_with_timeout(state: Any, env: Any) -> None:
            try:
                original_evaluate(state, env)
            except Exception:
                # The execution was stopped while the state ran (a token wait interrupted): AWS
                # records no outcome for the task of an aborted execution, and moto would fail it
                # (or take its Catch) as if the token had timed out.
                if env.is_running():
                    raise

        original_terminated = BaseExecutionWorkerCommunication.terminated

        def terminated(communication: Any) -> None:
            # Counted as work until the status change is on the bus: between the execution's end and
            # the event, nothing else may look finished.
            with engine._working():
                original_terminated(communication)
                engine._publish_status_change(communication.execution)

        original_start = Execution.start

        def start_execution(execution: Any) -> None:
            execution.start_date = engine.clock.now()  # moto dates it by the real clock
            original_start(execution)

        original_stop = StepFunctionBackend.stop_execution

        def stop_execution(backend: Any, execution_arn: str) -> Any:
            stopped = original_stop(backend, execution_arn)
            engine.clock.interrupt(execution_arn)  # the waits of a stopped execution end now
            return stopped

        def send_task_failure(response: Any) -> Any:
            # moto's SendTaskFailure drops the request's `cause` (AWS hands it on: a Catch's
            # ResultPath gets {Error, Cause}; a send step's deferral waits until its Cause).
            from moto.core.responses import EmptyResult

            response.stepfunction_backend.send_task_failure(
                response._get_param("taskToken"),
                error=response._get_param("error"),
                cause=response._get_param("cause"),
            )
            return EmptyResult()

        class _RetrySleep:
            # Retry back-off of a failed task passes no real time locally.
            def __getattr__(self, name: str) -> Any:
                return getattr(time, name)

            @staticmethod
            def sleep(seconds: float) -> None:
                return None

        from moto.sesv2.models import SESV2Backend

        original_send_email = SESV2Backend.send_email

        def send_email(backend: Any, source: str, destinations: Any, subject: str, body: str) -> Any:
            # SES's mailbox simulator: its bounce and complaint addresses report back as SES does, on
            # the default bus (locally the engine's bus, like Step Functions' status changes).
            from infra.local.ses_simulator import feedback_entries
            from shared import clock

            message = original_send_email(backend, source, destinations, subject, body)
            addresses = [
                a
                for kind in ("ToAddresses", "CcAddresses", "BccAddresses")
                for a in destinations.get(kind, [])
            ]
            entries = feedback_entries(
                addresses,
                message_id=message.id,
                sender=source,
                configuration_set=engine._env.get(EMAIL_CONFIGURATION_SET_ENV),
                sent_at=clock.iso(engine.clock.now()),
                bus=engine._env[EVENT_BUS_ENV],
            )
            if entries:  # in-process (this request holds the request lock already)
                events_backends[ACCOUNT][REGION].put_events(entries)
            return message

        requests_lock = self._patch_request_lock(patch)
        self._requests_lock = requests_lock
        self._patch_parsing(patch)
        self._patch_dynamodb_transactions(patch)
        self._patch_dynamodb_queries(patch)
        self._patch_client_creation(patch)
        patch(SESV2Backend, "send_email", send_email)
        patch(LambdaFunction, "_invoke_lambda", invoke_lambda)
        patch(Rule, "send_to_targets", send_to_targets)
        patch(WaitFunction, "_wait_interval", wait_interval)
        patch(Timestamp, "_get_wait_seconds", timestamp_wait_seconds)
        original_token_wait = StateTaskServiceCallback._eval_wait_for_task_token
        patch(StateTaskServiceCallback, "_eval_wait_for_task_token", wait_for_task_token)
        patch(ExecutionState, "_evaluate_with_timeout", evaluate_with_timeout)
        patch(StepFunctionBackend, "stop_execution", stop_execution)
        patch(StepFunctionResponse, "send_task_failure", send_task_failure)
        patch(BaseExecutionWorkerCommunication, "terminated", terminated)
        patch(Execution, "start", start_execution)
        patch(retrier_decl, "time", _RetrySleep())
        # Metrics are disabled locally (POWERTOOLS_METRICS_DISABLED), yet Powertools still buffers every
        # value in one object per handler module, shared by concurrent invocations here (one process
        # per instance in Lambda), and prints the buffer every 100 values. Locally a metric is dropped
        # (and nothing is flushed, which would warn that there is nothing to flush).
        patch(AmazonCloudWatchEMFProvider, "add_metric", lambda provider, *args, **kwargs: None)
        patch(AmazonCloudWatchEMFProvider, "flush_metrics", lambda provider, *args, **kwargs: None)
        # `single_metric` (a metric with its own dimensions, e.g. the send gate's outcome by reason)
        # prints its EMF blob whatever POWERTOOLS_METRICS_DISABLED says (Powertools 3.x checks the
        # setting only in the provider). Handlers import the function by name, so it cannot be
        # swapped; its module's `print` is, and prints only while metrics are enabled.
        patch(metrics_base, "print", _print_unless_metrics_disabled)

    @staticmethod
    def _patch_request_lock(patch: Callable[[Any, str, Any], None]) -> _RequestLock:
        """moto's backends are not thread-safe: a conditional PutItem checks, then writes; UpdateItem
        ADD reads, then writes; two threads interleave and both win or an increment is lost. Every
        mocked request passes through `BotocoreStubber.process_request` (boto3 clients in handlers,
        tests and moto's Step Functions alike); holding one lock there applies each request
        atomically, as the real services do, while the handlers between requests run in parallel.
        The lock is re-entrant per thread (a synchronous Express execution runs inside its request),
        and Lambda's Invoke lets go of it while the handler runs (see `invoke_lambda`)."""
        from moto.core.botocore_stubber import BotocoreStubber

        lock = _RequestLock()
        original = BotocoreStubber.process_request

        def process_request(stubber: Any, request: Any) -> Any:
            with lock.held():
                return original(stubber, request)

        patch(BotocoreStubber, "process_request", process_request)
        return lock

    @staticmethod
    def _patch_parsing(patch: Callable[[Any, str, Any], None]) -> None:
        """moto parses a state machine's definition (ANTLR, ~150 ms for a journey) at every execution's
        start, and each JSONPath (`$.profileId`, ~2-10 ms) each time a state evaluates it: for a
        thousand customers, minutes of CPU before any work. Both are parsed once here. A parsed
        program is shared by the executions of its definition: its components hold no evaluation
        state (that lives in each execution's environment; Map and Parallel make their workers per
        evaluation)."""
        from functools import lru_cache

        import jsonpath_ng.ext
        from jsonpath_ng import parse as parse_jsonpath
        from jsonpath_ng.ext import parse as parse_jsonpath_ext
        from moto.stepfunctions.parser.asl.component.common.path import result_path
        from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
        from moto.stepfunctions.parser.asl.utils import json_path
        from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

        program = lru_cache(maxsize=256)(lambda definition: AmazonStateLanguageParser.parse(definition)[0])

        def entrypoint(worker: Any) -> Any:
            return program(worker._evaluation_details.state_machine_details.definition)

        patch(ExecutionWorker, "_get_evaluation_entrypoint", entrypoint)
        cached_ext = lru_cache(maxsize=4096)(parse_jsonpath_ext)
        patch(json_path, "parse", cached_ext)
        patch(result_path, "parse", lru_cache(maxsize=4096)(parse_jsonpath))
        # EventBridge's archive target applies an input transformer to every event put on the bus,
        # parsing its JSONPaths each time (with a new parser: ~10 ms, forty times per customer call).
        patch(jsonpath_ng.ext, "parse", cached_ext)

    @staticmethod
    def _patch_client_creation(patch: Callable[[Any, str, Any], None]) -> None:
        """boto3's default session is not thread-safe: clients created from it at the same time in
        several threads (handlers' first requests, moto's Step Functions tasks) can fail. Created
        clients are thread-safe; creating them is done one at a time here."""
        import boto3

        original = boto3.client
        one_at_a_time = threading.Lock()

        def client(*args: Any, **kwargs: Any) -> Any:
            with one_at_a_time:
                return original(*args, **kwargs)

        patch(boto3, "client", client)

        # moto's Step Functions builds a new boto3 client for every task it runs (`boto_client_for`,
        # per Lambda invoke: ~57 ms of CPU, one at a time under the lock above, so 1,000 sends due
        # at one instant queued about a minute of client creation). One client per (region,
        # service) serves them all: clients are thread-safe, and moto's ignore the credentials.
        from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
        from moto.stepfunctions.parser.asl.utils import boto_client

        create = boto_client.boto_client_for
        created: dict[tuple[str, str], Any] = {}

        def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            with one_at_a_time:
                found = created.get((region, service))
            if found is None:
                found = create(region=region, service=service, state_credentials=state_credentials)
                with one_at_a_time:
                    found = created.setdefault((region, service), found)
            return found

        # Every module that imported it by name (the service integrations, Lambda's among them), and
        # its own module for those imported later.
        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("moto.stepfunctions") and (
                getattr(module, "boto_client_for", None) is create
            ):
                patch(module, "boto_client_for", boto_client_for)
        assert lambda_eval_utils.boto_client_for is boto_client_for

    @staticmethod
    def _patch_dynamodb_queries(patch: Callable[[Any, str, Any], None]) -> None:
        """moto answers a Query on a table's key by sorting every item of the table (`all_items`),
        then keeping those of the queried partition: each query costs time in proportion to all the
        table holds, so a run's cost grows with the square of its customers (100 customers: 66 of
        the 158 s of CPU settling their 100 sends at 1 h, in the 100 `timeline_since` queries of
        journey-steps; measured with yappi). Here such a query starts from its partition alone (a
        dictionary lookup); moto's own code then filters and sorts it as before, so the answer is
        the same. An index query still reads every item (an index is no partition in moto), but
        unsorted: moto sorts what it keeps by the index's and the table's keys (a total order)
        afterwards anyway. Scans are moto's, unchanged."""
        from moto.dynamodb.models.table import Table

        all_items = Table.all_items
        query = Table.query
        partition = threading.local()  # the hash key a Query on this thread reads, while it runs

        def items(table: Any) -> list[Any]:
            key = getattr(partition, "key", None)
            if key is None:
                return all_items(table)
            if key is _EVERY_PARTITION:
                if not table.range_key_attr:
                    return list(table.items.values())
                return [item for stored in table.items.values() for item in stored.values()]
            found = table.items.get(key)  # `get`: moto's defaultdict would add an empty partition
            if found is None:
                return []
            return list(found.values()) if table.range_key_attr else [found]

        # moto's backend passes `index_name` by position; after (table, hash_key) it is args[at].
        at = list(inspect.signature(query).parameters).index("index_name") - 2

        def query_partition(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
            index_name = args[at] if len(args) > at else kwargs.get("index_name")
            if hash_key is None and not index_name:
                return query(table, hash_key, *args, **kwargs)
            partition.key = _EVERY_PARTITION if index_name else hash_key
            try:
                return query(table, hash_key, *args, **kwargs)
            finally:
                partition.key = None

        patch(Table, "all_items", items)
        patch(Table, "query", query_partition)

    @staticmethod
    def _patch_dynamodb_transactions(patch: Callable[[Any, str, Any], None]) -> None:
        """moto rolls a cancelled transaction back by restoring a deep copy of every table it touches,
        taken before each transaction: each event's commit then costs time in proportion to all the
        table holds (seconds, after a few thousand events), and a rollback wipes out what other
        threads wrote meanwhile. Here a transaction snapshots only the items it touches, transactions
        run one at a time, and a rollback restores just those items. (The request lock already keeps
        other requests out while a transaction runs; `one_at_a_time` also covers direct backend calls.)"""
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.table import Table

        original = DynamoDBBackend.transact_write_items
        one_at_a_time = threading.Lock()

        def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
            touched = []
            for action in transact_items:
                kind, operation = next(iter(action.items()))
                table = backend.tables.get(operation.get("TableName"))
                if table is None:
                    continue
                source = operation.get("Item", {}) if kind == "Put" else operation.get("Key", {})
                key = {a: source[a] for a in (table.hash_key_attr, table.range_key_attr) if a and a in source}
                try:
                    current = backend.get_item(table.name, key)
                except Exception:  # an invalid key: moto's own validation below reports it
                    continue
                touched.append((table, key, copy.deepcopy(current)))
            with one_at_a_time:
                try:
                    original(backend, transact_items)
                except Exception:
                    for table, key, before in touched:
                        if before is None:
                            with contextlib.suppress(Exception):
                                backend.delete_item(table.name, key)
                        elif before.range_key is not None:
                            table.items[before.hash_key][before.range_key] = before
                        else:
                            table.items[before.hash_key] = before
                    raise

        # moto's whole-table copy becomes the table itself; the rollback above replaces it.
        patch(Table, "__deepcopy__", lambda table, memo: table)
        patch(DynamoDBBackend, "transact_write_items", transact_write_items)

    # ---------------------------------------------------------------- resources

    def _provision(self) -> None:
        import boto3

        from shared.journeys.loader import load_journeys
        from shared.segments.catalogue import load_segments

        session = boto3.Session(region_name=REGION)
        dynamodb, sqs, events = session.client("dynamodb"), session.client("sqs"), session.client("events")
        lam, iam = session.client("lambda"), session.client("iam")

        env: dict[str, str] = {}
        for table in self.topology.tables:
            env[table_env(table.name)] = create_table(dynamodb, table, f"{PREFIX}-{table.name}")

        for queue in self.topology.queues:
            # A FIFO queue's name ends in .fifo, and its dead-letter queue is FIFO too (SQS requires it).
            suffix = ".fifo" if queue.fifo else ""
            fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if queue.fifo else {}
            dlq_url = sqs.create_queue(QueueName=f"{PREFIX}-{queue.name}-dlq{suffix}", Attributes=fifo)[
                "QueueUrl"
            ]
            self._dead_letter_urls.append(dlq_url)
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            url = sqs.create_queue(
                QueueName=f"{PREFIX}-{queue.name}{suffix}",
                Attributes={
                    **fifo,
                    "VisibilityTimeout": str(self.topology.visibility_timeout_seconds(queue.name)),
                    "RedrivePolicy": json.dumps(
                        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.max_receive_count}
                    ),
                },
            )["QueueUrl"]
            self._queue_urls[queue.name] = url
            env[queue_env(queue.name)] = url

        bus = f"{PREFIX}-bus"
        bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
        env[EVENT_BUS_ENV] = bus
        events.create_archive(ArchiveName=f"{PREFIX}-archive", EventSourceArn=bus_arn)
        # Everything on the bus, in order, for GET /_local/events (the archive's view, readable).
        events.put_rule(
            Name=f"{PREFIX}-archive-recorder",
            EventBusName=bus,
            EventPattern=json.dumps({"source": [{"prefix": ""}]}),
        )

        role = iam.create_role(RoleName=f"{PREFIX}-local", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("handler.py", "# the local runtime runs the real handler in-process\n")
        function_arns = {}
        for function in self.topology.functions:
            function_arns[function.name] = lam.create_function(
                FunctionName=f"{PREFIX}-{function.name}",
                Runtime="python3.12",
                Role=role,
                Handler="handler.handler",
                Code={"ZipFile": archive.getvalue()},
                Timeout=function.timeout_seconds,
                MemorySize=function.memory_mb,
            )["FunctionArn"]

        for route in self.topology.routes:
            events.put_rule(
                Name=f"{PREFIX}-{route.name}", EventBusName=bus, EventPattern=json.dumps(route.pattern)
            )
            events.put_targets(
                Rule=f"{PREFIX}-{route.name}",
                EventBusName=bus,
                Targets=[{"Id": route.function, "Arn": function_arns[route.function]}],
            )

        self._function_arns = function_arns
        self._role_arn = role
        self._catalogue_dir = Path(tempfile.mkdtemp(prefix="continuum-journeys-"))
        env[JOURNEY_CATALOGUE_ENV] = str(self._catalogue_dir / "journeys.json")
        env[JOURNEY_ARN_PREFIX_ENV] = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:"
        # moto 5.2 publishes versions and creates aliases, but cannot start an execution on either
        # (StateMachineDoesNotExist on an alias ARN, AttributeError on a version ARN): journeys start
        # on the state machine's own ARN, and `reload_journeys` updates the machine in place.
        env[JOURNEY_ALIAS_ENV] = ""
        self._env = env
        policy = self._write_policy()
        self._register_journeys(load_journeys(self.journeys_dir, load_segments(self.segments_dir), policy))
        self._write_segment_catalogue()
        self._write_ad_platform_credentials()
        # Segment re-checks: one-time schedules in this group, fired on the virtual clock (`advance`).
        schedule_group = f"{PREFIX}-rechecks"
        session.client("scheduler").create_schedule_group(Name=schedule_group)
        env[RECHECK_SCHEDULE_GROUP_ENV] = schedule_group
        env[RECHECK_ROLE_ARN_ENV] = role

        session.client("ses").verify_email_identity(EmailAddress=EMAIL_SENDER)
        platform = session.client("sns").create_platform_application(
            Name=f"{PREFIX}-push", Platform="GCM", Attributes={"PlatformCredential": "local"}
        )
        env["EMAIL_SENDER"] = EMAIL_SENDER
        # The cloud's configuration set reports bounces and complaints; locally the mailbox simulator
        # above does (moto keeps the set but publishes no events).
        session.client("sesv2").create_configuration_set(ConfigurationSetName=f"{PREFIX}-email")
        env[EMAIL_CONFIGURATION_SET_ENV] = f"{PREFIX}-email"
        env["PUSH_PLATFORM_APPLICATION_ARN"] = platform["PlatformApplicationArn"]
        env["DEDUPE_WINDOW_SECONDS"] = str(self.dedupe_window_seconds)
        env["ADMIN_TOKEN_SHA256"] = hashlib.sha256(self.admin_token.encode()).hexdigest()
        env["IDENTITY_RULES"] = self.identity_rules
        env["DEFAULT_TIMEZONE"] = self.default_timezone
        # Locally a revoked key stops at once (the cloud default trusts a cached answer for 60 s).
        env["WRITE_KEY_CACHE_SECONDS"] = "0"
        env[LINK_SIGNING_KEY_ENV] = self.link_signing_key
        env[PUBLIC_BASE_URL_ENV] = self.public_base_url
        self._env = env
        os.environ.update(env)
        self.sources.add(new_source("default", self.write_key)[0])

    def serve_at(self, base_url: str) -> None:
        """The server's address, once it listens: the links in emails point at it (PUBLIC_BASE_URL)."""
        from shared import config

        self.public_base_url = base_url.rstrip("/")
        self._env[PUBLIC_BASE_URL_ENV] = self.public_base_url
        os.environ[PUBLIC_BASE_URL_ENV] = self.public_base_url
        config.reset()  # the handlers' settings are read again, with the new address

    def link_signer(self) -> Any:
        """The signer of this engine's links (shared/delivery/links.py), with its key."""
        from shared.delivery.links import LinkSigner

        return LinkSigner(bytes.fromhex(self.link_signing_key))

    # ---------------------------------------------------------------- journeys

    def reload_journeys(self, journeys_dir: Path | None = None) -> list[str]:
        """Register the journeys of `journeys_dir` (by default the folder the engine runs) again, as a
        redeploy does: a changed journey's state machine gets the new definition, so new entries use
        it, while running executions keep the definition they started with (moto snapshots it at
        StartExecution, as Step Functions does); a new journey gets its state machine; a journey no
        longer there leaves the catalogue, and its running executions finish. Rewrites the catalogue
        the router reads. Returns the ids of the journeys whose state machine was created or changed."""
        from shared import config
        from shared.delivery.policy import read_policy_yaml
        from shared.journeys.loader import load_journeys
        from shared.segments.catalogue import load_segments

        if journeys_dir is not None:
            self.journeys_dir = Path(journeys_dir)
        before = dict(self._definitions)
        policy = read_policy_yaml(self.policy_file)
        self._register_journeys(load_journeys(self.journeys_dir, load_segments(self.segments_dir), policy))
        config.reset()  # the handlers' settings are read again, with the catalogue's new contents
        return [
            journey for journey, definition in self._definitions.items() if before.get(journey) != definition
        ]

    def _register_journeys(self, journeys: list[Any]) -> None:
        """Create or update each journey's state machine and write the catalogue the functions read."""
        import boto3

        from shared.journeys.catalogue import write_catalogue
        from shared.journeys.compiler import (
            DELIVER_ARN_PLACEHOLDER,
            JOURNEY_STEPS_ARN_PLACEHOLDER,
            compile_journey,
        )

        sfn = boto3.client("stepfunctions", region_name=REGION)
        substitutions = {
            DELIVER_ARN_PLACEHOLDER: self._function_arns[self.topology.journey_task_function],
            JOURNEY_STEPS_ARN_PLACEHOLDER: self._function_arns[self.topology.journey_steps_function],
        }
        for journey in journeys:
            journey_id = journey.definition.id
            definition = json.dumps(compile_journey(journey))
            for placeholder, arn in substitutions.items():
                definition = definition.replace(placeholder, arn)
            if unresolved := _PLACEHOLDER.search(definition):
                raise ValueError(
                    f"journey {journey_id}: no function for {unresolved.group(0)} in this topology"
                )
            if journey_id not in self._state_machine_arns:
                self._state_machine_arns[journey_id] = sfn.create_state_machine(
                    name=state_machine_name(journey_id), definition=definition, roleArn=self._role_arn
                )["stateMachineArn"]
            elif self._definitions[journey_id] != definition:
                sfn.update_state_machine(
                    stateMachineArn=self._state_machine_arns[journey_id], definition=definition
                )
            self._definitions[journey_id] = definition
        self._journeys = {journey.definition.id: journey for journey in journeys}
        for journey in journeys:  # step ids: of every definition registered, old ones too
            ids = {step.id for step in journey.definition.walk()}
            self._step_ids[journey.definition.id] = self._step_ids.get(journey.definition.id, set()) | ids
        write_catalogue(
            journeys,
            {journey.definition.id: state_machine_name(journey.definition.id) for journey in journeys},
            self._env[JOURNEY_CATALOGUE_ENV],
        )

    # ---------------------------------------------------------------- the send policy

    def reload_policy(self, policy_file: Path | None = None) -> None:
        """Load the send policy of `policy_file` (by default the file the engine runs) again, as a
        redeploy does: the journeys are checked against it, and the deliver function reads it."""
        from shared import config
        from shared.journeys.loader import JourneyLoadError, policy_problems

        if policy_file is not None:
            self.policy_file = Path(policy_file)
        policy = self._write_policy()
        for journey in self._journeys.values():
            problems = policy_problems(journey, policy)
            if problems:
                raise JourneyLoadError(f"{journey.definition.id}: {'; '.join(problems)}")
        os.environ.update(self._env)
        config.reset()  # the handlers' settings are read again: they name the new file

    def _write_policy(self) -> Any:
        """Validate the policy file and write it as the JSON the deliver function reads (POLICY_FILE)."""
        from shared.delivery.policy import read_policy_yaml, write_policy

        assert self._catalogue_dir is not None
        policy = read_policy_yaml(self.policy_file)
        self._env[POLICY_FILE_ENV] = str(write_policy(policy, self._catalogue_dir / "policy.json"))
        return policy

    # ---------------------------------------------------------------- segments

    def reload_segments(self, segments_dir: Path | None = None) -> None:
        """Load the segments of `segments_dir` (by default the folder the engine runs) again, as a
        redeploy does, and write the catalogue the functions read."""
        from shared import config

        if segments_dir is not None:
            self.segments_dir = Path(segments_dir)
        self._write_segment_catalogue()
        self._write_ad_platform_credentials()
        os.environ.update(self._env)
        config.reset()  # the handlers' settings are read again: they name the new file

    def _write_segment_catalogue(self) -> None:
        """A new file each time (the catalogue is cached by path and mtime, which a rewrite within the
        file system's time resolution would not change). A missing folder is an empty catalogue."""
        from shared.segments.catalogue import SegmentCatalogue, load_segments, write_segment_catalogue

        assert self._catalogue_dir is not None
        catalogue = (
            load_segments(self.segments_dir)
            if self.segments_dir.is_dir()
            else SegmentCatalogue(segments=[], computed=[])
        )
        self._segment_catalogues += 1
        path = self._catalogue_dir / f"segments-{self._segment_catalogues}.json"
        write_segment_catalogue(catalogue, path)
        self._env[SEGMENT_CATALOGUE_ENV] = str(path)

    # ---------------------------------------------------------------- one-time schedules

    def _scheduler_backend(self) -> Any:
        from moto.scheduler.models import scheduler_backends

        return scheduler_backends[ACCOUNT][REGION]

    def _pending_schedules(self) -> list[tuple[datetime, Any]]:
        """Every one-time schedule (enabled) with when it fires, earliest first; read from moto's backend
        in-process under the request lock (moto has no firing of its own)."""
        assert self._requests_lock is not None
        with self._requests_lock.held():
            pending = [
                (due, schedule)
                for group in list(self._scheduler_backend().schedule_groups.values())
                for schedule in list(group.schedules.values())
                if schedule.state != "DISABLED"
                and (
                    due := _schedule_due(schedule.schedule_expression, schedule.schedule_expression_timezone)
                )
                is not None
            ]
        return sorted(pending, key=lambda p: (p[0], p[1].name))

    def next_schedule_due(self) -> datetime | None:
        pending = self._pending_schedules()
        return pending[0][0] if pending else None

    def _fire_due_schedules(self) -> None:
        """Invoke the target of every one-time schedule due by now, in time order, asynchronously as
        Scheduler does, with the schedule's Input; then delete it (ActionAfterCompletion DELETE; a
        one-time schedule never fires twice, so one without it is deleted too)."""
        assert self._requests_lock is not None
        now = self.clock.now()
        for due, schedule in self._pending_schedules():
            if due > now:
                break
            with self._requests_lock.held():
                group = self._scheduler_backend().schedule_groups.get(schedule.group_name)
                if group is None or group.schedules.get(schedule.name) is not schedule:
                    continue  # deleted or replaced meanwhile
                del group.schedules[schedule.name]
            target = schedule.target
            event = json.loads(target.get("Input") or "{}")
            self.schedules_fired.append({"name": schedule.name, "due": due, "input": event})
            if ":function:" in target["Arn"]:
                function = target["Arn"].rsplit(":function:", 1)[1].split(":", 1)[0]
                self.enqueue(function.removeprefix(f"{PREFIX}-"), event)
            else:
                log.warning(
                    "schedule %s targets %s, which the engine does not invoke", schedule.name, target["Arn"]
                )

    def _clear_schedules(self) -> None:
        assert self._requests_lock is not None
        with self._requests_lock.held():
            for group in self._scheduler_backend().schedule_groups.values():
                group.schedules.clear()
        self.schedules_fired.clear()

    def _write_ad_platform_credentials(self) -> None:
        """The ad platforms' credentials as the cloud holds them (a Secrets Manager secret per platform,
        here in moto), naming every audience of the segment catalogue; requests go to the recorder
        (AD_PLATFORMS=local). Called again after the catalogue changes (its audiences may have)."""
        import boto3

        from shared.segments.catalogue import load_segment_catalogue
        from shared.store import ad_platforms

        catalogue = load_segment_catalogue(self._env[SEGMENT_CATALOGUE_ENV])
        credentials = local_credentials((a.platform, a.audience) for a in catalogue.audiences())
        secrets = boto3.client("secretsmanager", region_name=REGION)
        for platform, variable in AD_PLATFORM_SECRET_ENVS.items():
            secret = json.dumps(credentials[platform])
            if variable in self._env:
                secrets.put_secret_value(SecretId=self._env[variable], SecretString=secret)
            else:
                name = f"{PREFIX}-{platform}-credentials"
                self._env[variable] = secrets.create_secret(Name=name, SecretString=secret)["ARN"]
        self._env[AD_PLATFORMS_ENV] = "local"
        ad_platforms.forget_credentials()

    def _install_handlers(self) -> None:
        from shared import clock, config
        from shared.identity.rules import load_rules
        from shared.store import ad_platforms, aws

        config.reset()
        aws.reset()
        # No real time passes between a platform's retries locally, as in Step Functions' retries here.
        ad_platforms.install(self.audiences, sleep=lambda seconds: None)
        load_rules.cache_clear()
        clock.install(self.clock.now)
        for function in self.topology.functions:
            self._handlers[function.name] = import_module(function.module).handler

    # ---------------------------------------------------------------- invoking functions

    def invoke(self, function_name: str, event: dict[str, Any]) -> Any:
        """Run a function's handler in-process with a Lambda-like context. Up to `concurrency`
        invocations of one function run at once, as Lambda runs concurrent instances; more wait."""
        spec = self.topology.function(function_name)
        with self._working(), self._instances[function_name]:
            context = _LambdaContext(spec.name, spec.timeout_seconds, spec.memory_mb)
            return self._handlers[function_name](copy.deepcopy(event), context)

    def enqueue(self, function_name: str, event: dict[str, Any]) -> None:
        """An asynchronous invocation (EventBridge target): run by the function's pool of workers."""
        self._begin()
        try:
            future = self._pools[function_name].submit(
                self._invoke_async, function_name, copy.deepcopy(event)
            )
        except RuntimeError:  # the engine is stopping: the pool takes no more work
            self._end()
            return
        future.add_done_callback(self._end_if_cancelled)

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        self._begin()
        try:
            yield
        finally:
            self._end()

    def _begin(self) -> None:
        with self._activity:
            self._in_flight += 1
            self._started += 1

    def _end(self) -> None:
        with self._activity:
            self._in_flight -= 1
            self._finished += 1

    def _end_if_cancelled(self, future: Future[None]) -> None:
        if future.cancelled():  # `stop` cancelled it before it ran, so it never ends itself
            self._end()

    def _busy(self) -> bool:
        with self._activity:
            return self._in_flight > 0

    def _invoke_async(self, function_name: str, event: dict[str, Any]) -> None:
        try:
            for attempt in range(1, ASYNC_ATTEMPTS + 1):
                try:
                    self.invoke(function_name, event)
                    return
                except Exception as error:
                    log.warning(
                        "%s failed (attempt %d/%d): %s", function_name, attempt, ASYNC_ATTEMPTS, error
                    )
                    last = f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=-3)}"
            with self.failures_lock:
                self.failures.append(Failure(function_name, last, event))
        finally:
            self._end()  # begun by `enqueue`

    def forget_erased(self, event: dict[str, Any]) -> None:
        """Erasure reaches the failure list (the local dead-letter queue): a `profile.erased` event
        removes the failures that name the erased profiles or any of the person's identifiers."""
        from shared.identity.erasure import ErasedPerson
        from shared.identity.rules import load_rules
        from shared.models.events import DETAIL_ERASED

        if event.get("detail-type") != DETAIL_ERASED:
            return
        person = ErasedPerson.model_validate(event["detail"]["data"]["detail"])
        rules = load_rules()
        with self.failures_lock:
            self.failures[:] = [f for f in self.failures if not person.named_in(f.event, rules)]

    def _consume(self, consumer: QueueConsumer) -> None:
        """One queue's event source: receive a batch whenever one of the function's instances is
        free, and hand batches to the function concurrently, as Lambda's SQS pollers do."""
        url = self._queue_urls[consumer.queue]
        arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        # A batch is received only when an instance can take it at once: a batch waiting in a queue
        # here could outlive its visibility timeout and be received twice.
        free = threading.BoundedSemaphore(self.concurrency)
        pool = self._pools[consumer.function]
        while not self._stopped.is_set():
            if not free.acquire(timeout=POLL_SECONDS):
                continue
            if not self._queue_holds_messages(url):
                # Nothing to receive: ReceiveMessage would only hold the request lock that every other
                # request waits for (an idle queue asked it fifty times a second).
                free.release()
                self._stopped.wait(POLL_SECONDS)
                continue
            try:
                received = self._sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=consumer.batch_size,
                    WaitTimeSeconds=0,
                    AttributeNames=["All"],
                ).get("Messages", [])
            except Exception:  # the poller must survive anything
                log.exception("receiving from %s failed", consumer.queue)
                received = []
            if not received:
                free.release()
                self._stopped.wait(POLL_SECONDS)
                continue
            self._begin()
            try:
                future = pool.submit(self._handle_batch, consumer, url, arn, received, free)
            except RuntimeError:  # stopping; the messages become visible again after their timeout
                free.release()
                self._end()
                continue
            future.add_done_callback(self._end_if_cancelled)

    def _handle_batch(
        self,
        consumer: QueueConsumer,
        url: str,
        arn: str,
        received: list[dict[str, Any]],
        free: threading.BoundedSemaphore,
    ) -> None:
        try:
            records = [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": REGION,
                }
                for m in received
            ]
            try:
                response = self.invoke(consumer.function, {"Records": records}) or {}
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            except Exception as error:
                log.warning("%s failed on a batch of %d: %s", consumer.function, len(records), error)
                failed = {m["MessageId"] for m in received}
            for message in received:
                if message["MessageId"] in failed:
                    # Back on the queue at once; after maxReceiveCount receives SQS dead-letters it.
                    self._sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    self._sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        except Exception:  # the worker must survive anything; undeleted messages come back
            log.exception("handling a batch from %s failed", consumer.queue)
        finally:
            free.release()
            self._end()  # begun by `_consume`

    # ---------------------------------------------------------------- time and idleness

    def _executions(self) -> list[Any]:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[ACCOUNT][REGION]
        return [
            execution for machine in list(backend.state_machines) for execution in list(machine.executions)
        ]

    def _running_executions(self) -> set[str]:
        return {e.exec_arn for e in self._executions() if getattr(e.exec_status, "value", None) == "RUNNING"}

    def _queue_holds_messages(self, url: str) -> bool:
        """Whether a queue holds any message (visible, in flight or delayed), read from moto's queue
        in-process: GetQueueAttributes computes every attribute of the queue each time, and idleness
        is checked every few milliseconds (it cost more than the work it waited for)."""
        from moto.sqs.models import sqs_backends

        queue = sqs_backends[ACCOUNT][REGION].queues.get(url.rsplit("/", 1)[1])
        return queue is None or bool(queue._messages)  # moto is pinned exactly; see pyproject.toml

    def _queues_empty(self) -> bool:
        return not any(self._queue_holds_messages(url) for url in self._queue_urls.values())

    def is_idle(self) -> bool:
        """Nothing left to do until virtual time moves: no pending or running invocation, no queued
        or in-flight message, and every running journey execution is waiting on the clock."""
        with self._activity:
            if self._in_flight:
                return False
            started = self._started
        if not (self._queues_empty() and self._running_executions() <= self.clock.waiting()):
            return False
        # Work that began meanwhile (a message received, an execution's task) may have left the
        # queues and executions as they looked: not idle unless nothing began at all.
        with self._activity:
            return self._in_flight == 0 and self._started == started

    def _progress(self) -> tuple[int, int, int]:
        """What changes while work advances: invocations (and batches, asynchronous invocations)
        begun, those finished, and the executions parked on the clock."""
        with self._activity:
            begun, finished = self._started, self._finished
        return begun, finished, len(self.clock.waiting())

    def wait_idle(
        self, timeout: float = IDLE_TIMEOUT_SECONDS, ceiling: float = SETTLE_CEILING_SECONDS
    ) -> None:
        """Wait until idle; give up when nothing has progressed for `timeout` seconds of real time.
        Counted from the last progress, not from the start: a settling that keeps working (1,000
        sends due at one instant take minutes) finishes, one that is stuck fails. One still working
        after `ceiling` seconds in all (work setting off more work for ever) fails too."""
        progress = self._progress()
        started = time.monotonic()
        deadline = started + timeout
        while not self.is_idle():
            now, current = time.monotonic(), self._progress()
            if now - started > ceiling:
                raise TimeoutError(
                    f"the local engine was still working after {ceiling:.0f}s: work setting off more"
                    " work without end?"
                )
            if current != progress:
                progress, deadline = current, now + timeout
            elif now > deadline:
                raise TimeoutError(
                    f"the local engine did not settle within {timeout:.0f}s (nothing progressed meanwhile)"
                )
            time.sleep(0.005)

    def advance(self, seconds: float) -> datetime:
        """Move virtual time on by `seconds`, running everything that falls due, in order."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self.wait_idle()
        target = self.clock.now() + timedelta(seconds=seconds)
        # Waits and one-time schedules, in one order: whichever falls due first runs first.
        while (due := self._next_due()) is not None and due <= target:
            self.clock.move_to(due)
            self._fire_due_schedules()
            self.wait_idle()
        self.clock.move_to(target)
        self.wait_idle()
        return self.clock.now()

    def _next_due(self) -> datetime | None:
        dues = [d for d in (self.clock.next_due(), self.next_schedule_due()) if d is not None]
        return min(dues) if dues else None

    # ---------------------------------------------------------------- reset

    def reset(self, start: datetime | None = None) -> None:
        """Forget all the engine holds (profiles, runs, messages, sources, queued messages, journey
        executions, failures, events seen) and set the clock to `start` (by default where it started),
        keeping the resources and the journeys as registered: a fresh engine in a fraction of the
        time `start` takes. What is running is stopped first."""
        import boto3
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        self._abort_executions()
        self.wait_idle()
        backend = stepfunctions_parser_backends[ACCOUNT][REGION]
        for machine in list(backend.state_machines):
            machine.executions.clear()
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for table in self.topology.tables:
            name = self._env[table_env(table.name)]
            dynamodb.delete_table(TableName=name)
            create_table(dynamodb, table, name)
        for url in [*self._queue_urls.values(), *self._dead_letter_urls]:
            # Received and deleted, not purged: SQS allows one PurgeQueue a minute per queue.
            while received := self._sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
                self._sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)
                    ],
                )
        self._clear_schedules()
        with self.failures_lock:
            self.failures.clear()
        self.bus_events.clear()
        self.audiences.reset()
        self.clock.reset(start or self._start)
        self.sources.add(new_source("default", self.write_key)[0])

    # ---------------------------------------------------------------- Step Functions events

    def _publish_status_change(self, execution: Any) -> None:
        """Put the `Step Functions Execution Status Change` event AWS sends when an execution ends
        (it sends it to the account's default bus; the topology's route for it is on the engine's
        bus, so it goes there). Dates are the virtual clock's, in epoch milliseconds as AWS sends them."""
        status = getattr(execution.exec_status, "value", execution.exec_status)
        now = self.clock.now()
        execution.stop_date = now
        detail = {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine_arn,
            "name": execution.name,
            "status": status,
            "startDate": _epoch_millis(execution.start_date),
            "stopDate": _epoch_millis(now),
            "input": json.dumps(execution.input_data, separators=(",", ":")),
            "inputDetails": {"included": True},
            "output": (
                json.dumps(execution.output, separators=(",", ":")) if status == "SUCCEEDED" else None
            ),
            "outputDetails": {"included": True} if status == "SUCCEEDED" else None,
            "error": execution.error,
            "cause": execution.cause,
        }
        response = self._events.put_events(
            Entries=[
                {
                    "Source": SOURCE_STATES,
                    "DetailType": DETAIL_EXECUTION_STATUS_CHANGE,
                    "Detail": json.dumps(detail),
                    "Resources": [execution.exec_arn],
                    "Time": now,
                    "EventBusName": self._env[EVENT_BUS_ENV],
                }
            ]
        )
        if response.get("FailedEntryCount"):
            log.error("the status change of an execution was not put on the bus: %s", response["Entries"])

    # ---------------------------------------------------------------- push endpoints

    def disable_push_token(self, token: str) -> str:
        """Disable the token's SNS endpoint (created if the token never received a push), as SNS does
        when FCM or APNs reports the token invalid: the next push to it fails with EndpointDisabled.
        Returns the endpoint's ARN."""
        sns = self._session_client("sns")
        application = self._env["PUSH_PLATFORM_APPLICATION_ARN"]
        endpoints = sns.list_endpoints_by_platform_application(PlatformApplicationArn=application)[
            "Endpoints"
        ]
        arn = next((e["EndpointArn"] for e in endpoints if e["Attributes"].get("Token") == token), None)
        if arn is None:
            arn = sns.create_platform_endpoint(PlatformApplicationArn=application, Token=token)["EndpointArn"]
        sns.set_endpoint_attributes(EndpointArn=arn, Attributes={"Enabled": "false"})
        return str(arn)

    # ---------------------------------------------------------------- inspection

    @property
    def sources(self) -> SourceStore:
        return SourceStore(self._env[table_env(SOURCES)])

    @staticmethod
    def _session_client(service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION)

    def message_log(self) -> list[dict[str, Any]]:
        from shared.store.messages import MessageLog

        entries = MessageLog(self._env[table_env("messages")]).scan()
        entries.sort(key=lambda e: (e.sentAt or e.createdAt, e.createdAt, e.messageKey))
        return [e.model_dump(exclude_none=True) for e in entries]

    def executions(self) -> list[dict[str, Any]]:
        """Every journey execution: which journey, for which profile, and how it stands."""
        journeys = {arn: journey for journey, arn in self._state_machine_arns.items()}
        listed = []
        for execution in self._executions():
            described = execution.to_describe_output()
            listed.append(
                {
                    "journey": journeys.get(described["stateMachineArn"], described["stateMachineArn"]),
                    "name": described["name"],
                    "executionArn": described["executionArn"],
                    "status": getattr(described["status"], "value", described["status"]),
                    "input": json.loads(described.get("input") or "{}"),
                    "error": described.get("error"),
                }
            )
        return listed

    def execution_path(self, execution_arn: str) -> list[str]:
        """The steps an execution entered, in order, by step id, from its history. States a step
        compiles to besides its own (a wait_until's Wait, a branch's Choice) are left out."""
        import boto3

        history = boto3.client("stepfunctions", region_name=REGION).get_execution_history(
            executionArn=execution_arn, maxResults=1000
        )["events"]
        entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
        journey = next(
            (
                j
                for j, arn in self._state_machine_arns.items()
                if execution_arn.split(":")[6] == arn.split(":")[6]
            ),
            None,
        )
        step_ids = self._step_ids.get(journey or "", set())
        return [name for name in entered if name in step_ids]

    def messages(self) -> list[dict[str, Any]]:
        """Messages handed to the email / push provider, in the order they were sent."""
        return [entry for entry in self.message_log() if entry["status"] == "sent"]
