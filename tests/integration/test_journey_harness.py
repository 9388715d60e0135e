"""The journey harness (infra/local/harness.py) as a journey author uses it, and journeys reloaded
while customers are in them: runs in flight finish on the definition they started with."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from infra.local.harness import JourneyHarness
from infra.topology import JOURNEYS_DIR
from shared.store import aws
from tests.journey_probe import templates_sent
from tests.policies import PERMISSIVE_POLICY_FILE

MakeHarness = Callable[..., JourneyHarness]


def _write_journey(root: Path, steps: str) -> Path:
    folder = root / "reload_probe"
    (folder / "templates").mkdir(parents=True, exist_ok=True)
    for template in ("first", "second", "third"):
        (folder / "templates" / f"{template}.yaml").write_text(
            f"email:\n  subject: {template}\n  text: the {template} message\n"
            f"push:\n  title: {template}\n  body: the {template} message\n",
            encoding="utf-8",
        )
    (folder / "journey.yaml").write_text(
        f"id: reload_probe\nname: Reload probe\ntrigger: Product Added\nsteps:\n{steps}", encoding="utf-8"
    )
    return root


ONE_SEND = "  - wait: 1h\n  - send: {channel: email, template: first}\n"
EMAIL_THEN_PUSH = (
    "  - wait: 1h\n  - send: {channel: email, template: first}\n"
    "  - wait: 1d\n  - send: {channel: push, template: first}\n"
)
TWO_SENDS = (
    "  - wait: 30m\n  - send: {channel: email, template: second}\n"
    "  - wait: 1h\n  - send: {channel: email, template: third}\n"
)


@pytest.mark.journeys(str(JOURNEYS_DIR))
def test_seven_simulated_days_of_one_customer_in_the_cart_journey(journey_harness: JourneyHarness) -> None:
    h = journey_harness
    started = time.perf_counter()
    h.identify("ada", email="ada@example.com", context={"device": {"token": "ada-device"}})
    h.track("ada", "Product Added", cart_id="c-1", name="Kettle")

    h.advance("7d")

    wall = time.perf_counter() - started
    # The figure `make bench` reports; printed here (with -s) but never asserted on.
    print(f"\nseven simulated days of one customer: {wall:.3f} s of wall time")
    assert [(m["channel"], m["template"]) for m in h.messages("ada")] == [
        ("email", "cart-reminder"),
        ("push", "cart-reminder"),
    ]
    assert h.status("ada", "cart_abandonment") == "SUCCEEDED"
    assert h.path("ada", "cart_abandonment") == [
        "wait-1h",
        "send-email-cart-reminder",
        "checkout",
        "checkout.on_timeout.send-push-cart-reminder",
    ]


@pytest.mark.journeys(str(JOURNEYS_DIR))
def test_checking_out_the_same_cart_takes_the_on_event_path(journey_harness: JourneyHarness) -> None:
    h = journey_harness
    h.identify("eve", email="eve@example.com", context={"device": {"token": "eve-device"}})
    h.track("eve", "Product Added", cart_id="c-9")
    h.advance("5h")

    h.track("eve", "Checkout Started", cart_id="c-9")
    h.advance("2d")

    assert [m["channel"] for m in h.messages("eve")] == ["email"]
    assert h.path("eve", "cart_abandonment")[-1] == "checkout.on_event.exit"


def test_a_customer_without_an_address_shows_as_drops_with_their_reason(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(_write_journey(tmp_path, EMAIL_THEN_PUSH))
    h.identify("bob")  # no email, no device
    h.track("bob", "Product Added")

    h.advance("2d")

    assert h.messages("bob") == []
    assert [(d["channel"], d["reason"]) for d in h.drops("bob")] == [
        ("email", "no_email_address"),
        ("push", "no_push_address"),
    ]
    assert h.path("bob", "reload_probe") == ["wait-1h", "send-email-first", "wait-1d", "send-push-first"]


def test_seven_simulated_days_of_one_customer_in_a_journey_of_waits_and_sends(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(_write_journey(tmp_path, EMAIL_THEN_PUSH))
    started = time.perf_counter()
    h.identify("ada", email="ada@example.com", context={"device": {"token": "ada-device"}})
    h.track("ada", "Product Added")

    h.advance("7d")

    wall = time.perf_counter() - started
    print(f"\nseven simulated days of one customer (waits and sends): {wall:.3f} s of wall time")
    assert [(m["channel"], m["template"]) for m in h.messages("ada")] == [
        ("email", "first"),
        ("push", "first"),
    ]


def test_each_test_gets_a_fresh_engine_at_the_start_instant(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    journeys = _write_journey(tmp_path, ONE_SEND)
    h = make_journey_harness(journeys)
    start = h.now
    h.identify("cy", email="cy@example.com")
    h.track("cy", "Product Added")
    h.advance("1h")
    assert templates_sent(h, "cy") == ["first"]

    again = make_journey_harness(journeys)

    assert again.now == start
    assert again.messages() == [] and again.engine.executions() == []
    assert again.profile_ids("cy") == set()


def test_a_reloaded_journey_keeps_runs_in_flight_on_their_definition_and_starts_new_ones_on_the_new(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # Given a customer one step into the journey as first deployed (wait 1 h → email `first`)
    journeys = _write_journey(tmp_path, ONE_SEND)
    h = make_journey_harness(journeys, policy_file=PERMISSIVE_POLICY_FILE)  # two emails in an hour
    for user in ("early", "late"):
        h.identify(user, email=f"{user}@example.com")
    h.track("early", "Product Added")
    h.advance("10m")

    # When the journey changes (another template, a step added) and is redeployed
    _write_journey(tmp_path, TWO_SENDS)
    assert h.reload() == ["reload_probe"]
    h.track("late", "Product Added")
    h.advance("3h")

    # Then the run in flight finished on the old definition, the new entry ran the new one
    assert templates_sent(h, "early") == ["first"]
    assert templates_sent(h, "late") == ["second", "third"]
    assert h.status("early", "reload_probe") == h.status("late", "reload_probe") == "SUCCEEDED"
    assert len(h.path("late", "reload_probe")) == len(h.path("early", "reload_probe")) + 2


def test_reloading_unchanged_journeys_changes_nothing(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(_write_journey(tmp_path, ONE_SEND))

    assert h.reload() == []


HOUR_THEN_NOTE = "steps:\n  - wait: 1h\n  - send: {channel: email, template: note}\n"
# Parked in a wait_for of `Opened` (then the note), whatever the journey.
PARKED_UNTIL_OPENED = (
    "steps:\n  - wait_for: {event: Opened, timeout: 1d,"
    " on_event: [{send: {channel: email, template: note}}]}\n"
)


def _hundred_journeys(root: Path, count: int = 100, steps: str = HOUR_THEN_NOTE) -> Path:
    for i in range(count):
        folder = root / f"journey_{i:03d}"
        (folder / "templates").mkdir(parents=True)
        (folder / "templates" / "note.yaml").write_text(
            f"email:\n  subject: note {i}\n  text: note {i}\n", encoding="utf-8"
        )
        (folder / "journey.yaml").write_text(
            f"id: journey_{i:03d}\nname: Journey {i}\n"
            # Every journey on one event, told apart by a property: the router checks them all.
            f"trigger: {{event: Ping, where: {{n: {i}}}}}\n"
            "exit_on: [Stop]\n" + steps,
            encoding="utf-8",
        )
    return root


def test_a_hundred_journeys_route_each_event_to_the_journey_it_triggers(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # Given 100 journeys in the catalogue, all triggered by `Ping` with their own `n`
    h = make_journey_harness(
        _hundred_journeys(tmp_path), policy_file=PERMISSIVE_POLICY_FILE
    )  # several sends a day
    for user in ("a", "b"):
        h.identify(user, email=f"{user}@example.com")

    # When one customer pings journey 57 and 99, the other journey 3 and then stops
    h.track("a", "Ping", n=57)
    h.track("a", "Ping", n=99)
    h.track("b", "Ping", n=3)
    h.advance("30m")
    h.track("b", "Stop")
    h.advance("2h")

    # Then exactly those journeys ran, and the exit reached journey 3 among the hundred
    assert sorted(m["journey"] for m in h.messages("a")) == ["journey_057", "journey_099"]
    assert h.messages("b") == []
    assert h.stats("journey_003")["exited#exit_event"] == 1
    assert sum(h.stats(f"journey_{i:03d}").get("entered", 0) for i in range(100)) == 3


# The engine runs each function on its own threads, `continuum-<function>_<n>` (infra/local/engine.py).
ROUTER_THREAD = "continuum-journey-router_"


@contextmanager
def _router_requests() -> Iterator[list[str]]:
    """Every DynamoDB and Step Functions request the journey router makes meanwhile, as
    `<service>.<operation>`: a botocore hook on the shared clients (shared/store/aws.py), counting
    the calls made on the router's threads."""
    calls: list[str] = []
    lock = threading.Lock()

    def before(model: Any, **_: Any) -> None:
        if threading.current_thread().name.startswith(ROUTER_THREAD):
            with lock:
                calls.append(f"{model.service_model.service_name}.{model.name}")

    clients = [aws.client("dynamodb"), aws.client("stepfunctions")]
    for client in clients:
        client.meta.events.register("before-call", before, unique_id="count-router-requests")
    try:
        yield calls
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", unique_id="count-router-requests")


