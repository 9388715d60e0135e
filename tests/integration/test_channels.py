"""Channel functions against moto SES / SNS / SQS: partial batch failures and dead-lettering."""

from __future__ import annotations

import os
import uuid

import pytest

from infra.local.engine import LocalEngine
from shared.store.messages import MessageLog
from tests.integration.conftest import client, queued_message


def _record(body: str) -> dict:
    return {
        "messageId": uuid.uuid4().hex,
        "receiptHandle": "r",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


def test_a_bad_record_is_reported_as_a_batch_item_failure_and_the_good_one_is_sent(
    engine: LocalEngine,
) -> None:
    good = queued_message("good@example.com")
    good_record, bad_record = _record(good.model_dump_json()), _record("{not json")

    response = engine.invoke("channel-email", {"Records": [good_record, bad_record]})

    assert response == {"batchItemFailures": [{"itemIdentifier": bad_record["messageId"]}]}
    entry = MessageLog("continuum-messages").get(good.messageKey)
    assert entry is not None and entry.status == "sent" and entry.providerMessageId


def test_a_redelivered_message_is_not_sent_twice(engine: LocalEngine) -> None:
    message = queued_message("twice@example.com")
    engine.invoke("channel-email", {"Records": [_record(message.model_dump_json())]})
    first = MessageLog("continuum-messages").get(message.messageKey)

    engine.invoke("channel-email", {"Records": [_record(message.model_dump_json())]})

    assert MessageLog("continuum-messages").get(message.messageKey) == first


def test_a_push_goes_to_the_devices_platform_endpoint(engine: LocalEngine) -> None:
    message = queued_message("device-token-xyz", channel="push")
    engine.invoke("channel-push", {"Records": [_record(message.model_dump_json())]})

    entry = MessageLog("continuum-messages").get(message.messageKey)
    assert entry is not None and entry.status == "sent"
    endpoints = client("sns").list_endpoints_by_platform_application(
        PlatformApplicationArn=os.environ["PUSH_PLATFORM_APPLICATION_ARN"]
    )["Endpoints"]
    assert "device-token-xyz" in [e["Attributes"]["Token"] for e in endpoints]


def test_a_message_that_always_fails_ends_in_the_dead_letter_queue(engine: LocalEngine) -> None:
    sqs = client("sqs")
    queue = sqs.get_queue_url(QueueName="continuum-email")["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName="continuum-email-dlq")["QueueUrl"]

    sqs.send_message(QueueUrl=queue, MessageBody="this is not a message")
    engine.wait_idle()

    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in dead] == ["this is not a message"]


def test_an_emails_headers_reach_the_provider(engine: LocalEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a queued email carrying the gate's List-Unsubscribe headers
    from shared.store.providers import EmailProvider

    headers = {"List-Unsubscribe": "<http://localhost/unsubscribe/t.s>", "List-Unsubscribe-Post": "x"}
    message = queued_message("headers@example.com").model_copy(update={"headers": headers})
    sent: list[object] = []
    original = EmailProvider.send

    def recorded(self: EmailProvider, *args: object) -> str:
        sent.append(args[-1])
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(EmailProvider, "send", recorded)
    # When the email channel sends it
    engine.invoke("channel-email", {"Records": [_record(message.model_dump_json())]})
    # Then the provider got them
    assert sent == [headers]
