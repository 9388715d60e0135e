"""What the Journeys API shows of a journey's counters (shared/journeys/report.py)."""

from __future__ import annotations

from infra.topology import TOPOLOGY
from shared.journeys.loader import load_journeys
from shared.journeys.report import detail, summary

CART = next(
    j.definition for j in load_journeys(TOPOLOGY.journeys_dir) if j.definition.id == "cart_abandonment"
)


def test_active_is_entered_minus_every_exit() -> None:
    counters = {"entered": 10, "exited#goal": 3, "exited#completed": 2, "exited#failed": 1, "heldOut": 4}

    assert summary(CART, counters) == {
        "id": "cart_abandonment",
        "name": "Cart abandonment",
        "trigger": {"event": "Product Added", "where": {}},
        "entered": 10,
        "active": 4,
    }


def test_a_journey_nobody_entered_shows_zeros() -> None:
    shown = detail(CART, {})

    assert (shown["entered"], shown["active"], shown["exited"], shown["conversions"]) == (0, 0, {}, 0)
    assert all(step["sent"] == 0 and step["dropped"] == step["deferred"] == {} for step in shown["steps"])


def test_each_step_shows_its_own_outcomes_by_reason() -> None:
    counters = {
        "step#send-email-cart-reminder#sent": 7,
        "step#send-email-cart-reminder#dropped#consent": 2,
        "step#send-email-cart-reminder#dropped#quiet_hours": 1,
        "step#send-email-cart-reminder#deferred#deferred_quiet_hours": 4,
        "step#send-email-cart-reminder#conversions": 3,
        "step#send-email-cart-reminder#revenue": 120.5,
        "step#checkout.on_timeout.send-push-cart-reminder#sent": 1,
    }

    steps = {step["id"]: step for step in detail(CART, counters)["steps"]}

    assert steps["send-email-cart-reminder"] == {
        "id": "send-email-cart-reminder",
        "type": "send",
        "sent": 7,
        "dropped": {"consent": 2, "quiet_hours": 1},
        "deferred": {"deferred_quiet_hours": 4},
        "conversions": 3,
        "revenue": 120.5,
    }
    assert steps["checkout.on_timeout.send-push-cart-reminder"]["sent"] == 1
    assert [step["type"] for step in detail(CART, counters)["steps"]] == [
        "wait",
        "send",
        "wait_for",
        "exit",
        "send",
    ]


def test_exits_are_shown_by_reason_and_held_out_apart() -> None:
    counters = {
        "entered": 5,
        "exited#exit_event": 2,
        "exited#goal": 1,
        "heldOut": 1,
        "heldOutConversions": 1,
        "heldOutRevenue": 9,
        "conversions": 2,
        "revenue": 30,
    }

    shown = detail(CART, counters)

    assert shown["exited"] == {"exit_event": 2, "goal": 1}
    assert (shown["active"], shown["heldOut"], shown["heldOutConversions"], shown["heldOutRevenue"]) == (
        2,
        1,
        1,
        9,
    )
    assert (shown["conversions"], shown["revenue"]) == (2, 30)
