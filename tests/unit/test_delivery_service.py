"""A send step from decision to channel queue, and a channel's send (shared/delivery/service.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from shared import clock
from shared.delivery.service import handle_outbound, handle_send
from shared.models.message import MessageLogEntry, OutboundMessage, SendRequest
from shared.models.profile import Identifier
from tests.unit.fakes import FakeMessageLog, FakeProfileStore, FakeQueue

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:cart_abandonment:run-1"
STEP = "02 send email cart-reminder"
KEY = f"{EXECUTION}#{STEP}"

pytestmark = pytest.mark.usefixtures("fixed_clock")


def _request(**overrides: Any) -> SendRequest:
    fields: dict[str, Any] = {
        "journey": "cart_abandonment",
        "goal": "Order Completed",
        "step": STEP,
        "channel": "email",
        "template": "cart-reminder",
        "content": {"subject": "{{ trigger.properties.name | Your cart }} is waiting", "text": "Hi"},
        "profileId": "p-1",
        "enteredAt": "2024-05-01T10:00:00.000Z",
        "trigger": {"event": "Product Added", "properties": {"name": "Red shoes"}},
        "executionId": EXECUTION,
    }
    return SendRequest.model_validate({**fields, **overrides})


@pytest.fixture
def profiles() -> FakeProfileStore:
    store = FakeProfileStore()
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


# -- handle_send -----------------------------------------------------------------------------------


def test_a_dropped_send_is_logged_with_its_reason(log: FakeMessageLog, queue: FakeQueue) -> None:
    entry = handle_send(_request(profileId="p-unknown"), FakeProfileStore(), log, queue)

    assert entry.status == "dropped"
    assert entry.reason == "profile_not_found"
    assert log.entries[KEY] == entry
    assert entry.to is None and entry.content is None


def test_a_dropped_send_enqueues_nothing(
    profiles: FakeProfileStore, log: FakeMessageLog, queue: FakeQueue
) -> None:
    profiles.docs["p-1"].traits["unsubscribed"] = True

    entry = handle_send(_request(), profiles, log, queue)

    assert entry.reason == "unsubscribed"
    assert queue.messages == []


def test_a_passing_send_is_logged_as_queued(
    profiles: FakeProfileStore, log: FakeMessageLog, queue: FakeQueue, fixed_clock: datetime
) -> None:
    entry = handle_send(_request(), profiles, log, queue)

    assert log.entries[KEY].status == "queued"
    assert entry.messageKey == KEY
    assert entry.to == "ada@example.com"
    assert entry.userId == "u-1"
    assert entry.content == {"subject": "Red shoes is waiting", "text": "Hi"}
    assert entry.createdAt == clock.iso(fixed_clock)


def test_a_passing_send_is_enqueued_once_with_everything_the_channel_needs(
    profiles: FakeProfileStore, log: FakeMessageLog, queue: FakeQueue
) -> None:
    handle_send(_request(), profiles, log, queue)

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


def test_a_send_to_a_merged_profile_id_is_logged_under_the_survivor(
    profiles: FakeProfileStore, log: FakeMessageLog, queue: FakeQueue
) -> None:
    profiles.seed("p-0", created_at="2024-04-02T00:00:00.000Z", mergedInto="p-1")

    entry = handle_send(_request(profileId="p-0"), profiles, log, queue)

    assert entry.profileId == "p-1"
    assert queue.messages[0].to == "ada@example.com"


def test_a_retried_step_already_sent_enqueues_nothing(
    profiles: FakeProfileStore, log: FakeMessageLog, queue: FakeQueue
) -> None:
    log.entries[KEY] = _entry("sent", sentAt="2024-05-01T11:00:01.000Z", providerMessageId="ses-1")

    entry = handle_send(_request(), profiles, log, queue)

    assert queue.messages == []
    assert entry.status == "sent"
    assert log.entries[KEY].providerMessageId == "ses-1"


def test_a_retried_step_keeps_its_first_drop_even_if_the_profile_changed(
    profiles: FakeProfileStore, log: FakeMessageLog, queue: FakeQueue
) -> None:
    log.entries[KEY] = _entry("dropped", reason="no_email_address", to=None, content=None)

    entry = handle_send(_request(), profiles, log, queue)

    assert (entry.status, entry.reason) == ("dropped", "no_email_address")
    assert queue.messages == []


def test_a_retried_step_twice_in_a_row_enqueues_once_then_stops_after_the_send(
    profiles: FakeProfileStore, log: FakeMessageLog, queue: FakeQueue
) -> None:
    handle_send(_request(), profiles, log, queue)
    handle_outbound(queue.messages[0], log, lambda message: "ses-1")

    handle_send(_request(), profiles, log, queue)

    assert len(queue.messages) == 1


def test_a_retried_step_still_queued_is_enqueued_again_as_first_decided(
    profiles: FakeProfileStore, log: FakeMessageLog, queue: FakeQueue
) -> None:
    # The first attempt logged the entry but may have died before enqueueing: the channel dedupes.
    log.entries[KEY] = _entry("queued")

    entry = handle_send(_request(), profiles, log, queue)

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


def test_an_outbound_message_already_sent_is_not_sent_again(log: FakeMessageLog) -> None:
    log.entries[KEY] = _entry("sent", sentAt="2024-05-01T11:00:01.000Z", providerMessageId="ses-1")
    sent: list[OutboundMessage] = []

    def provider(message: OutboundMessage) -> str:
        sent.append(message)
        return "ses-2"

    assert handle_outbound(_outbound(), log, provider) is False
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

    assert handle_outbound(_outbound(), log, provider) is True
    assert sent == [_outbound()]
    marked = log.entries[KEY]
    assert (marked.status, marked.providerMessageId, marked.sentAt) == (
        "sent",
        "ses-42",
        clock.iso(fixed_clock),
    )


def test_a_provider_failure_leaves_the_message_unsent_for_the_retry(log: FakeMessageLog) -> None:
    log.entries[KEY] = _entry("queued")

    def failing(message: OutboundMessage) -> str:
        raise ConnectionError("provider down")

    with pytest.raises(ConnectionError):
        handle_outbound(_outbound(), log, failing)

    assert log.entries[KEY].status == "queued"
