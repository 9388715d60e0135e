"""Accepting calls: dedupe by source and messageId, publish, remember what was published
(shared/ingest/service.py)."""

from __future__ import annotations

import ast
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.ingest.calls import parse, to_bus_events
from shared.ingest.service import RESERVATION_SECONDS, Accepted, InFlightError, accept, dedupe_key
from shared.models.events import BusEvent, PublishError
from tests.unit.fakes import FakePublisher, FakeSeenMessages

SOURCE = "src_web"
OTHER_SOURCE = "src_app"
WINDOW = 86400
RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def events(*message_ids: str, source: str = SOURCE) -> list[BusEvent]:
    batch = [{"type": "track", "userId": "u-1", "event": "A", "messageId": m} for m in message_ids]
    calls, _ = parse("batch", json.dumps({"batch": batch}))
    return to_bus_events(calls, source, RECEIVED)


def keys(*message_ids: str, source: str = SOURCE) -> set[str]:
    return {dedupe_key(source, m) for m in message_ids}


@pytest.fixture
def seen() -> FakeSeenMessages:
    return FakeSeenMessages()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


def test_the_dedupe_key_is_the_source_and_the_message_id() -> None:
    assert dedupe_key("src_web", "ajs-1") == "src_web#ajs-1"


def test_new_calls_are_all_published_and_confirmed(seen: FakeSeenMessages, publisher: FakePublisher) -> None:
    accepted = accept(events("m-1", "m-2", "m-3"), SOURCE, seen, publisher, WINDOW)

    assert accepted == Accepted(published=3, duplicates=0)
    assert publisher.message_ids() == ["m-1", "m-2", "m-3"]
    assert set(seen.confirmed) == keys("m-1", "m-2", "m-3")


def test_calls_are_reserved_before_publishing_and_confirmed_after(
    seen: FakeSeenMessages, publisher: FakePublisher
) -> None:
    accept(events("m-1", "m-2"), SOURCE, seen, publisher, WINDOW)

    assert seen.journal == [
        ("reserve", ["src_web#m-1", "src_web#m-2"]),
        ("confirm", ["src_web#m-1", "src_web#m-2"]),
    ]
    assert seen.pending == set()


def test_a_reservation_holds_longer_than_an_ingest_request_can_run() -> None:
    from infra.topology import TOPOLOGY

    [ingest] = [f for f in TOPOLOGY.functions if f.name == "ingest"]

    assert ingest.timeout_seconds < RESERVATION_SECONDS


def test_calls_are_confirmed_for_the_dedupe_window(seen: FakeSeenMessages, publisher: FakePublisher) -> None:
    accept(events("m-1"), SOURCE, seen, publisher, window_seconds=3600)

    assert seen.confirmed == {"src_web#m-1": 3600}


def test_a_call_seen_before_is_dropped(publisher: FakePublisher) -> None:
    # Given m-2 was accepted by an earlier request
    seen = FakeSeenMessages("src_web#m-2")

    # When a request carries it again
    accepted = accept(events("m-1", "m-2", "m-3"), SOURCE, seen, publisher, WINDOW)

    # Then only the others are published
    assert accepted == Accepted(published=2, duplicates=1)
    assert publisher.message_ids() == ["m-1", "m-3"]


def test_a_retried_request_publishes_nothing_twice(seen: FakeSeenMessages, publisher: FakePublisher) -> None:
    accept(events("m-1", "m-2"), SOURCE, seen, publisher, WINDOW)

    again = accept(events("m-1", "m-2"), SOURCE, seen, publisher, WINDOW)

    assert again == Accepted(published=0, duplicates=2)
    assert publisher.message_ids() == ["m-1", "m-2"]


def test_after_the_dedupe_window_a_message_id_is_accepted_again(
    seen: FakeSeenMessages, publisher: FakePublisher
) -> None:
    accept(events("m-1"), SOURCE, seen, publisher, window_seconds=3600)
    seen.now += 3600

    assert accept(events("m-1"), SOURCE, seen, publisher, 3600) == Accepted(published=1, duplicates=0)


