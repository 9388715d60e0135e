"""The cold-start yardstick: a bare handler that imports boto3 and Powertools Logger + Metrics."""

from typing import Any

import boto3  # noqa: F401
from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {}
