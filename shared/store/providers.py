"""The message providers: SES v2 for email, SNS platform endpoints for push."""

from __future__ import annotations

import json
import re
from typing import Any

from shared.store.aws import client, error_code


class EndpointDisabledError(Exception):
    """SNS refuses to publish to the device's endpoint: the platform (FCM / APNs) reported the token
    invalid (an uninstalled app, a revoked token). Sending again would only fail again."""


class EmailProvider:
    def __init__(self, sender: str, configuration_set: str, sesv2: Any = None):
        self._sender = sender
        # Its event destination reports this email's bounces and complaints (functions/feedback).
        self._configuration_set = configuration_set
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
            ConfigurationSetName=self._configuration_set,
        )
        message_id: str = response["MessageId"]
        return message_id


# CreatePlatformEndpoint refuses a token whose endpoint exists with other attributes (for one, a
# disabled endpoint), naming that endpoint: AWS's "Mobile token management" guide reads the ARN from it.
_EXISTING_ENDPOINT = re.compile(r"Endpoint (arn:\S+) already exists with the same [Tt]oken")


class PushProvider:
    def __init__(self, platform_application_arn: str, sns: Any = None):
        self._application = platform_application_arn
        self._client = sns

    def send(self, token: str, title: str, body: str) -> str:
        sns = self._client or client("sns")
        endpoint_arn = self._endpoint(sns, token)
        notification = {"notification": {"title": title, "body": body}}
        message = {
            "default": body,
            "GCM": json.dumps(notification),
            "APNS": json.dumps({"aps": {"alert": {"title": title, "body": body}}}),
        }
        try:
            response = sns.publish(
                TargetArn=endpoint_arn, Message=json.dumps(message), MessageStructure="json"
            )
        except Exception as error:
            if error_code(error) == "EndpointDisabled":
                raise EndpointDisabledError("the device's push endpoint is disabled") from error
            raise
        message_id: str = response["MessageId"]
        return message_id

    def _endpoint(self, sns: Any, token: str) -> str:
        """The token's endpoint ARN. CreatePlatformEndpoint is idempotent for the same token and
        attributes; an existing endpoint with other attributes is used as it is, unless disabled."""
        try:
            endpoint = sns.create_platform_endpoint(PlatformApplicationArn=self._application, Token=token)
        except Exception as error:
            found = _EXISTING_ENDPOINT.search(str(error)) if error_code(error) == "InvalidParameter" else None
            if found is None:
                raise
            existing: str = found.group(1)
            attributes = sns.get_endpoint_attributes(EndpointArn=existing)["Attributes"]
            if str(attributes.get("Enabled", "true")).lower() == "false":
                raise EndpointDisabledError("the device's push endpoint is disabled") from error
            return existing
        created: str = endpoint["EndpointArn"]
        return created
