"""The example journeys (journeys/), every path of each, over HTTP on the local runtime's virtual clock:
cart_abandonment (wait for a checkout of the same cart), welcome (wait for the app, branch on plan),
win_back (local-time wait, re-entry on every order, holdout), and the admin journeys API."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared import clock
from tests.e2e.conftest import LocalRuntime

HOUR = 3600
DAY = 24 * HOUR
ADMIN = {"Authorization": "Bearer dev-admin-token"}


class Customer:
    def __init__(self, local: LocalRuntime, **traits: Any):
        self.local = local
        self.tag = uuid.uuid4().hex[:10]
        self.user_id = f"user-{self.tag}"
        self.email = f"c-{self.tag}@example.com"
        self.token = f"token-{self.tag}"
        self.context: dict[str, Any] = {"device": {"token": self.token}}
        self.identify(email=self.email, **traits)

    def identify(self, context: dict[str, Any] | None = None, **traits: Any) -> None:
        payload = {"userId": self.user_id, "traits": traits, "context": {**self.context, **(context or {})}}
        assert self.local.send("identify", payload) == (200, {"success": True})

    def track(self, event: str, **properties: Any) -> str:
        message_id = f"{event.replace(' ', '-')}-{uuid.uuid4().hex[:12]}"
        payload = {
            "userId": self.user_id,
            "event": event,
            "properties": properties,
            "messageId": message_id,
            "context": self.context,
        }
        assert self.local.send("track", payload)[0] == 200
        return message_id

    def messages(self, journey: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for m in self.local.messages()
            if m["to"] in (self.email, self.token) and (journey is None or m["journey"] == journey)
        ]

    def sent(self, journey: str) -> list[tuple[str, str]]:
        return [(m["channel"], m["template"]) for m in self.messages(journey)]


def _now(local: LocalRuntime) -> Any:
    return clock.parse(local.advance(0))


# ------------------------------------------------------------------ cart_abandonment


def test_cart_a_checkout_of_the_same_cart_at_5h_suppresses_the_push(local: LocalRuntime) -> None:
    customer = Customer(local)
    customer.track("Product Added", cart_id="cart-1", name="Trail shoes")
    local.advance(HOUR)
    assert customer.sent("cart_abandonment") == [("email", "cart-reminder")]

    local.advance(4 * HOUR)
    customer.track("Checkout Started", cart_id="cart-1")
    local.advance(2 * DAY)
    assert customer.sent("cart_abandonment") == [("email", "cart-reminder")]


def test_cart_a_checkout_of_another_cart_does_not_suppress_the_push(local: LocalRuntime) -> None:
    customer = Customer(local)
    start = _now(local)
    customer.track("Product Added", cart_id="cart-1", name="Trail shoes")
    local.advance(5 * HOUR)
    customer.track("Checkout Started", cart_id="cart-2")
    local.advance(2 * DAY)

    sent = customer.messages("cart_abandonment")
    assert [(m["channel"], m["template"]) for m in sent] == [
        ("email", "cart-reminder"),
        ("push", "cart-reminder"),
    ]
    # The push goes out when the 23-hour wait for the checkout times out: 1 h + 23 h after the add.
    assert clock.parse(str(sent[1]["sentAt"])) - start == timedelta(hours=24)


def test_cart_a_checkout_before_the_wait_began_still_counts(local: LocalRuntime) -> None:
    # Started checking out 10 minutes after adding, before the reminder (and so before the wait_for
    # step began): the email still goes (the checkout is not an exit), the push does not.
    customer = Customer(local)
    customer.track("Product Added", cart_id="cart-9")
    local.advance(10 * 60)
    customer.track("Checkout Started", cart_id="cart-9")
    local.advance(2 * DAY)
    assert customer.sent("cart_abandonment") == [("email", "cart-reminder")]


def test_cart_a_purchase_exits_at_once_and_counts_a_conversion(local: LocalRuntime) -> None:
    customer = Customer(local)
    before = _journey(local, "cart_abandonment")
    customer.track("Product Added", cart_id="cart-3")
    local.advance(2 * HOUR)
    customer.track("Order Completed", order_id="o-1", revenue=120.5)
    local.advance(2 * DAY)

    assert customer.sent("cart_abandonment") == [("email", "cart-reminder")]
    after = _journey(local, "cart_abandonment")
    assert after["conversions"] - before["conversions"] == 1
    assert after["revenue"] - before["revenue"] == 120.5
    email_step = next(s for s in after["steps"] if s["type"] == "send" and s["sent"])
    was = next(s for s in before["steps"] if s["id"] == email_step["id"])
    assert email_step.get("conversions", 0) - was.get("conversions", 0) == 1


def test_cart_the_awaited_event_under_another_identifier_resumes_the_run(local: LocalRuntime) -> None:
    customer = Customer(local)
    customer.track("Product Added", cart_id="cart-4")
    local.advance(3 * HOUR)
    # The checkout comes from the phone, known only by the email in context.traits.
    phone = {
        "anonymousId": f"anon-phone-{customer.tag}",
        "event": "Checkout Started",
        "properties": {"cart_id": "cart-4"},
        "context": {"traits": {"email": customer.email}},
    }
    assert local.send("track", phone)[0] == 200
    local.advance(2 * DAY)
    assert customer.sent("cart_abandonment") == [("email", "cart-reminder")]


def test_cart_a_merge_while_waiting_then_the_event_on_the_merged_profile_resumes_the_run(
    local: LocalRuntime,
) -> None:
    # The phone, anonymous, adds to cart: its own profile enters the journey.
    tag = uuid.uuid4().hex[:10]
    phone = {"anonymousId": f"anon-phone-{tag}", "context": {"device": {"token": f"token-{tag}"}}}
    email = f"m-{tag}@example.com"
    assert local.send("identify", {**phone, "traits": {"email": email}})[0] == 200
    assert local.send("track", {**phone, "event": "Product Added", "properties": {"cart_id": "c"}})[0] == 200
    local.advance(2 * HOUR)  # the email went; the run now waits for the checkout
    # A laptop profile exists for the same person; logging in on the phone merges the two.
    laptop = {"userId": f"user-{tag}", "anonymousId": f"anon-laptop-{tag}"}
    assert local.send("identify", {**laptop, "traits": {"name": "M"}})[0] == 200
    local.advance(60)
    assert local.send("identify", {**phone, "userId": f"user-{tag}"})[0] == 200
    local.advance(60)
    # The checkout on the laptop, under the user id.
    assert (
        local.send("track", {**laptop, "event": "Checkout Started", "properties": {"cart_id": "c"}})[0] == 200
    )
    local.advance(2 * DAY)
    sent = [m for m in local.messages() if m["to"] in (email, f"token-{tag}")]
    assert [(m["channel"], m["template"]) for m in sent] == [("email", "cart-reminder")]


# ------------------------------------------------------------------ welcome


def test_welcome_app_opened_on_day_one_gets_app_tips_a_day_later(local: LocalRuntime) -> None:
    customer = Customer(local, plan="free")
    start = _now(local)
    customer.track("Signed Up")
    local.advance(DAY)
    customer.track("App Opened")
    local.advance(3 * DAY)

    sent = customer.messages("welcome")
    assert [(m["channel"], m["template"]) for m in sent] == [("email", "welcome"), ("push", "app-tips")]
    assert clock.parse(str(sent[1]["sentAt"])) - start == timedelta(days=2)


def test_welcome_a_pro_customer_who_never_opens_the_app_gets_pro_onboarding_after_two_days(
    local: LocalRuntime,
) -> None:
    customer = Customer(local, plan="pro")
    start = _now(local)
    customer.track("Signed Up")
    local.advance(3 * DAY)
    sent = customer.messages("welcome")
    assert [(m["channel"], m["template"]) for m in sent] == [
        ("email", "welcome"),
        ("email", "pro-onboarding"),
    ]
    assert clock.parse(str(sent[1]["sentAt"])) - start == timedelta(days=2)


def test_welcome_any_other_customer_who_never_opens_the_app_gets_get_the_app(local: LocalRuntime) -> None:
    customer = Customer(local)
    customer.track("Signed Up")
    local.advance(3 * DAY)
    assert customer.sent("welcome") == [("email", "welcome"), ("email", "get-the-app")]


def test_welcome_the_plan_is_read_when_the_branch_runs_not_at_entry(local: LocalRuntime) -> None:
    customer = Customer(local, plan="free")
    customer.track("Signed Up")
    local.advance(DAY)
    customer.identify(plan="pro")  # upgraded on day 1
    local.advance(2 * DAY)
    assert customer.sent("welcome") == [("email", "welcome"), ("email", "pro-onboarding")]


def test_welcome_is_never_entered_twice(local: LocalRuntime) -> None:
    customer = Customer(local)
    customer.track("Signed Up")
    local.advance(3 * DAY)
    customer.track("Signed Up")
    local.advance(3 * DAY)
    assert customer.sent("welcome") == [("email", "welcome"), ("email", "get-the-app")]


# ------------------------------------------------------------------ win_back


def _held_out(local: LocalRuntime, customer: Customer) -> bool:
    status, profile = local.request("GET", f"/v1/profiles?userId={customer.user_id}", headers=ADMIN)
    assert status == 200
    runs = [
        r
        for r in local.executions()
        if r["journey"] == "win_back" and r["input"]["profileId"] == profile["profileId"]
    ]
    return not runs


def test_win_back_a_second_order_moves_the_email_to_30_days_after_it_at_10_local(
    local: LocalRuntime,
) -> None:
    zones = {"Europe/Berlin": None, "America/Los_Angeles": None, "Asia/Tokyo": None}
    customers = []
    for zone in zones:
        # One zone from the latest event's context, the others from the trait.
        customer = Customer(local) if zone == "Europe/Berlin" else Customer(local, timezone=zone)
        if zone == "Europe/Berlin":
            customer.context["timezone"] = zone
        customers.append((zone, customer))
    customers = [(z, c) for z, c in customers if not _first_order_held_out(local, c)]
    assert customers, "every customer was held out: the holdout share is far from 10%"

    local.advance(20 * DAY)
    second_order = {}
    for zone, customer in customers:
        customer.track("Order Completed", order_id="second", total=30)
        second_order[zone] = _now(local)
    local.advance(12 * DAY)  # past day 30 of the first order: nothing yet
    for _, customer in customers:
        assert customer.sent("win_back") == []
    local.advance(20 * DAY)

    for zone, customer in customers:
        sent = customer.messages("win_back")
        assert [(m["channel"], m["template"]) for m in sent] == [("email", "win-back")], zone
        at = clock.parse(str(sent[0]["sentAt"])).astimezone(ZoneInfo(zone))
        ordered = second_order[zone].astimezone(ZoneInfo(zone))
        assert (at.hour, at.minute) == (10, 0), zone
        assert at.date() == (ordered + timedelta(days=30)).date(), zone


def _first_order_held_out(local: LocalRuntime, customer: Customer) -> bool:
    customer.track("Order Completed", order_id="first", total=50)
    local.advance(60)
    return _held_out(local, customer)


def test_win_back_holds_out_about_ten_percent_and_shows_it_in_the_journeys_api(local: LocalRuntime) -> None:
    before = _journey(local, "win_back")
    tag = uuid.uuid4().hex[:8]
    for i in range(200):
        call = {"userId": f"hold-{tag}-{i}", "event": "Order Completed", "properties": {"total": 10}}
        assert local.send("track", call)[0] == 200
    local.advance(60)
    after = _journey(local, "win_back")

    held_out = after["heldOut"] - before["heldOut"]
    entered = after["entered"] - before["entered"]
    assert held_out + entered == 200
    # Binomial(200, 0.1): mean 20, sd 4.2; this range is ±3.6 sd, a false alarm about once in 3,000 runs.
    assert 5 <= held_out <= 35
    started = [r for r in local.executions() if r["journey"] == "win_back" and r["input"]["profileId"]]
    assert len(started) >= entered


# ------------------------------------------------------------------ the admin journeys API


def _journey(local: LocalRuntime, journey_id: str) -> dict[str, Any]:
    status, body = local.request("GET", f"/v1/journeys/{journey_id}", headers=ADMIN)
    assert status == 200, body
    return dict(body)


def test_the_journeys_api_lists_every_journey_and_needs_the_admin_token(local: LocalRuntime) -> None:
    status, body = local.request("GET", "/v1/journeys", headers=ADMIN)
    assert status == 200
    assert {j["id"] for j in body["journeys"]} >= {"cart_abandonment", "welcome", "win_back"}
    assert local.request("GET", "/v1/journeys")[0] == 401
    assert local.request("GET", "/v1/journeys/no_such_journey", headers=ADMIN)[0] == 404


def test_the_journeys_api_counts_entries_exits_and_step_outcomes(local: LocalRuntime) -> None:
    before = _journey(local, "cart_abandonment")
    customer = Customer(local)
    customer.track("Product Added", cart_id="x")
    local.advance(2 * DAY)
    after = _journey(local, "cart_abandonment")
    assert after["entered"] - before["entered"] == 1
    exited = {k: v - before["exited"].get(k, 0) for k, v in after["exited"].items()}
    assert exited.get("completed") == 1
    steps = {s["id"]: s for s in after["steps"]}
    assert {s["type"] for s in after["steps"]} >= {"wait", "send", "wait_for"}
    assert sum(s["sent"] for s in steps.values()) - sum(s["sent"] for s in before["steps"]) == 2
    assert set(before) >= {"id", "entered", "active", "exited", "heldOut", "conversions", "revenue", "steps"}


# ------------------------------------------------------------------ password_reset (Liquid templates)


def test_password_reset_emails_the_reset_link_at_once_in_the_shared_layout(local: LocalRuntime) -> None:
    customer = Customer(local, firstName="<b>Ada</b>", timezone="America/New_York")
    url = f"https://shop.example.com/reset?token={customer.tag}&user=1"
    customer.track("Password Reset Requested", reset_url=url, expires_at="2030-01-07T15:00:00Z")
    local.advance(1)

    sent = customer.messages("password_reset")
    assert [(m["channel"], m["template"]) for m in sent] == [("email", "password-reset")]
    content = sent[0]["content"]
    assert content["subject"] == "Reset your password"
    assert content["text"].startswith("Hi <b>Ada</b>,\n")
    assert url in content["text"]
    assert "The link works until Jan 7, 10:00 EST." in content["text"]  # in the customer's zone
    # html: the trait escaped, the URL attribute-escaped, inside the brand layout with its footer
    assert "<p>Hi &lt;b&gt;Ada&lt;/b&gt;,</p>" in content["html"]
    assert f'href="{url.replace("&", "&amp;")}"' in content["html"]
    assert content["html"].startswith("<!DOCTYPE html>") and "1 Example Street" in content["html"]
    assert "Continuum Shop, 1 Example Street" in content["text"]
    # transactional: no unsubscribe link in the footer
    assert "Unsubscribe" not in content["text"] and "Unsubscribe" not in content["html"]
