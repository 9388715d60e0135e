"""The one publisher: PutEvents in batches of 10, failed entries retried, nothing dropped silently
(shared/store/bus.py), against a scripted EventBridge client."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.backoff import backoff_delay
from shared.ingest.calls import MAX_CALL_BYTES, parse, to_bus_events
from shared.models.events import SOURCE_INGEST, BusEvent, Envelope, PublishError
from shared.store.bus import ATTEMPTS, BATCH, BATCH_BYTES, EventPublisher
from tests.unit.fakes import PUT_EVENTS_MAX_BYTES, FakeEventsClient, entry_size

BUS = "continuum-bus"
RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ALL = set(range(BATCH))


def events(count: int, padding: int = 0) -> list[BusEvent]:
    calls, _ = parse(
        "batch",
        json.dumps(
            {
                "batch": [
                    {
                        "type": "track",
                        "userId": "u-1",
                        "event": "A",
                        "messageId": f"m-{i}",
                        "properties": {"pad": "x" * padding},
                    }
                    for i in range(count)
                ]
            }
        ),
    )
    return to_bus_events(calls, "src_web", RECEIVED)


def publisher(client: FakeEventsClient) -> EventPublisher:
    return EventPublisher(BUS, events_client=client, backoff_seconds=0)


def message_ids(client: FakeEventsClient) -> list[str]:
    return [detail["correlationId"] for detail in client.details()]


def test_events_are_put_in_batches_of_ten_in_order() -> None:
    client = FakeEventsClient()

    publisher(client).publish(events(25))

    assert [len(call) for call in client.calls] == [10, 10, 5]
    assert message_ids(client) == [f"m-{i}" for i in range(25)]


def test_each_entry_names_the_bus_source_type_and_envelope() -> None:
    client = FakeEventsClient()
    [event] = events(1)

    publisher(client).publish([event])

    [[entry]] = client.calls
    assert entry["EventBusName"] == BUS
    assert (entry["Source"], entry["DetailType"]) == ("continuum.ingest", "segment.track")
    assert entry["Detail"] == event.detail_json
    assert json.loads(entry["Detail"]) == event.detail.model_dump()


def test_no_events_make_no_call() -> None:
    client = FakeEventsClient()

    publisher(client).publish([])

    assert client.calls == []


def test_failed_entries_are_retried_alone() -> None:
    # Given a bus that throttles the 2nd and 4th entries of the first call
    client = FakeEventsClient({1, 3})

    publisher(client).publish(events(5))

    assert [[json.loads(e["Detail"])["correlationId"] for e in call] for call in client.calls] == [
        ["m-0", "m-1", "m-2", "m-3", "m-4"],
        ["m-1", "m-3"],
    ]
    assert sorted(message_ids(client)) == [f"m-{i}" for i in range(5)]


def test_an_entry_still_failing_after_the_last_attempt_is_a_publish_error() -> None:
    # Given the 3rd entry fails on every attempt
    client = FakeEventsClient({2}, {0}, {0})

    with pytest.raises(PublishError) as caught:
        publisher(client).publish(events(4))

    assert len(client.calls) == ATTEMPTS
    assert caught.value.failed == 1
    assert caught.value.published == [0, 1, 3]
    assert "ThrottlingException" in str(caught.value)


def test_retried_entries_are_followed_by_their_position_in_each_retry() -> None:
    # Entries 0 and 2 fail; on the retry [0, 2] its 2nd (entry 2) fails; on the last [2] it fails again
    client = FakeEventsClient({0, 2}, {1}, {0})

    with pytest.raises(PublishError) as caught:
        publisher(client).publish(events(4))

    assert caught.value.published == [0, 1, 3]
    assert sorted(message_ids(client)) == ["m-0", "m-1", "m-3"]


def test_a_chunk_that_keeps_failing_does_not_stop_the_others() -> None:
    # Given 25 events, the second batch of ten failing on every attempt
    client = FakeEventsClient(set(), ALL, ALL, ALL)

    with pytest.raises(PublishError) as caught:
        publisher(client).publish(events(25))

    assert [len(call) for call in client.calls] == [10, 10, 10, 10, 5]
    assert caught.value.published == [*range(10), *range(20, 25)]
    assert caught.value.failed == 10
    assert message_ids(client) == [f"m-{i}" for i in (*range(10), *range(20, 25))]


def test_an_error_from_put_events_counts_as_a_failed_attempt() -> None:
    client = FakeEventsClient(ConnectionError("unreachable"))

    publisher(client).publish(events(3))

    assert [len(call) for call in client.calls] == [3, 3]
    assert message_ids(client) == ["m-0", "m-1", "m-2"]


def test_errors_on_every_attempt_are_a_publish_error_naming_them() -> None:
    client = FakeEventsClient(*[ConnectionError("unreachable")] * ATTEMPTS)

    with pytest.raises(PublishError, match="ConnectionError") as caught:
        publisher(client).publish(events(3))

    assert len(client.calls) == ATTEMPTS
    assert (caught.value.failed, caught.value.published) == (3, [])


def test_an_error_then_entry_failures_share_the_attempts() -> None:
    # An exception, then a partial failure, then the last attempt: three attempts in all
    client = FakeEventsClient(TimeoutError("slow"), {0}, {0})

    with pytest.raises(PublishError) as caught:
        publisher(client).publish(events(2))

    assert len(client.calls) == ATTEMPTS
    assert caught.value.published == [1]


def test_large_calls_are_put_within_the_put_events_size_limit() -> None:
    # Ten calls of ~30 KB, each within the per-call limit: ~300 KB together
    big = events(10, padding=MAX_CALL_BYTES - 2048)
    client = FakeEventsClient()

    publisher(client).publish(big)

    assert len(client.calls) > 1
    assert all(sum(entry_size(e) for e in call) <= PUT_EVENTS_MAX_BYTES for call in client.calls)
    assert message_ids(client) == [f"m-{i}" for i in range(10)]


def test_entries_filling_a_call_to_exactly_the_size_limit_share_it() -> None:
    # Given four events whose entries add up to exactly 256 KB
    size = BATCH_BYTES // 4
    four = [_sized(f"m-{i}", size) for i in range(4)]
    assert sum(e.entry_size for e in four) == BATCH_BYTES
    client = FakeEventsClient()

    # When they are published, then one call carries them all
    publisher(client).publish(four)

    assert [len(call) for call in client.calls] == [4]


def test_an_entry_one_byte_past_the_size_limit_goes_in_the_next_call() -> None:
    size = BATCH_BYTES // 4
    four = [_sized(f"m-{i}", size + (i == 3)) for i in range(4)]
    client = FakeEventsClient()

    publisher(client).publish(four)

    assert [len(call) for call in client.calls] == [3, 1]
    assert message_ids(client) == ["m-0", "m-1", "m-2", "m-3"]


def test_a_failed_entry_of_a_size_limited_call_is_named_by_its_position_in_all() -> None:
    # Given twelve events of ~30 KB: two PutEvents calls, cut by size
    big = events(12, padding=MAX_CALL_BYTES - 2048)
    first_call = _count_per_call(big)[0]
    # and a bus that keeps failing the first entry of the second call
    client = FakeEventsClient(set(), {0}, {0}, {0})

    with pytest.raises(PublishError) as caught:
        publisher(client).publish(big)

    assert caught.value.failed == 1
    assert caught.value.published == [i for i in range(12) if i != first_call]


# -- backoff between attempts ---------------------------------------------------------------------


class Sleeps:
    """The publisher's sleep, recorded instead of slept."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_retries_wait_longer_each_time_up_to_the_jitter_drawn() -> None:
    # Given a bus failing every attempt, and the jitter drawing its largest value
    client = FakeEventsClient(*[ConnectionError("unreachable")] * ATTEMPTS)
    sleeps = Sleeps()
    slow = EventPublisher(BUS, client, backoff_seconds=0.1, sleep=sleeps, draw=lambda: 1.0)

    with pytest.raises(PublishError):
        slow.publish(events(1))

    # Then it waits base × 2^attempt between attempts, and not after the last one
    assert sleeps.waits == [0.1 * 2**attempt for attempt in range(ATTEMPTS - 1)]


