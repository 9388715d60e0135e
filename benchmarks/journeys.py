"""Journeys: Step Functions state transitions per step executed, per shipped journey (counted from
the executions' histories: every StateEntered event is a billed transition; a step executed is a
distinct step id entered; target ≤ 1.5 on average), and the local runtime's speed in simulated days
per second (seven simulated days of one customer through each journey, wall time).

Each journey is run through its paths by the scenarios below (customers who buy, who open the app,
who never do); a journey without scenarios here gets one customer who triggers it and does nothing
else. Runs on the local runtime (moto, virtual clock) in-process."""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

from benchmarks.local_run import (
    DAY,
    START,
    Driver,
    call,
    count_transitions,
    deferred,
    journey_counters,
    journey_step_ids,
    running_engine,
    send_outcomes,
)
from shared import clock

HOUR = 3600
SIMULATED_DAYS = 7

# journey id → scenario name → [(seconds after entry, call kind, fields)]; `{cart}` is the customer's
# cart id. The first scenario of each journey is the one timed for simulated days per second.
Step = tuple[float, str, dict[str, Any]]
SCENARIOS: dict[str, dict[str, list[Step]]] = {
    "cart_abandonment": {
        "never buys": [(0, "track", {"event": "Product Added", "properties": {"cart_id": "{cart}"}})],
        "checks out the same cart at 5 h": [
            (0, "track", {"event": "Product Added", "properties": {"cart_id": "{cart}"}}),
            (5 * HOUR, "track", {"event": "Checkout Started", "properties": {"cart_id": "{cart}"}}),
        ],
        "checks out another cart at 5 h": [
            (0, "track", {"event": "Product Added", "properties": {"cart_id": "{cart}"}}),
            (5 * HOUR, "track", {"event": "Checkout Started", "properties": {"cart_id": "other"}}),
        ],
        # Welcomed (an email at once) and then reminded of the cart an hour later, the same day:
        # the daily marketing email cap (policy.yaml) defers the reminder to the next day.
        "signs up, then leaves a cart": [
            (0, "track", {"event": "Signed Up"}),
            (0, "track", {"event": "Product Added", "properties": {"cart_id": "{cart}"}}),
        ],
        "buys at 3 h": [
            (0, "track", {"event": "Product Added", "properties": {"cart_id": "{cart}"}}),
            (
                3 * HOUR,
                "track",
                {"event": "Order Completed", "properties": {"cart_id": "{cart}", "total": 20}},
            ),
        ],
    },
    "welcome": {
        "opens the app on day 1": [
            (0, "track", {"event": "Signed Up"}),
            (DAY, "track", {"event": "App Opened"}),
        ],
        "pro, never opens the app": [
            (0, "identify", {"traits": {"plan": "pro"}}),
            (0, "track", {"event": "Signed Up"}),
        ],
        "free, never opens the app": [(0, "track", {"event": "Signed Up"})],
        # 13 h after the start (09:00 UTC) is 23:00 in Paris: quiet hours defer the welcome to 08:00.
        "signs up at 23:00 in Paris": [(13 * HOUR, "track", {"event": "Signed Up"})],
    },
    "win_back": {
        "one order": [(0, "track", {"event": "Order Completed", "properties": {"total": 30}})],
        "a second order on day 20": [
            (0, "track", {"event": "Order Completed", "properties": {"total": 30}}),
            (20 * DAY, "track", {"event": "Order Completed", "properties": {"total": 40}}),
        ],
    },
    # vip_thanks starts on entering the `vip` segment (lifetime revenue ≥ 500): an order makes it so.
    "vip_thanks": {
        "one order of 1,200": [(0, "track", {"event": "Order Completed", "properties": {"revenue": 1200}})],
        "one order of 600": [(0, "track", {"event": "Order Completed", "properties": {"revenue": 600}})],
    },
    # What the template needs (events/track-password-reset-requested.json): the one-time link, and
    # when it stops working.
    "password_reset": {
        "asks once": [
            (
                0,
                "track",
                {
                    "event": "Password Reset Requested",
                    "properties": {
                        "reset_url": "https://shop.example.com/reset?token=bench-one-time-token",
                        "expires_at": clock.iso(START + timedelta(hours=1)),
                    },
                },
            )
        ]
    },
}


def scenarios(journeys: dict[str, Any]) -> dict[str, dict[str, list[Step]]]:
    """The scenarios of each shipped journey (a default one for a journey not listed above)."""
    from benchmarks.local_run import trigger_event

    return {
        journey_id: SCENARIOS.get(journey_id) or {"triggers it": [(0, "track", {"event": trigger_event(d)})]}
        for journey_id, d in journeys.items()
    }


def _customer_calls(steps: list[Step], user: str) -> list[tuple[float, tuple[str, dict[str, Any]]]]:
    cart = f"cart-{user}"
    identify = call(
        "identify",
        userId=user,
        traits={"email": f"{user}@example.com"},
        context={"device": {"token": f"push-{user}"}, "timezone": "Europe/Paris"},
    )
    timed = [(0.0, identify)]
    for at, kind, fields in steps:
        fields = {k: _fill(v, cart) for k, v in fields.items()}
        if kind == "identify":
            traits = {**identify[1]["traits"], **fields.get("traits", {})}
            timed.append((at, call("identify", userId=user, traits=traits)))
        else:
            timed.append((at, call(kind, userId=user, **fields)))
    return timed