def _requests_to_route(h: JourneyHarness, user: str, event: str) -> list[str]:
    with _router_requests() as calls:
        h.track(user, event)
    return sorted(calls)


def _counts(
    make_journey_harness: MakeHarness,
    root: Path,
    event: str,
    steps: str = HOUR_THEN_NOTE,
    ping: bool = True,
) -> dict[int, list[str]]:
    """The router's requests to route `event` of a customer in journey 3 of 5, then of 100, journeys
    (all triggered by `Ping`, exited by `Stop`), or in none (`ping=False`)."""
    counts = {}
    for count in (5, 100):
        h = make_journey_harness(
            _hundred_journeys(root / str(count), count, steps), policy_file=PERMISSIVE_POLICY_FILE
        )
        h.identify("c", email="c@example.com")
        if ping:
            h.track("c", "Ping", n=3)
            h.advance("1m")
        counts[count] = _requests_to_route(h, "c", event)
    return counts


def test_routing_an_event_of_a_customer_in_no_journey_costs_one_query_with_five_or_a_hundred_journeys(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # Given a customer in none of 5, then of 100, journeys
    # When the customer sends an event no journey names
    counts = _counts(make_journey_harness, tmp_path, "Page Scrolled", ping=False)

    # Then the router read the profile's active runs (none), and no wait at all
    assert counts[5] == counts[100] == ["dynamodb.Query"], counts


def test_routing_an_event_no_journey_names_costs_the_same_with_five_or_a_hundred_journeys(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # Given a customer in one of 5, then of 100, journeys (waiting an hour, not for an event)
    # When the customer sends an event no journey names
    counts = _counts(make_journey_harness, tmp_path, "Page Scrolled")

    # Then the router made the same requests: the profile's active runs, then their waits (none)
    assert counts[5] == counts[100] == ["dynamodb.BatchGetItem", "dynamodb.Query"], counts


def test_resuming_a_parked_run_costs_the_same_with_five_or_a_hundred_journeys(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # Given a customer in one of 5, then of 100, journeys, parked in its wait_for of `Opened`
    # When the customer sends it
    counts = _counts(make_journey_harness, tmp_path, "Opened", PARKED_UNTIL_OPENED)

    # Then the same requests whatever the catalogue: the router read the active runs (Query) and their
    # waits (BatchGetItem) once each, resumed the run and deleted its wait; the run then sent its note
    # and ended, and its end was routed (the wait looked for, the run found by execution, its deferred
    # sends looked for, the run closed and counted, the slot released)
    assert counts[5] == counts[100], counts
    assert counts[5] == sorted(
        ["dynamodb.Query", "dynamodb.BatchGetItem", "stepfunctions.SendTaskSuccess", "dynamodb.DeleteItem"]
        + ["dynamodb.GetItem", "dynamodb.Query", "dynamodb.Query"]
        + ["dynamodb.UpdateItem", "dynamodb.UpdateItem", "dynamodb.DeleteItem"]
    ), counts


def test_routing_an_exit_every_journey_names_costs_the_same_with_five_or_a_hundred_journeys(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # Given a customer in one of 5, then of 100, journeys that all exit on `Stop`
    # When the customer sends it
    counts = _counts(make_journey_harness, tmp_path, "Stop")

    # Then the router read the profile's runs once, not once per journey naming the event: the same
    # requests (the exit itself and its end routed included)
    assert counts[5] == counts[100], counts
    assert counts[5] == sorted(
        ["dynamodb.Query", "dynamodb.BatchGetItem"]  # the active runs, their waits (none)
        + ["stepfunctions.StopExecution", "dynamodb.UpdateItem", "dynamodb.UpdateItem", "dynamodb.DeleteItem"]
        + ["dynamodb.GetItem", "dynamodb.Query", "dynamodb.Query"]  # its end (stopped: nothing to close)
    ), counts
