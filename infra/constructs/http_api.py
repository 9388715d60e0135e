"""The public HTTP endpoint: the Segment HTTP Tracking API, served by the ingest function."""

from __future__ import annotations

import json

import jsii
from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from shared.ingest.calls import CORS

# Segment SDKs POST to /v1/track, /v1/identify, /v1/batch, ...; the handler decides which it serves.
INGEST_PATH = "/v1/{proxy+}"
# The API's description, generated from the request models, and its Swagger UI.
DOCUMENT_PATHS = ("/openapi.json", "/docs")
# Stage-wide limits that shield the ingest function and the bus behind it from a flood of calls.
THROTTLE = apigwv2.ThrottleSettings(rate_limit=1000, burst_limit=500)
LOG_RETENTION = logs.RetentionDays.ONE_MONTH

_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
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


class IngestApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, handler: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        # The default stage is declared below, to give it throttling and access logs.
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            description="Continuum ingest (Segment HTTP Tracking API)",
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
        integration = integrations.HttpLambdaIntegration(
            "Ingest", handler, payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0
        )
        routes = self.api.add_routes(
            path=INGEST_PATH, methods=[apigwv2.HttpMethod.POST], integration=integration
        )
        documents = [
            route
            for path in DOCUMENT_PATHS
            for route in self.api.add_routes(
                path=path, methods=[apigwv2.HttpMethod.GET], integration=integration
            )
        ]
        for route in documents:
            Validations.of(route).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-APIG4",
                    reason="The API's public description (OpenAPI document and Swagger UI page) carries no "
                    "data and is meant to be read without credentials.",
                )
            )
        for route in routes:
            Validations.of(route).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-APIG4",
                    reason="Segment SDKs authenticate with HTTP Basic auth carrying the write key; the "
                    "ingest function verifies it against the configured SHA-256 digests before doing "
                    "anything else. An API Gateway authorizer would add a second invocation per call "
                    "to repeat it.",
                )
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
