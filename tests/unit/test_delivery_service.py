"""A send step from decision to channel queue, and a channel's send (shared/delivery/service.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest

from infra.topology import TOPOLOGY
from shared import clock
from shared.delivery.consumer import LEASE_MARGIN
from shared.delivery.service import (
    LeaseLostError,
    MessageLeasedError,
    UnknownMessageError,
    answer_step,
    handle_outbound,
    handle_send,
)
from shared.models.message import MessageLogEntry, OutboundMessage, SendRequest
from shared.models.profile import Identifier
from tests.policies import PERMISSIVE
from tests.unit.fakes import (
    FakeGateStore,
    FakeJourneyStats,
    FakeMessageLog,
    FakeQueue,
    FakeSegmentStates,
    FakeTaskTokens,
)

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:cart_abandonment:run-1"
STEP = "02 send email cart-reminder"
KEY = f"{EXECUTION}#{STEP}"
NO_SEGMENTS = FakeSegmentStates()  # no profile has a segment state

pytestmark = pytest.mark.usefixtures("fixed_clock")


def _request(**overrides: Any) -> SendRequest:
    fields: dict[str, Any] = {
        "journey": "cart_abandonment",
        "goal": "Order Completed",
        "step": STEP,
        "channel": "email",
        "template": "cart-reminder",
        "content": {
            "subject": '{{ trigger.properties.name | default: "Your cart" }} is waiting',
            "text": "Hi",
        },
        "profileId": "p-1",
        "enteredAt": "2024-05-01T10:00:00.000Z",
        "trigger": {"event": "Product Added", "properties": {"name": "Red shoes"}},
        "executionId": EXECUTION,
    }
    return SendRequest.model_validate({**fields, **overrides})


@pytest.fixture
def stats() -> FakeJourneyStats:
    return FakeJourneyStats()


@pytest.fixture
def profiles() -> FakeGateStore:
    store = FakeGateStore()
    store.seed(
        "p-1",
        Identifier(type="user_id", value="u-1"),
        Identifier(type="email", value="ada@example.com"),
        created_at="2024-04-01T00:00:00.000Z",
    )
    return store


@pytest.fixture
def log() -> FakeMessageLog:
    return FakeMessageLog()


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()


def _entry(status: str, **overrides: Any) -> MessageLogEntry:
    fields: dict[str, Any] = {
        "messageKey": KEY,
        "status": status,
        "channel": "email",
        "to": "first@example.com",
        "journey": "cart_abandonment",
        "step": STEP,
        "template": "cart-reminder",
        "profileId": "p-1",
        "userId": "u-1",
        "createdAt": "2024-05-01T11:00:00.000Z",
        "content": {"subject": "Red shoes is waiting", "text": "Hi"},
    }
    return MessageLogEntry.model_validate({**fields, **overrides})


# -- answer_step: the send step's task token ------------------------------------------------------

TOKEN = "token-1"


@pytest.mark.parametrize("status", ["queued", "sent", "dropped"])
def test_every_outcome_but_a_deferral_resumes_the_run(status: str) -> None:
    tokens = FakeTaskTokens()

    assert answer_step(TOKEN, _entry(status), tokens) is True

    assert tokens.resumed == [TOKEN] and tokens.failed == []


def test_a_deferral_fails_the_token_with_the_deferred_error_and_the_instant_it_names() -> None:
    tokens = FakeTaskTokens()
    deferred = _entry("deferred", to=None, content=None, deferredUntil="2024-05-02T06:00:00.000Z")

    assert answer_step(TOKEN, deferred, tokens) is True

    assert tokens.failed == [(TOKEN, "Continuum.Deferred", "2024-05-02T06:00:00.000Z")]
    assert tokens.resumed == []


def test_a_token_answered_already_is_reported_not_raised() -> None:
    # A retried invocation answers again; a run stopped meanwhile (an exit) has no task to answer.
    tokens = FakeTaskTokens()
    answer_step(TOKEN, _entry("queued"), tokens)

    assert answer_step(TOKEN, _entry("queued"), tokens) is False
    assert answer_step(TOKEN, _entry("deferred", deferredUntil="2024-05-02T06:00:00.000Z"), tokens) is False


def test_an_answer_that_fails_otherwise_raises_so_the_step_is_retried() -> None:
    class Unreachable(FakeTaskTokens):
        def resume(self, token: str) -> bool:
            raise ConnectionError("Step Functions unreachable")

    with pytest.raises(ConnectionError):
        answer_step(TOKEN, _entry("queued"), Unreachable())


# -- handle_send -----------------------------------------------------------------------------------


def test_a_queued_send_counts_as_sent_for_its_step_once(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)
    handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)  # the step retried

    assert stats.counters == {"cart_abandonment": {f"step#{STEP}#sent": 1}}


def test_a_dropped_send_counts_as_dropped_with_its_reason_once(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    profiles.docs["p-1"].traits["unsubscribed"] = True

    handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)
    handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert stats.counters == {"cart_abandonment": {f"step#{STEP}#dropped#unsubscribed": 1}}


def test_a_retried_step_whose_entry_was_recorded_before_counts_nothing(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    log.entries[KEY] = _entry("queued")

    handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert stats.counters == {}


def test_a_dropped_send_is_logged_with_its_reason(
    log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    entry = handle_send(
        _request(profileId="p-unknown"), FakeGateStore(), log, queue, stats, NO_SEGMENTS, PERMISSIVE
    )

    assert entry.status == "dropped"
    assert entry.reason == "profile_not_found"
    assert log.entries[KEY] == entry
    assert entry.to is None and entry.content is None


def test_a_dropped_send_enqueues_nothing(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    profiles.docs["p-1"].traits["unsubscribed"] = True

    entry = handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert entry.reason == "unsubscribed"
    assert queue.messages == []


def test_a_passing_send_is_logged_as_queued(
    profiles: FakeGateStore,
    log: FakeMessageLog,
    queue: FakeQueue,
    fixed_clock: datetime,
    stats: FakeJourneyStats,
) -> None:
    entry = handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert log.entries[KEY].status == "queued"
    assert entry.messageKey == KEY
    assert entry.to == "ada@example.com"
    assert entry.userId == "u-1"
    assert entry.content == {"subject": "Red shoes is waiting", "text": "Hi"}
    assert entry.createdAt == clock.iso(fixed_clock)


def test_a_passing_send_is_enqueued_once_with_everything_the_channel_needs(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert queue.messages == [
        OutboundMessage(
            messageKey=KEY,
            channel="email",
            to="ada@example.com",
            content={"subject": "Red shoes is waiting", "text": "Hi"},
            journey="cart_abandonment",
            template="cart-reminder",
            profileId="p-1",
            userId="u-1",
        )
    ]


def test_a_template_renders_the_profiles_computed_traits(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    segments = FakeSegmentStates()
    segments.put("p-1", ["vip"], lifetime_revenue=742.5, orders_count=4)
    content = {
        "subject": "{{ computed.orders_count }} orders",
        "text": "You spent {{ computed.lifetime_revenue }};"
        ' last {{ computed.last_order_at | default: "a while ago" }}',
    }

    entry = handle_send(_request(content=content), profiles, log, queue, stats, segments, PERMISSIVE)

    assert entry.content == {"subject": "4 orders", "text": "You spent 742.5; last a while ago"}
    assert segments.reads == ["p-1"]


def test_a_template_reading_no_computed_trait_reads_no_segment_state(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    segments = FakeSegmentStates()
    segments.put("p-1", lifetime_revenue=742.5)

    handle_send(_request(), profiles, log, queue, stats, segments, PERMISSIVE)

    assert segments.reads == []


def test_computed_traits_of_a_profile_without_segment_state_render_their_default(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    content = {"subject": 'Spent {{ computed.lifetime_revenue | default: "nothing yet" }}', "text": "Hi"}

    entry = handle_send(_request(content=content), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert entry.content == {"subject": "Spent nothing yet", "text": "Hi"}


def test_a_send_to_a_merged_profile_id_is_logged_under_the_survivor(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    profiles.seed("p-0", created_at="2024-04-02T00:00:00.000Z", mergedInto="p-1")

    entry = handle_send(_request(profileId="p-0"), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert entry.profileId == "p-1"
    assert queue.messages[0].to == "ada@example.com"


def test_a_retried_step_already_sent_enqueues_nothing(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    log.entries[KEY] = _entry("sent", sentAt="2024-05-01T11:00:01.000Z", providerMessageId="ses-1")

    entry = handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert queue.messages == []
    assert entry.status == "sent"
    assert log.entries[KEY].providerMessageId == "ses-1"


def test_a_retried_step_keeps_its_first_drop_even_if_the_profile_changed(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    log.entries[KEY] = _entry("dropped", reason="no_email_address", to=None, content=None)

    entry = handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert (entry.status, entry.reason) == ("dropped", "no_email_address")
    assert queue.messages == []


def test_a_retried_step_twice_in_a_row_enqueues_once_then_stops_after_the_send(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)
    handle_outbound(
        queue.messages[0], log, lambda message: "ses-1", holder="d-1", lease_until=clock.now() + LEASE
    )

    handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert len(queue.messages) == 1


def test_a_retried_step_still_queued_is_enqueued_again_as_first_decided(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    # The first attempt logged the entry but may have died before enqueueing: the channel dedupes.
    log.entries[KEY] = _entry("queued")

    entry = handle_send(_request(), profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert entry.status == "queued"
    assert [(m.messageKey, m.to, m.content) for m in queue.messages] == [
        (KEY, "first@example.com", {"subject": "Red shoes is waiting", "text": "Hi"})
    ]


# -- handle_outbound -------------------------------------------------------------------------------


def _outbound() -> OutboundMessage:
    return OutboundMessage(
        messageKey=KEY,
        channel="email",
        to="ada@example.com",
        content={"subject": "Red shoes is waiting", "text": "Hi"},
        journey="cart_abandonment",
        template="cart-reminder",
        profileId="p-1",
    )


LEASE = timedelta(seconds=35)


def _deliver(log: FakeMessageLog, provider: Any, holder: str = "delivery-1") -> bool:
    return handle_outbound(_outbound(), log, provider, holder=holder, lease_until=clock.now() + LEASE)


def test_an_outbound_message_already_sent_is_not_sent_again(log: FakeMessageLog) -> None:
    log.entries[KEY] = _entry("sent", sentAt="2024-05-01T11:00:01.000Z", providerMessageId="ses-1")
    sent: list[OutboundMessage] = []

    def provider(message: OutboundMessage) -> str:
        sent.append(message)
        return "ses-2"

    assert _deliver(log, provider) is False
    assert sent == []
    assert log.entries[KEY].providerMessageId == "ses-1"


def test_a_queued_outbound_message_is_sent_and_marked_with_the_provider_id(
    log: FakeMessageLog, fixed_clock: datetime
) -> None:
    log.entries[KEY] = _entry("queued")
    sent: list[OutboundMessage] = []

    def provider(message: OutboundMessage) -> str:
        sent.append(message)
        return "ses-42"

    assert _deliver(log, provider) is True
    assert sent == [_outbound()]
    marked = log.entries[KEY]
    assert (marked.status, marked.providerMessageId, marked.sentAt) == (
        "sent",
        "ses-42",
        clock.iso(fixed_clock),
    )
    assert log.leases == {}


def test_a_provider_failure_leaves_the_message_unsent_and_unleased_for_the_retry(
    log: FakeMessageLog,
) -> None:
    log.entries[KEY] = _entry("queued")

    def failing(message: OutboundMessage) -> str:
        raise ConnectionError("provider down")

    with pytest.raises(ConnectionError):
        _deliver(log, failing)

    assert log.entries[KEY].status == "queued"
    assert _deliver(log, lambda message: "ses-2", holder="delivery-2") is True


# -- concurrent deliveries of one message ---------------------------------------------------------


class GatedProvider:
    """A provider whose sends wait until each of the test's deliveries has finished or reached the
    provider: concurrent deliveries then all decide before any of them marks the message sent.
    Each delivery calls `begin` first and `settle` when it ends."""

    def __init__(self, deliveries: int) -> None:
        self.calls: list[str] = []
        self._deliveries = deliveries
        self._settled = 0
        self._current = threading.local()  # whether this thread's delivery has settled
        self._changed = threading.Condition()

    def begin(self) -> None:
        self._current.settled = False

    def send(self, message: OutboundMessage) -> str:
        with self._changed:
            self.calls.append(message.messageKey)
            self.settle()
            self._changed.wait_for(lambda: self._settled >= self._deliveries, timeout=30)
            return f"ses-{len(self.calls)}"

    def settle(self) -> None:
        with self._changed:
            if not self._current.settled:
                self._current.settled = True
                self._settled += 1
                self._changed.notify_all()


def test_concurrent_deliveries_of_one_message_call_the_provider_once(log: FakeMessageLog) -> None:
    # Given one queued message delivered eight times at once (SQS at least once, a retried step)
    log.entries[KEY] = _entry("queued")
    provider = GatedProvider(deliveries=8)

    def deliver(holder: str) -> str:
        provider.begin()
        try:
            return "sent" if _deliver(log, provider.send, holder=holder) else "acknowledged"
        except MessageLeasedError:
            return "retry later"
        finally:
            provider.settle()

    # When they run together
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(deliver, [f"delivery-{i}" for i in range(8)]))

    # Then the provider is called once; the others do not send, and ask to be retried
    assert provider.calls == [KEY]
    assert sorted(outcomes) == ["retry later"] * 7 + ["sent"]
    assert log.entries[KEY].status == "sent"


def test_a_delivery_after_the_send_acknowledges_without_sending(log: FakeMessageLog) -> None:
    log.entries[KEY] = _entry("queued")
    _deliver(log, lambda message: "ses-1")

    assert _deliver(log, lambda message: "ses-2", holder="delivery-2") is False
    assert log.entries[KEY].providerMessageId == "ses-1"


def test_a_message_whose_holder_died_is_sent_once_its_lease_has_expired(
    log: FakeMessageLog, fixed_clock: datetime
) -> None:
    # Given a delivery that took the lease and died before sending
    log.entries[KEY] = _entry("queued")
    assert log.lease(KEY, "dead", clock.iso(fixed_clock), clock.iso(fixed_clock + LEASE))
    with pytest.raises(MessageLeasedError):
        _deliver(log, lambda message: "ses-early", holder="too-early")

    # When it is delivered again after the lease expired
    clock.install(lambda: fixed_clock + LEASE)
    sent = _deliver(log, lambda message: "ses-2", holder="delivery-2")

    # Then this delivery sends it
    assert sent is True
    assert log.entries[KEY].providerMessageId == "ses-2"


def test_a_send_after_the_lease_was_taken_over_is_reported(
    log: FakeMessageLog, fixed_clock: datetime
) -> None:
    log.entries[KEY] = _entry("queued")

    def slow(message: OutboundMessage) -> str:
        # Meanwhile the lease expired and another delivery took it.
        later = fixed_clock + LEASE
        assert log.lease(KEY, "delivery-2", clock.iso(later), clock.iso(later + LEASE))
        return "ses-1"

    with pytest.raises(LeaseLostError):
        _deliver(log, slow)
    assert log.entries[KEY].status == "queued"


def test_a_message_missing_from_the_log_is_not_sent(log: FakeMessageLog) -> None:
    sent: list[OutboundMessage] = []

    with pytest.raises(UnknownMessageError):
        _deliver(log, sent.append)

    assert sent == []


def test_a_channel_lease_expires_before_its_queue_delivers_the_message_again() -> None:
    # A lease lasts the rest of the invocation plus a margin; a dead holder's must have expired when
    # the visibility timeout returns the message, or the retries would end in the dead-letter queue.
    for consumer in TOPOLOGY.consumers:
        function = TOPOLOGY.function(consumer.function)
        longest_lease = timedelta(seconds=function.timeout_seconds) + LEASE_MARGIN

        assert longest_lease < timedelta(seconds=TOPOLOGY.visibility_timeout_seconds(consumer.queue))


def test_a_send_renders_its_layout_and_partials_from_the_request(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    request = _request(
        content={"subject": "Hi", "text": "Body"},
        layout={"text": '{{ content }}\n{% render "footer.txt" %}'},
        partials={"footer.txt": "-- the shop"},
    )

    entry = handle_send(request, profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert entry.content == {"subject": "Hi", "text": "Body\n-- the shop"}


def test_a_template_naming_a_variable_the_profile_lacks_is_dropped_as_render_failed(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    request = _request(content={"subject": "Hi {{ profile.traits.firstNmae }}", "text": "Hi"})

    entry = handle_send(request, profiles, log, queue, stats, NO_SEGMENTS, PERMISSIVE)

    assert (entry.status, entry.reason) == ("dropped", "render_failed")
    assert queue.messages == []


def test_a_computed_trait_read_only_by_the_layout_is_fetched(
    profiles: FakeGateStore, log: FakeMessageLog, queue: FakeQueue, stats: FakeJourneyStats
) -> None:
    segments = FakeSegmentStates()
    segments.put("p-1", orders_count=4)
    request = _request(
        content={"subject": "Hi", "text": "Body"},
        layout={"text": '{{ content }} ({% render "orders" %})'},
        partials={"orders": "{{ computed.orders_count }} orders"},
    )

    entry = handle_send(request, profiles, log, queue, stats, segments, PERMISSIVE)

    assert entry.content == {"subject": "Hi", "text": "Body (4 orders)"}
    assert segments.reads == ["p-1"]


def test_a_providers_failure_is_logged_without_the_address_it_names(
    log: FakeMessageLog, caplog: pytest.LogCaptureFixture
) -> None:
    from aws_lambda_powertools import Metrics
    from botocore.exceptions import ClientError

    from shared.delivery.consumer import consume

    log.entries[KEY] = _entry("queued")

    def provider(message: OutboundMessage) -> str:
        # SES's sandbox refusal names the recipient in its message.
        error = {"Code": "MessageRejected", "Message": f"identities failed the check: {message.to}"}
        raise ClientError({"Error": error}, "SendEmail")

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 30_000

    record = {"messageId": "sqs-1", "body": _outbound().model_dump_json()}
    answer = consume({"Records": [record]}, Context(), log, provider, Metrics(namespace="Test"))

    assert answer == {"batchItemFailures": [{"itemIdentifier": "sqs-1"}]}
    [failed] = [r for r in caplog.records if r.getMessage() == "message failed"]
    assert (failed.error, failed.code) == ("ClientError", "MessageRejected")  # type: ignore[attr-defined]
    assert failed.exc_info is None  # no traceback: it would end in the error's text
    assert "ada@example.com" not in caplog.text
