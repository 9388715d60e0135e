"""The cart-abandonment journey end to end, over HTTP, on the local runtime's virtual clock."""

from __future__ import annotations

import uuid
from datetime import timedelta

from shared import clock
from tests.e2e.conftest import LocalRuntime
from tests.payloads import load

HOUR = 3600


def _customer() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {
        "userId": f"user-{tag}",
        "email": f"shopper-{tag}@example.com",
        "token": f"token-{tag}",
        "tag": tag,
    }


def _identify(local: LocalRuntime, customer: dict[str, str], **extra: object) -> None:
    payload = load(
        "identify",
        userId=customer["userId"],
        anonymousId=f"anon-laptop-{customer['tag']}",
        traits={"email": customer["email"], "firstName": "Ada"},
        context={"device": {"token": customer["token"]}},
        **extra,
    )
    assert local.send("identify", payload) == (200, {"success": True})


def _deliveries(local: LocalRuntime, customer: dict[str, str]) -> list[dict[str, object]]:
    return [m for m in local.messages() if m["to"] in (customer["email"], customer["token"])]


def test_reminds_by_email_after_an_hour_and_by_push_after_a_day(local: LocalRuntime) -> None:
    customer = _customer()
    _identify(local, customer)
    started = clock.parse(local.advance(0))
    assert local.send("track", load("track-product-added", userId=customer["userId"]))[0] == 200

    local.advance(59 * 60)
    assert _deliveries(local, customer) == []

    local.advance(60)
    first = _deliveries(local, customer)
    assert [(m["channel"], m["to"], m["template"]) for m in first] == [
        ("email", customer["email"], "cart-reminder")
    ]
    assert first[0]["journey"] == "cart_abandonment"
    assert first[0]["userId"] == customer["userId"]
    assert clock.parse(str(first[0]["sentAt"])) - started == timedelta(hours=1)
    assert "Trail running shoes" in str(first[0]["content"])

    local.advance(23 * HOUR)
    both = _deliveries(local, customer)
    assert [(m["channel"], m["to"]) for m in both] == [
        ("email", customer["email"]),
        ("push", customer["token"]),
    ]
    assert clock.parse(str(both[1]["sentAt"])) - started == timedelta(hours=24)
    assert both[1]["profileId"] == both[0]["profileId"]
    runs = [r for r in local.executions() if r["input"]["profileId"] == both[0]["profileId"]]
    assert [r["status"] for r in runs] == ["SUCCEEDED"]


def test_a_purchase_on_another_device_ends_the_cart_journey_on_every_channel(local: LocalRuntime) -> None:
    customer = _customer()
    # The laptop: known by an anonymous id, an email and the phone's push token.
    laptop = {"anonymousId": f"anon-laptop-{customer['tag']}"}
    identify = load(
        "identify",
        **laptop,
        traits={"email": customer["email"]},
        context={"device": {"token": customer["token"]}},
    )
    identify.pop("userId")
    assert local.send("identify", identify)[0] == 200
    added = load("track-product-added", **laptop, messageId=f"added-{customer['tag']}")
    added.pop("userId")
    assert local.send("track", added)[0] == 200

    local.advance(30 * 60)
    # The phone: another anonymous id, carrying the same email.
    order = load(
        "track-order-completed",
        anonymousId=f"anon-phone-{customer['tag']}",
        context={"traits": {"email": customer["email"].upper()}},
    )
    assert local.send("track", order)[0] == 200

    local.advance(2 * 24 * HOUR)
    assert _deliveries(local, customer) == []
    assert local.message_log(to=customer["email"]) == []
    # The journey did start, and the purchase stopped it.
    runs = [r for r in local.executions() if r["input"]["trigger"]["messageId"] == added["messageId"]]
    assert [(r["journey"], r["status"]) for r in runs] == [("cart_abandonment", "ABORTED")]


