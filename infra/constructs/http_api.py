"""The public HTTP endpoint: the Segment HTTP Tracking API, served by the ingest function."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence

import jsii
from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.topology import HttpRoute
from shared.ingest.calls import CORS

# Stage-wide limits that shield the ingest function and the bus behind it from a flood of calls.
THROTTLE = apigwv2.ThrottleSettings(rate_limit=1000, burst_limit=500)
LOG_RETENTION = logs.RetentionDays.ONE_MONTH

# No personal data: the route template (`routeKey`), never the path, which can hold an identifier
# (`/v1/profiles/{profileId}/identifiers/email/<address>`), nor the caller's IP address.
_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """IAccessLogSettings is a jsii interface, not a struct: Python must pass an object implementing it
    (not a frozen dataclass: jsii stores its reference on the instance)."""

    def __init__(self, destination: apigwv2.IAccessLogDestination, log_format: apigw.AccessLogFormat) -> None:
        self._destination = destination
        self._format = log_format

    # Properties, not attributes: jsii finds an interface's members on the class.
    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


# Why no API Gateway authorizer guards a route (cdk-nag APIG4): who checks what instead.
_NO_AUTHORIZER = {
    "ingest": "Segment SDKs authenticate with HTTP Basic auth carrying the write key; the ingest function "
    "checks it against the sources table (hashed keys) before doing anything else. An authorizer would "
    "add a second invocation per call to repeat it.",
    "admin": "The admin API's functions (Profile API, journeys) check the admin bearer token (compared as "
    "a SHA-256 digest) before anything else; the write key never opens them.",
    "public": "The API's public description (OpenAPI document and Swagger UI page) carries no data and "
    "is meant to be read without credentials. The unsubscribe and preference pages are opened from an "
    "email with no login: the signed, expiring token in their path is the credential, and the function "
    "checks its HMAC before anything else.",
}


class IngestApi(Construct):
    """The public HTTP API: every route of the topology, each to its function."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        routes: Sequence[HttpRoute],
        functions: Mapping[str, lambda_.IFunction],
        admin_functions: Collection[str] = (),
    ) -> None:
        """`admin_functions`: the functions that check the admin credential themselves."""
        super().__init__(scope, construct_id)
        # The default stage is declared below, to give it throttling and access logs.
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            description="Continuum: the Segment HTTP Tracking API and the Profile API",
            create_default_stage=False,
            # Browsers' preflights are answered by API Gateway itself, with what the handler answers locally.
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=[CORS["Access-Control-Allow-Origin"]],
                allow_methods=[
                    apigwv2.CorsHttpMethod(m.strip()) for m in CORS["Access-Control-Allow-Methods"].split(",")
                ],
                allow_headers=[h.strip() for h in CORS["Access-Control-Allow-Headers"].split(",")],
                max_age=Duration.seconds(int(CORS["Access-Control-Max-Age"])),
            ),
        )
        integrations_by_function: dict[str, integrations.HttpLambdaIntegration] = {}
        for spec in routes:
            integration = integrations_by_function.setdefault(
                spec.function,
                integrations.HttpLambdaIntegration(
                    f"{spec.function}-integration",
                    functions[spec.function],
                    payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
                ),
            )
            for route in self.api.add_routes(
                path=spec.path, methods=[apigwv2.HttpMethod(spec.method)], integration=integration
            ):
                who = (
                    "public"
                    if spec.public
                    else "admin"
                    if spec.function in admin_functions
                    else spec.function
                )
                reason = _NO_AUTHORIZER[who]
                Validations.of(route).acknowledge(
                    Acknowledgment(id="AwsSolutions::AwsSolutions-APIG4", reason=reason)
                )
        access_logs = logs.LogGroup(self, "AccessLogs", retention=LOG_RETENTION)
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=THROTTLE,
            access_log_settings=_AccessLogs(
                destination=apigwv2.LogGroupLogDestination(access_logs),
                log_format=apigw.AccessLogFormat.custom(json.dumps(_ACCESS_LOG_FIELDS)),
            ),
        )

    @property
    def url(self) -> str:
        url = self.stage.url
        assert url is not None  # a $default stage always has one
        return url