def _fill(value: Any, cart: str) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, cart) for k, v in value.items()}
    return value.replace("{cart}", cart) if isinstance(value, str) else value


def _play(driver: Driver, timeline: list[tuple[float, tuple[str, dict[str, Any]]]]) -> None:
    """Send every call at its simulated moment (relative to now), in order."""
    by_moment: dict[float, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for at, item in timeline:
        by_moment[at].append(item)
    now = 0.0
    for at in sorted(by_moment):
        if at > now:
            driver.advance(at - now)
            now = at
        driver.send(by_moment[at])


def _definitions() -> dict[str, Any]:
    from infra.topology import TOPOLOGY
    from shared.journeys.loader import load_journeys

    return {j.definition.id: j.definition for j in load_journeys(TOPOLOGY.journeys_dir)}


def transitions_per_step() -> None:
    definitions = _definitions()
    plans = scenarios(definitions)
    step_ids = journey_step_ids()
    with running_engine() as engine:
        driver = Driver(engine)
        tag = uuid.uuid4().hex[:6]
        timeline = []
        for journey_id, named in plans.items():
            for n, steps in enumerate(named.values()):
                timeline.extend(_customer_calls(steps, f"t-{tag}-{journey_id}-{n}"))
        _play(driver, timeline)
        driver.advance_until_settled(set(plans))
        if engine.failures:  # reported, not hidden: the counts below then include failed runs
            print(f"  functions failed: {Counter(f.function for f in engine.failures)}")
        executions = engine.executions()
        print(
            "\nJourneys: Step Functions state transitions per step executed (from execution histories),"
            f" virtual clock from {clock.iso(START)}"
        )
        print(
            f"  {'journey':<20} {'executions':>10} {'transitions':>12} {'retries':>8}"
            f" {'steps':>6} {'per step':>9} {'sends':>6} {'deferred':>9} {'deferral tr.':>13}"
            f" {'per step undeferred':>20}"
        )
        total_transitions = total_steps = total_deferral = 0
        outcomes: dict[str, Counter[str]] = {}
        for journey_id in plans:
            mine = [e for e in executions if e["journey"] == journey_id]
            counted = count_transitions(mine, step_ids[journey_id])
            outcomes[journey_id] = send_outcomes(engine, journey_id)
            total_transitions += counted.transitions
            total_steps += counted.steps
            total_deferral += counted.deferral
            verdict = "ok" if counted.per_step <= 1.5 else "ABOVE TARGET"
            statuses = ", ".join(
                f"{n} {s.lower()}" for s, n in sorted(Counter(e["status"] for e in mine).items())
            )
            decided = sum(n for o, n in outcomes[journey_id].items() if not o.startswith("deferred"))
            print(
                f"  {journey_id:<20} {counted.executions:>10} {counted.transitions:>12} {counted.retries:>8}"
                f" {counted.steps:>6} {counted.per_step:>9.2f} {decided:>6}"
                f" {deferred(outcomes[journey_id]):>9} {counted.deferral:>13}"
                f" {counted.per_step_undeferred:>20.2f}  {verdict}  ({statuses})"
            )
        average = total_transitions / total_steps if total_steps else float("nan")
        undeferred = (total_transitions - total_deferral) / total_steps if total_steps else float("nan")
        print(
            f"  {'all journeys':<20} {'':>10} {total_transitions:>12} {'':>8}"
            f" {total_steps:>6} {average:>9.2f} {'':>6} {'':>9} {total_deferral:>13} {undeferred:>20.2f}"
            f"  (target ≤ 1.50)"
        )
        print(
            "  sends: the send gate's decisions (journey counters); deferred: sends deferred at least once"
            " (each then decided again);\n  deferral tr.: the transitions those deferrals cost (the"
            " deferral Wait, the send entered again)"
        )
        print("  Send outcomes by journey (sent, dropped / deferred by reason; entries held out):")
        for journey_id, counted_outcomes in outcomes.items():
            shown = ", ".join(f"{o} {n}" for o, n in sorted(counted_outcomes.items())) or "no send"
            held_out = int(journey_counters(engine, journey_id).get("heldOut", 0))
            print(f"    {journey_id:<20} {shown}; held out {held_out}")


def simulated_days_per_second() -> None:
    definitions = _definitions()
    plans = scenarios(definitions)
    with running_engine() as engine:
        driver = Driver(engine)
        tag = uuid.uuid4().hex[:6]
        # One customer first, untimed: what a test session pays once (imports, first clients).
        first = next(iter(plans.values()))
        _play(driver, _customer_calls(next(iter(first.values())), f"warm-{tag}"))
        driver.advance(SIMULATED_DAYS * DAY)
        print(
            f"\nLocal runtime speed: {SIMULATED_DAYS} simulated days of one customer (warm engine), wall time"
        )
        for journey_id, named in plans.items():
            steps = next(iter(named.values()))
            timeline = _customer_calls(steps, f"d-{tag}-{journey_id}")
            started = time.perf_counter()
            _play(driver, timeline)
            driver.advance(SIMULATED_DAYS * DAY - max(at for at, _ in timeline))
            elapsed = time.perf_counter() - started
            verdict = "ok" if elapsed < 1 else "OVER 1 s"
            print(
                f"  {journey_id:<20} {elapsed:6.2f} s   {SIMULATED_DAYS / elapsed:7.1f} simulated days/s"
                f"  {verdict}"
            )


def run() -> None:
    transitions_per_step()
    simulated_days_per_second()


if __name__ == "__main__":
    run()