def test_the_same_batch_sent_twice_sends_each_message_once(local: LocalRuntime) -> None:
    customer = _customer()
    batch = load("batch")
    batch["batch"][0].update(
        userId=customer["userId"],
        messageId=f"identify-{customer['tag']}",
        traits={"email": customer["email"]},
        context={"device": {"token": customer["token"]}},
    )
    batch["batch"][1].update(userId=customer["userId"], messageId=f"track-{customer['tag']}")

    assert local.send("batch", batch)[0] == 200
    assert local.send("batch", batch)[0] == 200
    local.advance(2 * 24 * HOUR)

    sent = _deliveries(local, customer)
    assert sorted(m["channel"] for m in sent) == ["email", "push"]


def test_a_repeated_add_to_cart_during_the_journey_does_not_start_it_again(local: LocalRuntime) -> None:
    customer = _customer()
    _identify(local, customer)
    for _ in range(3):
        assert local.send("track", load("track-product-added", userId=customer["userId"]))[0] == 200
        local.advance(10 * 60)

    local.advance(2 * 24 * HOUR)
    assert sorted(m["channel"] for m in _deliveries(local, customer)) == ["email", "push"]


def test_a_customer_without_a_device_token_gets_the_email_and_the_push_is_logged_as_dropped(
    local: LocalRuntime,
) -> None:
    customer = _customer()
    identify = load("identify", userId=customer["userId"], traits={"email": customer["email"]}, context={})
    identify.pop("anonymousId")
    assert local.send("identify", identify)[0] == 200
    assert local.send("track", load("track-product-added", userId=customer["userId"]))[0] == 200

    local.advance(25 * HOUR)
    assert [m["channel"] for m in _deliveries(local, customer)] == ["email"]
    profile_id = _deliveries(local, customer)[0]["profileId"]
    dropped = [e for e in local.message_log(profileId=str(profile_id)) if e["status"] == "dropped"]
    assert [(e["channel"], e["reason"]) for e in dropped] == [("push", "no_push_address")]


def test_bad_input_is_answered_with_a_4xx_and_a_json_error(local: LocalRuntime) -> None:
    status, body = local.send("track", {"event": "Product Added"})
    assert status == 400
    assert "userId or anonymousId" in str(body)

    status, body = local.send("track", {"userId": "u"}, write_key="not-the-key")
    assert status == 401
    assert body["error"] == "unknown write key"

    status, body = local.request("POST", "/_local/clock/advance", {"seconds": -5})
    assert status == 400


def test_a_journey_started_before_a_merge_ends_on_a_purchase_under_the_other_profiles_identifier(
    local: LocalRuntime,
) -> None:
    customer = _customer()
    # The laptop: a profile known by the user id and the email.
    laptop = {"userId": customer["userId"], "anonymousId": f"anon-laptop-{customer['tag']}"}
    assert local.send("identify", {**laptop, "traits": {"email": customer["email"]}})[0] == 200
    local.advance(60)
    # The phone, not logged in: another profile, with a push token, adds to cart.
    phone = {
        "anonymousId": f"anon-phone-{customer['tag']}",
        "context": {"device": {"token": customer["token"]}},
    }
    added = {**load("track-product-added"), **phone, "messageId": f"added-{customer['tag']}"}
    added.pop("userId")
    assert local.send("track", added)[0] == 200
    local.advance(10 * 60)

    # The customer logs in on the phone: the profiles merge; the laptop's, older, survives, and the
    # phone's journey in flight moves to it.
    assert local.send("identify", {**phone, "userId": customer["userId"]})[0] == 200
    local.advance(10 * 60)
    # They buy on the laptop.
    assert local.send("track", {**load("track-order-completed"), **laptop})[0] == 200

    local.advance(2 * 24 * HOUR)
    assert _deliveries(local, customer) == []
    # Stopped by the purchase, not merely silenced by the send gate.
    runs = [r for r in local.executions() if r["input"]["trigger"]["messageId"] == added["messageId"]]
    assert [r["status"] for r in runs] == ["ABORTED"]


