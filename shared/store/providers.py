"""The message providers: SES v2 for email, SNS platform endpoints for push."""

from __future__ import annotations

import json
from typing import Any

from shared.store.aws import client


class EmailProvider:
    def __init__(self, sender: str, configuration_set: str, sesv2: Any = None):
        self._sender = sender
        # Its event destination reports this email's bounces and complaints (functions/feedback).
        self._configuration_set = configuration_set
        self._client = sesv2

    def send(self, to: str, subject: str, text: str, html: str | None) -> str:
        body: dict[str, Any] = {"Text": {"Data": text, "Charset": "UTF-8"}}
        if html:
            body["Html"] = {"Data": html, "Charset": "UTF-8"}
        response = (self._client or client("sesv2")).send_email(
            FromEmailAddress=self._sender,
            Destination={"ToAddresses": [to]},
            Content={"Simple": {"Subject": {"Data": subject, "Charset": "UTF-8"}, "Body": body}},
            ConfigurationSetName=self._configuration_set,
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
