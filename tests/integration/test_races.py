"""The journey router and the channel functions called by many threads at once, on moto, as Lambda
runs them in the cloud: one journey run per customer, one provider call per message.

The handlers are called directly from the threads (not through `LocalEngine.invoke`, which may run
one invocation of a function at a time). moto applies a request's condition and its write without a
lock, so two threads could both pass one condition; DynamoDB applies each request atomically. The
`atomic_requests` fixture serializes each AWS request (one lock around moto's request dispatch) so
that the tests exercise the engine's logic against the services' real guarantee — no more.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
from moto.core.botocore_stubber import BotocoreStubber

from infra.local.engine import LocalEngine
from shared import clock
from shared.models.events import DETAIL_RESOLVED, SOURCE_IDENTITY, Envelope, ResolvedEvent
from shared.models.message import OutboundMessage
from shared.store.journeys import JourneyRunStore
from shared.store.messages import MessageLog
from shared.store.providers import EmailProvider, PushProvider
from tests.integration.conftest import LambdaContext, eventbridge_event, queued_message

MESSAGES_TABLE = "continuum-messages"


@pytest.fixture
def atomic_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    one_at_a_time = threading.RLock()
    dispatch = BotocoreStubber.__call__

    def atomically(self: BotocoreStubber, *args: Any, **kwargs: Any) -> Any:
        with one_at_a_time:
            return dispatch(self, *args, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", atomically)


def _in_parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


# -- the journey router ----------------------------------------------------------------------------


@pytest.fixture
def rendezvous(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    """Hold each router thread's first read of a profile's runs until all `parties` have read:
    concurrent routers then all decide from the same state, the interleaving that exposes a race."""
    barrier: list[threading.Barrier] = []
    met: set[int] = set()
    active = JourneyRunStore.active

    def rendezvous_active(store: JourneyRunStore, profile_id: str, journey_id: str) -> list[dict[str, str]]:
        found = active(store, profile_id, journey_id)
        routers = threading.current_thread() is not threading.main_thread()
        if barrier and routers and threading.get_ident() not in met:
            met.add(threading.get_ident())
            barrier[0].wait()
        return found

    monkeypatch.setattr(JourneyRunStore, "active", rendezvous_active)
    yield lambda parties: barrier.append(threading.Barrier(parties, timeout=60))
    barrier.clear()


def _product_added(profile_id: str) -> dict[str, Any]:
    message_id = f"race-{uuid.uuid4().hex}"
    resolved = ResolvedEvent(
        profileId=profile_id,
        event={
            "type": "track",
            "event": "Product Added",
            "messageId": message_id,
            "timestamp": clock.iso(clock.now()),
            "properties": {"name": "Trail running shoes"},
            "anonymousId": f"anon-{profile_id}",
        },
    )
    envelope = Envelope(
        name=DETAIL_RESOLVED,
        correlationId=message_id,
        time=clock.iso(clock.now()),
        data=resolved.model_dump(),
    )
    return eventbridge_event(DETAIL_RESOLVED, SOURCE_IDENTITY, envelope.model_dump())


@pytest.mark.usefixtures("atomic_requests")
def test_concurrent_add_to_carts_start_one_cart_journey_per_customer(
    engine: LocalEngine, rendezvous: Callable[[int], None]
) -> None:
    # Given six `Product Added` (different messageIds) for each of three customers, routed at once
    from functions.journey_router.handler import handler

    customers = [f"race-profile-{uuid.uuid4().hex[:12]}" for _ in range(3)]
    events = [_product_added(customer) for customer in customers for _ in range(6)]
    rendezvous(len(events))

    # When the router handles them all concurrently
    _in_parallel([partial(handler, event, LambdaContext("race", 30_000)) for event in events])

    # Then each customer has exactly one cart-abandonment execution
    for customer in customers:
        runs = [r for r in engine.executions() if r["input"].get("profileId") == customer]
        assert [r["journey"] for r in runs] == ["cart_abandonment"]
        assert [
            r["executionArn"]
            for r in JourneyRunStore("continuum-journey-runs").active(customer, "cart_abandonment")
        ] == [runs[0]["executionArn"]]


# -- the channel functions -------------------------------------------------------------------------


class GatedSends:
    """Records every provider call; each call waits until each delivery of the test has finished or
    reached the provider, so that concurrent deliveries all decide before any marks its message."""

    def __init__(self, deliveries: int) -> None:
        self.calls: list[str] = []
        self._deliveries = deliveries
        self._settled = 0
        self._current = threading.local()
        self._changed = threading.Condition()

    def begin(self) -> None:
        self._current.settled = False

    def reached_provider(self, to: str) -> None:
        with self._changed:
            self.calls.append(to)
            self.settle()
            self._changed.wait_for(lambda: self._settled >= self._deliveries, timeout=60)

    def settle(self) -> None:
        with self._changed:
            if not self._current.settled:
                self._current.settled = True
                self._settled += 1
                self._changed.notify_all()


def _sqs_record(message: OutboundMessage) -> dict[str, Any]:
    return {
        "messageId": uuid.uuid4().hex,  # each delivery of one queue message has its own receipt
        "receiptHandle": uuid.uuid4().hex,
        "body": message.model_dump_json(),
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:continuum-email",
        "awsRegion": "us-east-1",
    }


@pytest.mark.usefixtures("engine", "atomic_requests")
@pytest.mark.parametrize(
    ("channel", "provider", "module"),
    [
        ("email", EmailProvider, "functions.channel_email.handler"),
        ("push", PushProvider, "functions.channel_push.handler"),
    ],
)
def test_concurrent_deliveries_of_one_message_call_the_provider_once(
    channel: str, provider: Any, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given three queued messages, each delivered five times at once
    from importlib import import_module

    handler = import_module(module).handler
    addresses = [f"race-{i}@example.com" if channel == "email" else f"race-token-{i}" for i in range(3)]
    messages = [queued_message(to, channel) for to in addresses]
    deliveries = [_sqs_record(message) for message in messages for _ in range(5)]
    gate = GatedSends(len(deliveries))
    send = provider.send

    def recorded_send(self: Any, to: str, *args: Any) -> str:
        gate.reached_provider(to)
        result: str = send(self, to, *args)
        return result

    monkeypatch.setattr(provider, "send", recorded_send)

    def deliver(record: dict[str, Any]) -> list[str]:
        gate.begin()
        try:
            response = handler({"Records": [record]}, LambdaContext("race", 30_000))
            return [f["itemIdentifier"] for f in response["batchItemFailures"]]
        finally:
            gate.settle()

    # When the channel function handles every delivery concurrently
    failed = _in_parallel([partial(deliver, record) for record in deliveries])

    # Then the provider was called once per message; the other deliveries asked to be retried
    assert sorted(gate.calls) == sorted(message.to for message in messages)
    assert sum(len(f) for f in failed) == len(deliveries) - len(messages)
    for message in messages:
        entry = MessageLog(MESSAGES_TABLE).get(message.messageKey)
        assert entry is not None and entry.status == "sent" and entry.providerMessageId
