"""The email provider hands SES v2 the message's headers (RFC 8058's List-Unsubscribe pair)."""

from __future__ import annotations

import boto3
from botocore.stub import ANY, Stubber

from shared.store.providers import EmailProvider

HEADERS = {
    "List-Unsubscribe": "<https://api.example.com/unsubscribe/abc.def>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def _sesv2() -> tuple[object, Stubber]:
    client = boto3.client("sesv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_the_headers_are_sent_as_ses_simple_content_headers() -> None:
    client, stubber = _sesv2()
    stubber.add_response(
        "send_email",
        {"MessageId": "m-1"},
        {
            "FromEmailAddress": "news@example.com",
            "Destination": {"ToAddresses": ["ada@example.com"]},
            "Content": {
                "Simple": {
                    "Subject": ANY,
                    "Body": ANY,
                    "Headers": [
                        {"Name": "List-Unsubscribe", "Value": HEADERS["List-Unsubscribe"]},
                        {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
                    ],
                }
            },
            "ConfigurationSetName": "continuum-email",
        },
    )
    with stubber:
        message_id = EmailProvider("news@example.com", "continuum-email", client).send(
            "ada@example.com", "Hi", "Hello", None, HEADERS
        )
    assert message_id == "m-1"
    stubber.assert_no_pending_responses()


def test_an_email_without_headers_sends_none() -> None:
    client, stubber = _sesv2()
    expected = {
        "FromEmailAddress": "news@example.com",
        "Destination": {"ToAddresses": ["ada@example.com"]},
        "Content": {"Simple": {"Subject": ANY, "Body": ANY}},
        "ConfigurationSetName": "continuum-email",
    }
    stubber.add_response("send_email", {"MessageId": "m-2"}, expected)
    with stubber:
        EmailProvider("news@example.com", "continuum-email", client).send(
            "ada@example.com", "Hi", "Hello", None
        )
    stubber.assert_no_pending_responses()