def test_the_same_message_id_from_another_source_is_not_a_duplicate(publisher: FakePublisher) -> None:
    seen = FakeSeenMessages("src_web#m-1")

    accepted = accept(events("m-1", source=OTHER_SOURCE), OTHER_SOURCE, seen, publisher, WINDOW)

    assert accepted == Accepted(published=1, duplicates=0)
    assert "src_app#m-1" in seen.confirmed


def test_a_message_id_repeated_in_one_request_is_published_once(
    seen: FakeSeenMessages, publisher: FakePublisher
) -> None:
    accepted = accept(events("m-1", "m-2", "m-1", "m-1"), SOURCE, seen, publisher, WINDOW)

    assert accepted == Accepted(published=2, duplicates=2)
    assert publisher.message_ids() == ["m-1", "m-2"]
    assert seen.journal[0] == ("reserve", ["src_web#m-1", "src_web#m-2"])


def test_the_first_of_repeated_calls_is_the_one_published(
    seen: FakeSeenMessages, publisher: FakePublisher
) -> None:
    # Given two calls with one messageId, the second a different event
    first, second = events("m-1", "m-1")
    envelope = second.detail
    envelope.data["event"] = "B"
    second = BusEvent.of(second.source, second.detail_type, envelope)

    accept([first, second], SOURCE, seen, publisher, WINDOW)

    assert [e.detail.data["event"] for e in publisher.bus] == ["A"]


def test_a_failed_publish_confirms_what_reached_the_bus_and_releases_the_rest(
    seen: FakeSeenMessages,
) -> None:
    # Given a bus that loses the second of the calls it is given
    publisher = FakePublisher(failing={1})

    # When a request of three calls is accepted
    with pytest.raises(PublishError):
        accept(events("m-1", "m-2", "m-3"), SOURCE, seen, publisher, WINDOW)

    # Then the two published are confirmed, the lost one is released (not left reserved)
    assert set(seen.confirmed) == keys("m-1", "m-3")
    assert seen.pending == set()
    assert seen.journal[-1] == ("release", ["src_web#m-2"])


def test_after_a_failed_publish_the_clients_retry_publishes_what_was_lost(seen: FakeSeenMessages) -> None:
    publisher = FakePublisher(failing={1})
    with pytest.raises(PublishError):
        accept(events("m-1", "m-2", "m-3"), SOURCE, seen, publisher, WINDOW)
    publisher.failing = set()

    retried = accept(events("m-1", "m-2", "m-3"), SOURCE, seen, publisher, WINDOW)

    assert retried == Accepted(published=1, duplicates=2)
    assert publisher.message_ids() == ["m-1", "m-3", "m-2"]


def test_a_failed_publish_maps_positions_to_the_calls_actually_published(
    publisher: FakePublisher,
) -> None:
    # Given m-0 seen before, and m-1 repeated: the publisher is given [m-1, m-2, m-3]
    seen = FakeSeenMessages("src_web#m-0")
    publisher.failing = {1}

    # When the publisher loses its position 1 (m-2)
    with pytest.raises(PublishError):
        accept(events("m-0", "m-1", "m-1", "m-2", "m-3"), SOURCE, seen, publisher, WINDOW)

    # Then exactly m-1 and m-3 are newly confirmed
    assert [c.detail.correlationId for c in publisher.calls[0]] == ["m-1", "m-2", "m-3"]
    assert set(seen.confirmed) == keys("m-0", "m-1", "m-3")


def test_when_nothing_reached_the_bus_nothing_is_kept(seen: FakeSeenMessages) -> None:
    publisher = FakePublisher(failing={0, 1})

    with pytest.raises(PublishError) as caught:
        accept(events("m-1", "m-2"), SOURCE, seen, publisher, WINDOW)

    assert seen.items == {}
    assert caught.value.failed == 2


def test_an_unexpected_failure_while_publishing_releases_the_reservations(seen: FakeSeenMessages) -> None:
    class Crashing:
        def publish(self, events: Sequence[BusEvent]) -> None:
            raise ConnectionError("unreachable")

    with pytest.raises(ConnectionError):
        accept(events("m-1"), SOURCE, seen, Crashing(), WINDOW)

    assert seen.items == {}