def test_the_wait_is_jittered_by_the_draw() -> None:
    client = FakeEventsClient({0}, {0})
    sleeps = Sleeps()
    EventPublisher(BUS, client, backoff_seconds=0.1, sleep=sleeps, draw=lambda: 0.25).publish(events(1))

    assert sleeps.waits == [0.025, 0.05]


def test_the_wait_is_capped() -> None:
    assert backoff_delay(attempt=30, base=0.05, cap=1.0, draw=lambda: 1.0) == 1.0
    assert backoff_delay(attempt=0, base=0.05, cap=1.0, draw=lambda: 0.5) == 0.025


def test_a_publish_that_succeeds_at_once_never_waits() -> None:
    sleeps = Sleeps()

    EventPublisher(BUS, FakeEventsClient(), sleep=sleeps).publish(events(25))

    assert sleeps.waits == []


# -- BusEvent --------------------------------------------------------------------------------------


def _sized(message_id: str, entry_bytes: int) -> BusEvent:
    """A BusEvent whose PutEvents entry is exactly `entry_bytes`."""
    envelope = Envelope(name="segment.track", correlationId=message_id, time="t", data={"pad": ""})
    overhead = BusEvent.of(SOURCE_INGEST, "segment.track", envelope).entry_size
    envelope.data["pad"] = "x" * (entry_bytes - overhead)
    return BusEvent.of(SOURCE_INGEST, "segment.track", envelope)


def _count_per_call(events: list[BusEvent]) -> list[int]:
    client = FakeEventsClient()
    publisher(client).publish(events)
    return [len(call) for call in client.calls]


def test_a_bus_event_of_an_envelope_carries_its_json_and_correlation_id() -> None:
    envelope = Envelope(name="segment.track", correlationId="m-1", time=RECEIVED.isoformat(), data={"a": 1})

    event = BusEvent.of(SOURCE_INGEST, "segment.track", envelope)

    assert (event.source, event.detail_type, event.correlation_id) == (SOURCE_INGEST, "segment.track", "m-1")
    assert event.detail == envelope


def test_the_entry_size_is_put_events_count_in_utf8_bytes() -> None:
    # PutEvents counts Source, DetailType and Detail in UTF-8, and 14 bytes for the Time
    envelope = Envelope(name="segment.track", correlationId="m-1", time="t", data={"name": "Zoë 東京"})
    event = BusEvent.of(SOURCE_INGEST, "segment.track", envelope)
    entry = {"Source": event.source, "DetailType": event.detail_type, "Detail": event.detail_json}

    assert event.entry_size == entry_size(entry) + 14
    assert event.entry_size > len(event.source) + len(event.detail_type) + len(event.detail_json) + 14
