"""What the whole pipeline costs: customers (1,000 by default; BENCH_CUSTOMERS=n for fewer) run
through `cart_abandonment` on the local runtime — each identifies (email, push token) and adds a
product to a cart; a quarter check out that cart 2 h later, another quarter buy it 3 h later — then
time moves on until every cart run has ended. Everything spent is measured as it happens: every AWS
request the functions and the SQS event source make (botocore hook), every function invocation with
its handler's duration, every Step Functions state transition (the executions' histories). Priced
at us-east-1 list prices (benchmarks/prices.py), each line of the bill shown, then dollars per
million events and per thousand journey entries, and the run's wall time."""

from __future__ import annotations

import math
import os
import statistics
import time
import uuid
from collections import Counter
from typing import Any

from benchmarks import prices
from benchmarks.local_run import (
    DAY,
    START,
    Driver,
    Meter,
    Usage,
    call,
    count_transitions,
    journey_step_ids,
    running_engine,
    send_outcomes,
)
from shared import clock

JOURNEY = "cart_abandonment"
HOUR = 3600
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "1000"))
CHECKOUT_SHARE = 0.25  # check out the same cart 2 h after adding to it
BUY_SHARE = 0.25  # buy the cart 3 h after adding to it (other customers than those who check out)
# The engine gives up on a settling when nothing has progressed for IDLE_TIMEOUT_SECONDS of real time
# (counted from the last progress, so a long settling that keeps working finishes). BENCH_IDLE_SECONDS
# overrides that limit for this run only; unset, the engine's own limit applies.
IDLE_LIMIT_SECONDS = float(os.environ["BENCH_IDLE_SECONDS"]) if os.environ.get("BENCH_IDLE_SECONDS") else None


def _customers(count: int) -> dict[float, list[tuple[str, dict[str, Any]]]]:
    """Each customer's calls, by the simulated moment they are sent."""
    tag = uuid.uuid4().hex[:6]
    moments: dict[float, list[tuple[str, dict[str, Any]]]] = {0: [], 2 * HOUR: [], 3 * HOUR: []}
    checkouts, buyers = int(count * CHECKOUT_SHARE), int(count * BUY_SHARE)
    for i in range(count):
        user, cart = f"c-{tag}-{i}", f"cart-{tag}-{i}"
        moments[0].append(
            call(
                "identify",
                userId=user,
                traits={"email": f"{user}@example.com"},
                context={"device": {"token": f"push-{user}"}},
            )
        )
        added = {"cart_id": cart, "product_id": "sku-42", "name": "Trail running shoes", "price": 89.5}
        moments[0].append(call("track", userId=user, event="Product Added", properties=added))
        if i < checkouts:
            moments[2 * HOUR].append(
                call("track", userId=user, event="Checkout Started", properties={"cart_id": cart})
            )
        elif i < checkouts + buyers:
            order = {"cart_id": cart, "order_id": f"order-{tag}-{i}", "total": 89.5}
            moments[3 * HOUR].append(call("track", userId=user, event="Order Completed", properties=order))
    return moments


def _since(wall: float, cpu: float) -> tuple[float, float]:
    """Wall and process CPU seconds since (wall, cpu)."""
    return time.perf_counter() - wall, time.process_time() - cpu


def _gb_seconds(usage: Usage) -> dict[str, float]:
    """GB-seconds per function: each invocation's handler CPU time, rounded up to the millisecond as
    Lambda rounds durations, times the function's memory. CPU time, not wall time: in-process, wall
    time includes waiting for the other invocations (the GIL, moto's request lock), which a Lambda
    instance does not do; it leaves out the network round trips of AWS requests (see RESULTS.md)."""
    from infra.topology import TOPOLOGY

    return {
        name: sum(math.ceil(c * 1000) / 1000 for c in cpu) * TOPOLOGY.function(name).memory_mb / 1024
        for name, cpu in usage.cpu.items()
    }


def _bill(usage: Usage, transitions: int) -> list[tuple[str, float, prices.Price]]:
    """(line, quantity, price) for everything measured."""
    lines: list[tuple[str, float, prices.Price]] = [
        ("API Gateway HTTP API requests (ingest)", usage.http_requests, prices.HTTP_API_REQUESTS),
        (
            "Lambda requests (all functions)",
            sum(len(d) for d in usage.durations.values()),
            prices.LAMBDA_REQUESTS,
        ),
    ]
    for name, gb_s in sorted(_gb_seconds(usage).items()):
        lines.append((f"Lambda duration {name} (arm64, handler CPU time)", gb_s, prices.LAMBDA_ARM_GB_SECOND))
    lines.append(("Step Functions Standard state transitions", transitions, prices.SFN_TRANSITIONS))
    unit_prices = {
        ("dynamodb", "RRU"): prices.DYNAMODB_RRU,
        ("dynamodb", "WRU"): prices.DYNAMODB_WRU,
        ("events", "events"): prices.EVENTBRIDGE_EVENTS,
        ("sqs", "requests"): prices.SQS_REQUESTS,
        ("sesv2", "emails"): prices.SES_EMAILS,
        ("sns", "requests"): prices.SNS_REQUESTS,
        ("sns", "mobile push deliveries"): prices.SNS_MOBILE_PUSH,
    }
    for (service, operation, unit), quantity in sorted(usage.units.items()):
        price = unit_prices.get((service, unit), prices.FREE)
        lines.append((f"{service} {operation} ({unit})", quantity, price))
    return lines


