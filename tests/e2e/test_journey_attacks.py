"""The example journeys attacked the way an outside tester would: events at the same instant, the
same trigger sent concurrently, a trigger and an exit in one batch, erasure while a run waits on its
task token, a garbage time zone. Nothing may be answered 200 and lost, sent twice, or fail."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from tests.e2e.conftest import LocalRuntime
from tests.e2e.test_journeys import ADMIN, DAY, HOUR, Customer, _journey


def _counters_add_up(body: dict[str, Any]) -> None:
    assert body["active"] == body["entered"] - sum(body["exited"].values()), body


def test_erasing_a_profile_while_its_run_waits_for_an_event_ends_the_run(local: LocalRuntime) -> None:
    before = _journey(local, "welcome")
    customer = Customer(local)
    customer.track("Signed Up")
    local.advance(HOUR)  # the welcome went; the run waits for App Opened (2 days)
    assert customer.sent("welcome") == [("email", "welcome")]
    status, profile = local.request("GET", f"/v1/profiles?userId={customer.user_id}", headers=ADMIN)
    assert status == 200, profile
    assert local.request("DELETE", f"/v1/profiles/{profile['profileId']}", headers=ADMIN)[0] == 200
    welcomes = len(local.messages(journey="welcome"))

    local.advance(4 * DAY)

    assert len(local.messages(journey="welcome")) == welcomes  # no get-the-app to an erased person
    assert local.failures() == []
    after = _journey(local, "welcome")
    _counters_add_up(after)
    assert after["entered"] - before["entered"] == 1
    assert after["active"] == before["active"]


def test_a_trigger_then_its_exit_in_one_batch_leaves_no_run(local: LocalRuntime) -> None:
    customer = Customer(local)
    calls = [
        {
            "type": "track",
            "userId": customer.user_id,
            "event": event,
            "properties": {"cart_id": "b"},
            "messageId": f"{event}-{uuid.uuid4().hex}",
            "context": customer.context,
        }
        for event in ("Product Added", "Order Completed")
    ]
    assert local.send("batch", {"batch": calls})[0] == 200

    local.advance(2 * DAY)

    assert customer.sent("cart_abandonment") == []
    assert local.failures() == []


def test_the_same_trigger_sent_concurrently_starts_one_run(local: LocalRuntime) -> None:
    before = _journey(local, "cart_abandonment")
    customer = Customer(local)
    answers: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(
                local.send(
                    "track",
                    {
                        "userId": customer.user_id,
                        "event": "Product Added",
                        "properties": {"cart_id": "t"},
                        "messageId": f"pa-{uuid.uuid4().hex}",
                        "context": customer.context,
                    },
                )[0]
            )
        )
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 6

    local.advance(2 * DAY)

    assert customer.sent("cart_abandonment") == [("email", "cart-reminder"), ("push", "cart-reminder")]
    after = _journey(local, "cart_abandonment")
    assert after["entered"] - before["entered"] == 1
    _counters_add_up(after)
    assert local.failures() == []


def test_a_checkout_at_the_very_second_the_wait_times_out_sends_at_most_the_push(local: LocalRuntime) -> None:
    customer = Customer(local)
    customer.track("Product Added", cart_id="edge")
    local.advance(24 * HOUR - 1)
    customer.track("Checkout Started", cart_id="edge")
    local.advance(2 * DAY)
    sent = customer.sent("cart_abandonment")
    assert sent in ([("email", "cart-reminder")], [("email", "cart-reminder"), ("push", "cart-reminder")])
    assert local.failures() == []


def test_a_purchase_at_the_instant_the_push_is_due_is_not_lost(local: LocalRuntime) -> None:
    before = _journey(local, "cart_abandonment")
    customer = Customer(local)
    customer.track("Product Added", cart_id="p")
    local.advance(24 * HOUR)  # the timeout falls due exactly now
    customer.track("Order Completed", revenue=12.5)
    local.advance(DAY)
    after = _journey(local, "cart_abandonment")
    assert after["conversions"] - before["conversions"] == 1
    _counters_add_up(after)
    assert local.failures() == []


def test_garbage_time_zones_fall_back_and_fail_nothing(local: LocalRuntime) -> None:
    customers = [
        Customer(local, timezone=zone)
        for zone in (
            "Mars/Olympus_Mons",
            "../../etc/passwd",
            "",
            "x" * 5000,
            42,
            "UTC+3",
            "Europe/Berlin\x00",
        )
    ]
    for customer in customers:
        customer.track("Order Completed", total=1)
    local.advance(31 * DAY)
    assert local.failures() == []
    assert all(len(c.messages("win_back")) <= 1 for c in customers)
    _counters_add_up(_journey(local, "win_back"))