def test_after_alice_is_erased_bobs_purchase_on_their_shared_ipad_still_ends_his_cart_journey(
    local: LocalRuntime,
) -> None:
    alice, bob = _customer(), _customer()
    ipad = {"device": {"id": f"family-ipad-{alice['tag']}"}}
    # Alice used the family iPad first (its device id is hers: two users never merge); then Bob did
    for person in (alice, bob):
        identify = load("identify", userId=person["userId"], traits={"email": person["email"]}, context=ipad)
        identify.pop("anonymousId", None)
        assert local.send("identify", identify)[0] == 200
        local.advance(0)
    added = load("track-product-added", userId=bob["userId"], context=ipad, messageId=f"added-{bob['tag']}")
    added.pop("anonymousId", None)
    assert local.send("track", added)[0] == 200
    local.advance(10 * 60)

    # Alice asks to be erased
    admin = {"Authorization": "Bearer dev-admin-token"}
    status, found = local.request("GET", f"/v1/profiles?userId={alice['userId']}", headers=admin)
    assert status == 200
    assert local.request("DELETE", f"/v1/profiles/{found['profileId']}", headers=admin)[0] == 200

    # Bob buys on the iPad
    order = load("track-order-completed", userId=bob["userId"], context=ipad)
    order.pop("anonymousId", None)
    assert local.send("track", order)[0] == 200
    local.advance(2 * 24 * HOUR)

    # His purchase counted: his cart journey ended, no reminder reached him
    assert _deliveries(local, bob) == []
    runs = [r for r in local.executions() if r["input"]["trigger"]["messageId"] == added["messageId"]]
    assert [(r["journey"], r["status"]) for r in runs] == [("cart_abandonment", "ABORTED")]
    status, bobs = local.request("GET", f"/v1/profiles?userId={bob['userId']}", headers=admin)
    assert ipad["device"]["id"] not in str(bobs["identifiers"])
    assert local.request("GET", f"/v1/profiles?deviceId={ipad['device']['id']}", headers=admin)[0] == 404


def test_a_purchase_by_one_of_two_customers_waiting_until_the_same_instant_leaves_the_other_reminded(
    local: LocalRuntime,
) -> None:
    # Given two customers who add to cart in one batch: their journeys wait until the same instant.
    # The buyer comes last, so the buyer's wait is registered after the other's.
    stays, buys = _customer(), _customer()
    batch: list[dict[str, object]] = []
    for customer in (stays, buys):
        batch += [
            {
                "type": "identify",
                "messageId": f"identify-{customer['tag']}",
                "userId": customer["userId"],
                "traits": {"email": customer["email"]},
            },
            {
                **load("track-product-added", userId=customer["userId"]),
                "type": "track",
                "messageId": f"added-{customer['tag']}",
            },
        ]
    assert local.send("batch", {"batch": batch}) == (200, {"success": True})
    local.advance(0)

    # When one of them buys, which stops that customer's journey
    assert local.send("track", load("track-order-completed", userId=buys["userId"]))[0] == 200

    # Then the clock still moves (advance answers 200), and the other is reminded on time
    local.advance(HOUR)
    assert [m["channel"] for m in _deliveries(local, stays)] == ["email"]
    assert _deliveries(local, buys) == []
    local.advance(23 * HOUR)
    assert [m["channel"] for m in _deliveries(local, stays)] == ["email"]  # no device token: no push
    statuses = {
        r["input"]["trigger"]["messageId"]: r["status"]
        for r in local.executions()
        if r["input"]["trigger"]["messageId"] in (f"added-{stays['tag']}", f"added-{buys['tag']}")
    }
    assert statuses == {f"added-{stays['tag']}": "SUCCEEDED", f"added-{buys['tag']}": "ABORTED"}