def run() -> None:
    from infra.local.engine import IDLE_TIMEOUT_SECONDS

    moments = _customers(CUSTOMERS)
    events = sum(len(calls) for calls in moments.values())
    with running_engine() as engine:
        meter = Meter(engine).install()
        driver = Driver(engine, idle_limit=IDLE_LIMIT_SECONDS)
        print(
            f"\nPipeline cost: {CUSTOMERS} customers through {JOURNEY} ({events} Segment calls),"
            f" virtual clock from {clock.iso(START)}",
            flush=True,
        )
        started, started_cpu = time.perf_counter(), time.process_time()

        def phase(label: str) -> tuple[float, float]:
            # Printed as it happens: a long run on a loaded machine shows where it is.
            wall, cpu = _since(started, started_cpu)
            print(f"  {wall:8.1f} s wall {cpu:8.1f} s CPU  {label}", flush=True)
            return wall, cpu

        now = 0.0
        for at in sorted(moments):
            if at > now:
                driver.advance(at - now)
                now = at
                phase(f"advanced to {at / HOUR:.0f} h")
            driver.send(moments[at])
            phase(f"sent {len(moments[at])} calls at {at / HOUR:.0f} h")
        driver.advance_until_settled({JOURNEY}, step=DAY)
        wall, cpu = phase("every cart run ended")
        meter.uninstall()
        assert engine.failures == [], f"functions failed: {Counter(f.function for f in engine.failures)}"

        executions = engine.executions()
        entries = Counter(e["journey"] for e in executions)
        cart_runs = [e for e in executions if e["journey"] == JOURNEY]
        counted = count_transitions(executions, set().union(*journey_step_ids().values()))
        outcomes = {journey: send_outcomes(engine, journey) for journey in sorted(entries)}
        usage = meter.usage

    print(f"  wall time of the run: {wall:.1f} s ({events / wall:.1f} calls/s), process CPU {cpu:.1f} s")
    longest = max(driver.settles)
    limit = (
        f"overridden to {IDLE_LIMIT_SECONDS:.0f} s here (BENCH_IDLE_SECONDS)"
        if IDLE_LIMIT_SECONDS is not None
        else f"{IDLE_TIMEOUT_SECONDS:.0f} s without progress, the engine's own"
    )
    print(f"  longest settling of the engine: {longest:.1f} s (idle limit: {limit})")
    print(
        f"  journey entries: {dict(entries)};"
        f" cart runs by status: {dict(Counter(e['status'] for e in cart_runs))}"
    )
    print("  Send outcomes by journey (the send gate's decisions: sent, dropped / deferred by reason):")
    for journey, counted_outcomes in outcomes.items():
        shown = ", ".join(f"{o} {n}" for o, n in sorted(counted_outcomes.items())) or "no send"
        print(f"    {journey:<20} {shown}")
    print(
        f"  transitions spent on deferred sends: {counted.deferral} of {counted.transitions}"
        " (the deferral Wait, the send entered again)"
    )
    print("  AWS requests by service and operation (functions and SQS event source):")
    for (service, operation), n in sorted(usage.requests.items()):
        print(f"    {service:<14} {operation:<26} {n:>8}  ({n / events:.2f} per event)")
    print("  Lambda invocations (handler wall time in-process, on a shared machine):")
    for name, durations in sorted(usage.durations.items()):
        cpu_times = usage.cpu[name]
        print(
            f"    {name:<16} {len(durations):>6}  wall median {statistics.median(durations) * 1000:7.1f} ms"
            f"  mean {statistics.mean(durations) * 1000:7.1f} ms"
            f"  | CPU median {statistics.median(cpu_times) * 1000:6.1f} ms"
            f"  mean {statistics.mean(cpu_times) * 1000:6.1f} ms"
        )
    print(
        f"  state transitions: {counted.transitions} in {counted.executions} executions"
        f" ({counted.retries} of them retries)"
    )

    lines = _bill(usage, counted.transitions)
    total = sum(price.cost(quantity) for _, quantity, price in lines)
    print("  The bill (us-east-1 list prices):")
    for label, quantity, price in lines:
        print(f"    {label:<58} {quantity:>12,.1f} {price.unit:<24} ${price.cost(quantity):>10.6f}")
    print(f"    {'total':<58} {'':>12} {'':<24} ${total:>10.6f}")
    print(f"  ${total / events * 1_000_000:,.2f} per million events")
    print(f"  ${total / max(1, entries[JOURNEY]) * 1000:,.4f} per thousand {JOURNEY} entries")


if __name__ == "__main__":
    run()
