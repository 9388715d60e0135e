"""Accepting calls: dedupe by source and messageId, publish, remember what was published
(shared/ingest/service.py)."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.ingest.calls import parse, to_bus_events
from shared.ingest.service import Accepted, accept, dedupe_key
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


def test_new_calls_are_all_published_and_remembered(seen: FakeSeenMessages, publisher: FakePublisher) -> None:
    accepted = accept(events("m-1", "m-2", "m-3"), SOURCE, seen, publisher, WINDOW)

    assert accepted == Accepted(published=3, duplicates=0)
    assert publisher.message_ids() == ["m-1", "m-2", "m-3"]
    assert set(seen.remembered) == keys("m-1", "m-2", "m-3")


def test_calls_are_remembered_for_the_dedupe_window(seen: FakeSeenMessages, publisher: FakePublisher) -> None:
    accept(events("m-1"), SOURCE, seen, publisher, window_seconds=3600)

    assert seen.remembered == {"src_web#m-1": 3600}


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


def test_the_same_message_id_from_another_source_is_not_a_duplicate(publisher: FakePublisher) -> None:
    seen = FakeSeenMessages("src_web#m-1")

    accepted = accept(events("m-1", source=OTHER_SOURCE), OTHER_SOURCE, seen, publisher, WINDOW)

    assert accepted == Accepted(published=1, duplicates=0)
    assert "src_app#m-1" in seen.remembered


def test_a_message_id_repeated_in_one_request_is_published_once(
    seen: FakeSeenMessages, publisher: FakePublisher
) -> None:
    accepted = accept(events("m-1", "m-2", "m-1", "m-1"), SOURCE, seen, publisher, WINDOW)

    assert accepted == Accepted(published=2, duplicates=2)
    assert publisher.message_ids() == ["m-1", "m-2"]
    assert seen.remember_calls == [["src_web#m-1", "src_web#m-2"]]


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


def test_only_the_calls_that_reached_the_bus_are_remembered_and_the_failure_is_raised(
    seen: FakeSeenMessages,
) -> None:
    # Given a bus that loses the second of the calls it is given
    publisher = FakePublisher(failing={1})

    # When a request of three calls is accepted
    with pytest.raises(PublishError):
        accept(events("m-1", "m-2", "m-3"), SOURCE, seen, publisher, WINDOW)

    # Then the two published are remembered, the lost one is not
    assert set(seen.remembered) == keys("m-1", "m-3")


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

    # Then exactly m-1 and m-3 are newly remembered
    assert [c.detail.correlationId for c in publisher.calls[0]] == ["m-1", "m-2", "m-3"]
    assert set(seen.remembered) == keys("m-0", "m-1", "m-3")


def test_when_nothing_reached_the_bus_nothing_is_remembered(seen: FakeSeenMessages) -> None:
    publisher = FakePublisher(failing={0, 1})

    with pytest.raises(PublishError) as caught:
        accept(events("m-1", "m-2"), SOURCE, seen, publisher, WINDOW)

    assert seen.remembered == {}
    assert caught.value.failed == 2


def test_a_request_of_duplicates_only_publishes_no_event(publisher: FakePublisher) -> None:
    seen = FakeSeenMessages("src_web#m-1", "src_web#m-2")

    accepted = accept(events("m-1", "m-2"), SOURCE, seen, publisher, WINDOW)

    assert accepted == Accepted(published=0, duplicates=2)
    assert publisher.bus == []


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
