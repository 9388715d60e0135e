"""The same customers hit by many concurrent calls, over HTTP, as real traffic does: one journey run
per customer, one message per send step.

Meaningful once the local runtime dispatches functions concurrently (as Lambda and EventBridge do):
then the journey router and the channel functions run in parallel for one customer. On a runtime that
dispatches one call at a time it passes as well, without exercising the race."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.conftest import LocalRuntime
from tests.payloads import load

HOUR = 3600
CUSTOMERS = 3
ADDS_PER_CUSTOMER = 4


def test_concurrent_add_to_carts_start_one_journey_and_send_one_reminder_per_customer(
    local: LocalRuntime,
) -> None:
    # Given a few known customers, each with an email and a push token
    customers = []
    for _ in range(CUSTOMERS):
        tag = uuid.uuid4().hex[:10]
        customer = {
            "userId": f"racer-{tag}",
            "email": f"racer-{tag}@example.com",
            "token": f"racer-token-{tag}",
        }
        identify = load(
            "identify",
            userId=customer["userId"],
            traits={"email": customer["email"]},
            context={"device": {"token": customer["token"]}},
        )
        assert local.send("identify", identify)[0] == 200
        customers.append(customer)
    local.advance(0)

    # When each adds to cart several times at once (different messageIds), from many threads
    adds = {
        customer["userId"]: [
            load("track-product-added", userId=customer["userId"], messageId=f"add-{uuid.uuid4().hex}")
            for _ in range(ADDS_PER_CUSTOMER)
        ]
        for customer in customers
    }
    calls = [add for customer_adds in adds.values() for add in customer_adds]
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        statuses = list(pool.map(lambda add: local.send("track", add)[0], calls))
    assert statuses == [200] * len(calls)
    local.advance(2 * 24 * HOUR)

    # Then each customer is in the journey once, and gets one reminder per channel
    executions = local.executions()
    messages = local.messages()
    for customer in customers:
        message_ids = {add["messageId"] for add in adds[customer["userId"]]}
        runs = [r for r in executions if r["input"].get("trigger", {}).get("messageId") in message_ids]
        assert [(r["journey"], r["status"]) for r in runs] == [("cart_abandonment", "SUCCEEDED")]
        sent = [m for m in messages if m["to"] in (customer["email"], customer["token"])]
        assert sorted((m["channel"], m["template"]) for m in sent) == [
            ("email", "cart-reminder"),
            ("push", "cart-reminder"),
        ]