def test_a_request_of_duplicates_only_publishes_no_event(publisher: FakePublisher) -> None:
    seen = FakeSeenMessages("src_web#m-1", "src_web#m-2")

    accepted = accept(events("m-1", "m-2"), SOURCE, seen, publisher, WINDOW)

    assert accepted == Accepted(published=0, duplicates=2)
    assert publisher.bus == []


# -- concurrent copies -------------------------------------------------------------------------------


def test_a_copy_arriving_while_another_request_publishes_it_is_not_published_and_asked_to_retry(
    seen: FakeSeenMessages,
) -> None:
    # Given a request that has reserved m-1 and is publishing it
    class CopyArrivesMeanwhile:
        def __init__(self) -> None:
            self.bus: list[str] = []
            self.copy_sent = False
            self.copy_outcome: Exception | None = None

        def publish(self, batch: Sequence[BusEvent]) -> None:
            if not self.copy_sent:
                self.copy_sent = True
                try:  # the copy, from another request, while this one is still publishing
                    accept(events("m-1"), SOURCE, seen, self, WINDOW)
                except InFlightError as error:
                    self.copy_outcome = error
            self.bus += [e.correlation_id for e in batch]

    publisher = CopyArrivesMeanwhile()

    accept(events("m-1"), SOURCE, seen, publisher, WINDOW)

    # Then the copy published nothing and was told to retry (503), the first request published once
    assert publisher.bus == ["m-1"]
    assert isinstance(publisher.copy_outcome, InFlightError)
    assert publisher.copy_outcome.status == 503


def test_a_copy_in_flight_elsewhere_does_not_hold_up_the_rest_of_the_request(
    publisher: FakePublisher,
) -> None:
    seen = FakeSeenMessages()
    seen.reserve(["src_web#m-2"], RESERVATION_SECONDS)  # another request is publishing m-2

    with pytest.raises(InFlightError):
        accept(events("m-1", "m-2"), SOURCE, seen, publisher, WINDOW)

    # m-1 is published and confirmed: the client's retry will find it a duplicate
    assert publisher.message_ids() == ["m-1"]
    assert "src_web#m-1" in seen.confirmed


def test_a_reservation_left_by_a_crashed_request_expires_and_the_retry_is_accepted(
    publisher: FakePublisher,
) -> None:
    # Given a request that reserved m-1 and crashed before confirming or releasing it
    seen = FakeSeenMessages()
    seen.reserve(["src_web#m-1"], RESERVATION_SECONDS)

    # When the client retries while the reservation holds, it is asked to retry later
    with pytest.raises(InFlightError):
        accept(events("m-1"), SOURCE, seen, publisher, WINDOW)
    assert publisher.bus == []

    # And once it has expired, the retry is published
    seen.now += RESERVATION_SECONDS
    assert accept(events("m-1"), SOURCE, seen, publisher, WINDOW) == Accepted(published=1, duplicates=0)
    assert publisher.message_ids() == ["m-1"]


def test_many_concurrent_copies_of_a_call_are_published_once() -> None:
    seen, publisher = FakeSeenMessages(), FakePublisher()
    outcomes: list[str] = []
    start = threading.Barrier(16)

    def send() -> None:
        start.wait()
        try:
            accepted = accept(events("m-1"), SOURCE, seen, publisher, WINDOW)
            outcomes.append("published" if accepted.published else "duplicate")
        except InFlightError:
            outcomes.append("retry")

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert publisher.message_ids() == ["m-1"]
    assert outcomes.count("published") == 1


def test_the_ingest_domain_imports_nothing_of_the_store() -> None:
    # The domain states its needs as ports; shared/store implements them (CONVENTIONS.md)
    domain = Path(__file__).parents[2] / "shared" / "ingest"
    imported = {
        (path.name, node.module or "")
        for path in domain.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
    }

    assert {(name, module) for name, module in imported if module.startswith("shared.store")} == set()
