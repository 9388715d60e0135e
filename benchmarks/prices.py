"""us-east-1 list prices (on-demand, beyond the free tiers, first volume tier), in dollars per unit.
The only constants of the cost benchmark: every quantity they multiply is measured. Each names the
page it was read from (November 2026)."""

from __future__ import annotations

from dataclasses import dataclass

MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    dollars: float  # per `per` units
    per: int
    unit: str
    source: str

    def cost(self, quantity: float) -> float:
        return quantity * self.dollars / self.per


# AWS Lambda pricing page (aws.amazon.com/lambda/pricing): requests $0.20 per 1M, x86 and Arm alike.
LAMBDA_REQUESTS = Price(0.20, MILLION, "requests", "AWS Lambda pricing")
# Same page, Arm price, first 7.5 billion GB-seconds a month: $0.0000133334 per GB-second.
LAMBDA_ARM_GB_SECOND = Price(0.0000133334, 1, "GB-s", "AWS Lambda pricing (Arm)")
# AWS Step Functions pricing (aws.amazon.com/step-functions/pricing), Standard workflows, US East
# (N. Virginia): $0.025 per 1,000 state transitions, retries included. API requests are not billed.
SFN_TRANSITIONS = Price(0.025, 1000, "state transitions", "AWS Step Functions pricing")
# Amazon DynamoDB pricing for on-demand capacity (aws.amazon.com/dynamodb/pricing/on-demand), after the
# November 2024 reduction (AWS News Blog, "Amazon DynamoDB On-Demand", updated 31 January 2025 to state
# the reduced prices): $0.625 per million write request units, $0.125 per million read request units.
DYNAMODB_WRU = Price(0.625, MILLION, "write request units", "Amazon DynamoDB pricing for on-demand capacity")
DYNAMODB_RRU = Price(0.125, MILLION, "read request units", "Amazon DynamoDB pricing for on-demand capacity")
# Amazon EventBridge pricing (aws.amazon.com/eventbridge/pricing): custom events $1.00 per million,
# each 64 KB chunk of an event counted as one; delivery to targets in the same account is free.
EVENTBRIDGE_EVENTS = Price(1.00, MILLION, "custom events", "Amazon EventBridge pricing")
# Amazon SQS pricing (aws.amazon.com/sqs/pricing): standard queues $0.40 per million requests (first
# 100 billion a month), each 64 KB chunk of a payload counted as one request.
SQS_REQUESTS = Price(0.40, MILLION, "requests", "Amazon SQS pricing")
# Amazon SES pricing (aws.amazon.com/ses/pricing): outbound email $0.10 per 1,000 emails (per recipient).
SES_EMAILS = Price(0.10, 1000, "emails", "Amazon SES pricing")
# Amazon SNS pricing (aws.amazon.com/sns/pricing): API requests $0.50 per million; mobile push
# notification deliveries $0.50 per million.
SNS_REQUESTS = Price(0.50, MILLION, "requests", "Amazon SNS pricing")
SNS_MOBILE_PUSH = Price(0.50, MILLION, "mobile push deliveries", "Amazon SNS pricing")
# Amazon API Gateway pricing (aws.amazon.com/api-gateway/pricing): HTTP APIs $1.00 per million requests
# (first 300 million a month, each 512 KB metered as one).
HTTP_API_REQUESTS = Price(1.00, MILLION, "requests", "Amazon API Gateway pricing (HTTP APIs)")
FREE = Price(0.0, 1, "requests", "not billed per request")
