"""Dedupe by reservation against moto's DynamoDB (shared/store/sources.py SeenMessageStore with
shared/ingest/service.py accept): concurrent copies of a messageId are published once."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from moto.dynamodb.models import DynamoDBBackend

from infra.local.engine import LocalEngine
from shared import clock
from shared.ingest.calls import parse, to_bus_events
from shared.ingest.service import RESERVATION_SECONDS, Claim, InFlightError, accept
from shared.ingest.sources import Source, hash_key
from shared.models.events import BusEvent
from shared.store.sources import SeenMessageStore, SourceStore
from tests.integration.conftest import client

TABLE = "continuum-seen-messages"
SOURCE = "src_dedupe"


@pytest.fixture
def atomic_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto applies a conditional write in several steps, not atomically across threads as DynamoDB
    does: here each PutItem is applied under one lock, as the service would apply it. (The local
    runtime is being made to apply every AWS request atomically; this keeps the test honest meanwhile.)"""
    lock = threading.Lock()
    put_item = DynamoDBBackend.put_item

    def atomic_put_item(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return put_item(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "put_item", atomic_put_item)


@pytest.fixture
def store(engine: LocalEngine) -> Iterator[SeenMessageStore]:
    yield SeenMessageStore(TABLE)


class CountingPublisher:
    def __init__(self) -> None:
        self.published: list[str] = []
        self._lock = threading.Lock()

    def publish(self, events: Sequence[BusEvent]) -> None:
        with self._lock:
            self.published += [event.correlation_id for event in events]


def _events(message_id: str) -> list[BusEvent]:
    calls, _ = parse("track", f'{{"userId": "u-1", "event": "A", "messageId": "{message_id}"}}')
    return to_bus_events(calls, SOURCE)


@pytest.mark.usefixtures("atomic_dynamodb")
def test_many_concurrent_copies_of_a_message_id_are_published_once(store: SeenMessageStore) -> None:
    publisher = CountingPublisher()
    outcomes: list[str] = []
    threads_count = 16
    start = threading.Barrier(threads_count)

    def send() -> None:
        start.wait()
        try:
            accepted = accept(_events("race-1"), SOURCE, store, publisher, 3600)
            outcomes.append("published" if accepted.published else "duplicate")
        except InFlightError:
            outcomes.append("retry")

    threads = [threading.Thread(target=send) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert publisher.published == ["race-1"]
    assert outcomes.count("published") == 1
    assert len(outcomes) == threads_count


def test_a_reservation_is_pending_for_others_until_confirmed(store: SeenMessageStore) -> None:
    key = f"{SOURCE}#pending-1"

    assert store.reserve([key], RESERVATION_SECONDS) == {key: Claim.RESERVED}
    assert store.reserve([key], RESERVATION_SECONDS) == {key: Claim.PENDING}

    store.confirm([key], 3600)

    assert store.reserve([key], RESERVATION_SECONDS) == {key: Claim.SEEN}


def test_a_released_reservation_can_be_taken_again(store: SeenMessageStore) -> None:
    key = f"{SOURCE}#released-1"
    store.reserve([key], RESERVATION_SECONDS)

    store.release([key])

    assert store.reserve([key], RESERVATION_SECONDS) == {key: Claim.RESERVED}


@pytest.mark.parametrize("state", ["pending", "seen"])
def test_an_expired_item_awaiting_ttl_deletion_can_be_reserved(store: SeenMessageStore, state: str) -> None:
    key = f"{SOURCE}#expired-{state}"
    past = str(int(clock.now().timestamp()) - 1)
    client("dynamodb").put_item(
        TableName=TABLE, Item={"dedupeKey": {"S": key}, "expiresAt": {"N": past}, "state": {"S": state}}
    )

    assert store.reserve([key], RESERVATION_SECONDS) == {key: Claim.RESERVED}


def test_an_item_written_before_reservations_existed_is_seen(store: SeenMessageStore) -> None:
    key = f"{SOURCE}#legacy-1"
    later = str(int(clock.now().timestamp()) + 3600)
    client("dynamodb").put_item(TableName=TABLE, Item={"dedupeKey": {"S": key}, "expiresAt": {"N": later}})

    assert store.reserve([key], RESERVATION_SECONDS) == {key: Claim.SEEN}


def test_a_batch_of_keys_is_reserved_side_by_side_each_once(store: SeenMessageStore) -> None:
    keys = [f"{SOURCE}#many-{i}" for i in range(60)]
    store.confirm(keys[:10], 3600)
    store.reserve(keys[10:20], RESERVATION_SECONDS)

    claims = store.reserve(keys, RESERVATION_SECONDS)

    assert [claims[k] for k in keys] == [Claim.SEEN] * 10 + [Claim.PENDING] * 10 + [Claim.RESERVED] * 40


def test_a_copy_sent_while_another_request_holds_it_is_answered_503_with_retry_after(
    engine: LocalEngine, store: SeenMessageStore
) -> None:
    # Given another request has reserved this source's m-held and not finished
    from tests.integration.conftest import WRITE_KEY, http_event

    [source] = [s for s in _sources() if s.keyHash == hash_key(WRITE_KEY)]
    store.reserve([f"{source.sourceId}#held-1"], RESERVATION_SECONDS)
    call = {"userId": "u-1", "event": "A", "messageId": "held-1"}

    # When a copy arrives
    response = engine.invoke("ingest", http_event("/v1/track", call))

    # Then it is answered 503 with Retry-After (the SDK retries), not acknowledged
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "1"
    # And once the holder releases it (its publish failed), the retry is accepted
    store.release([f"{source.sourceId}#held-1"])
    assert engine.invoke("ingest", http_event("/v1/track", call))["statusCode"] == 200


def _sources() -> list[Source]:
    import os

    return SourceStore(os.environ["SOURCES_TABLE"]).all()
