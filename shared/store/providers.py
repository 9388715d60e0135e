"""The message providers: SES v2 for email, SNS platform endpoints for push."""

from __future__ import annotations

import json
from typing import Any

from shared.store.aws import client


class EmailProvider:
    def __init__(self, sender: str, sesv2: Any = None):
        self._sender = sender
        self._client = sesv2

    def send(
        self, to: str, subject: str, text: str, html: str | None, headers: dict[str, str] | None = None
    ) -> str:
        """`headers`: extra header fields (the gate's RFC 8058 List-Unsubscribe pair), sent as SES v2's
        `Content.Simple.Headers`."""
        body: dict[str, Any] = {"Text": {"Data": text, "Charset": "UTF-8"}}
        if html:
            body["Html"] = {"Data": html, "Charset": "UTF-8"}
        simple: dict[str, Any] = {"Subject": {"Data": subject, "Charset": "UTF-8"}, "Body": body}
        if headers:
            simple["Headers"] = [{"Name": name, "Value": value} for name, value in headers.items()]
        response = (self._client or client("sesv2")).send_email(
            FromEmailAddress=self._sender,
            Destination={"ToAddresses": [to]},
            Content={"Simple": simple},
        )
        message_id: str = response["MessageId"]
        return message_id


class PushProvider:
    def __init__(self, platform_application_arn: str, sns: Any = None):
        self._application = platform_application_arn
        self._client = sns

    def send(self, token: str, title: str, body: str) -> str:
        sns = self._client or client("sns")
        # CreatePlatformEndpoint is idempotent for the same token and attributes.
        endpoint = sns.create_platform_endpoint(PlatformApplicationArn=self._application, Token=token)
        notification = {"notification": {"title": title, "body": body}}
        message = {
            "default": body,
            "GCM": json.dumps(notification),
            "APNS": json.dumps({"aps": {"alert": {"title": title, "body": body}}}),
        }
        response = sns.publish(
            TargetArn=endpoint["EndpointArn"], Message=json.dumps(message), MessageStructure="json"
        )
        message_id: str = response["MessageId"]
        return message_id
