"""PushProvider's answers to a disabled endpoint, on both ways SNS reports one (botocore Stubber)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY, Stubber

from shared.store.providers import EndpointDisabledError, PushProvider

APP = "arn:aws:sns:eu-west-1:111122223333:app/GCM/shop"
ENDPOINT = "arn:aws:sns:eu-west-1:111122223333:endpoint/GCM/shop/0d7f3e2a"


def _sns() -> tuple[object, Stubber]:
    sns = boto3.client("sns", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    return sns, Stubber(sns)


def test_publishing_to_an_endpoint_sns_disabled_raises_endpoint_disabled() -> None:
    sns, stubber = _sns()
    stubber.add_response(
        "create_platform_endpoint", {"EndpointArn": ENDPOINT}, {"PlatformApplicationArn": APP, "Token": "t"}
    )
    stubber.add_client_error("publish", service_error_code="EndpointDisabled", http_status_code=400)

    with stubber, pytest.raises(EndpointDisabledError):
        PushProvider(APP, sns).send("t", "Hi", "Hello")


def test_an_existing_disabled_endpoint_named_by_create_is_not_published_to() -> None:
    sns, stubber = _sns()
    stubber.add_client_error(
        "create_platform_endpoint",
        service_error_code="InvalidParameter",
        service_message=f"Invalid parameter: Token Reason: Endpoint {ENDPOINT} already exists with the same "
        "Token, but different attributes.",
        http_status_code=400,
    )
    stubber.add_response(
        "get_endpoint_attributes",
        {"Attributes": {"Enabled": "false", "Token": "t"}},
        {"EndpointArn": ENDPOINT},
    )

    with stubber, pytest.raises(EndpointDisabledError):
        PushProvider(APP, sns).send("t", "Hi", "Hello")
    stubber.assert_no_pending_responses()


def test_an_existing_enabled_endpoint_named_by_create_is_published_to() -> None:
    sns, stubber = _sns()
    stubber.add_client_error(
        "create_platform_endpoint",
        service_error_code="InvalidParameter",
        service_message=f"Invalid parameter: Token Reason: Endpoint {ENDPOINT} already exists with the same "
        "Token, but different attributes.",
        http_status_code=400,
    )
    stubber.add_response(
        "get_endpoint_attributes", {"Attributes": {"Enabled": "true"}}, {"EndpointArn": ENDPOINT}
    )
    stubber.add_response(
        "publish", {"MessageId": "m-1"}, {"TargetArn": ENDPOINT, "Message": ANY, "MessageStructure": "json"}
    )

    with stubber:
        assert PushProvider(APP, sns).send("t", "Hi", "Hello") == "m-1"


def test_any_other_invalid_parameter_is_raised_as_it_is() -> None:
    sns, stubber = _sns()
    stubber.add_client_error(
        "create_platform_endpoint", service_error_code="InvalidParameter", http_status_code=400
    )

    with stubber, pytest.raises(Exception) as raised:
        PushProvider(APP, sns).send("t", "Hi", "Hello")
    assert not isinstance(raised.value, EndpointDisabledError)
