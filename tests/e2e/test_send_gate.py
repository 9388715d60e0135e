"""The send gate end to end, over HTTP on the local runtime's virtual clock, with the shipped
policy.yaml (quiet hours 21:00-08:00 in the recipient's zone, 1 marketing message per channel per
calendar day, deferred) and the journeys of tests/e2e/gate_journeys/; and once with a policy whose
cap drops (`python -m infra.local --policy`, here CONTINUUM_POLICY_FILE)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared import clock
from tests.e2e.conftest import LocalRuntime, journeys_folder, running

GATE_JOURNEYS = Path(__file__).parent / "gate_journeys"
DROP_POLICY = Path(__file__).parents[1] / "fixtures" / "policy-drop.yaml"
NEW_YORK = ZoneInfo("America/New_York")


def _journeys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return journeys_folder(tmp_path_factory.mktemp("journeys"), GATE_JOURNEYS)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    yield from running(env={"CONTINUUM_JOURNEYS_DIR": str(_journeys(tmp_path_factory))})


class Customer:
    def __init__(self, local: LocalRuntime, **traits: Any):
        self.local = local
        self.user_id = f"user-{uuid.uuid4().hex[:10]}"
        self.email = f"{self.user_id}@example.com"
        self.identify(email=self.email, **traits)

    def identify(self, **traits: Any) -> None:
        assert self.local.send("identify", {"userId": self.user_id, "traits": traits}) == (
            200,
            {"success": True},
        )

    def track(self, event: str, **properties: Any) -> None:
        payload = {"userId": self.user_id, "event": event, "properties": properties}
        assert self.local.send("track", payload)[0] == 200
        self.local.advance(0)  # let the event reach the journeys

    def entries(self, journey: str) -> list[dict[str, Any]]:
        """The customer's message log entries of `journey` (the log names the profile's userId)."""
        return [
            m for m in self.local.message_log() if m["journey"] == journey and m.get("userId") == self.user_id
        ]


def _now(local: LocalRuntime) -> datetime:
    return clock.parse(local.advance(0))


def _advance_to(local: LocalRuntime, moment: datetime) -> None:
    seconds = (moment - _now(local)).total_seconds()
    assert seconds >= 0, moment
    local.advance(seconds)


def _next_local(local: LocalRuntime, at: time, zone: ZoneInfo) -> datetime:
    """The next `at` wall-clock time in `zone` after the runtime's now (a day later at least an hour
    ahead, so that nothing before it is still running)."""
    now = _now(local).astimezone(zone)
    day = now.date() if now.time() < at else now.date() + timedelta(days=1)
    return datetime.combine(day, at, tzinfo=zone)


def test_a_send_due_at_3am_in_new_york_is_sent_at_8am_new_york_time(local: LocalRuntime) -> None:
    customer = Customer(local, timezone="America/New_York")
    _advance_to(local, _next_local(local, time(3, 0), NEW_YORK))

    customer.track("Offer Viewed")

    [entry] = customer.entries("night_offer")
    eight = _next_local(local, time(8, 0), NEW_YORK)
    assert (entry["status"], entry["reason"]) == ("deferred", "deferred_quiet_hours")
    assert clock.parse(entry["deferredUntil"]) == eight
    _advance_to(local, eight - timedelta(minutes=1))
    assert customer.entries("night_offer")[0]["status"] == "deferred"  # not a minute early

    local.advance(2 * 60)
    [sent] = customer.entries("night_offer")
    assert sent["status"] == "sent" and sent["to"] == customer.email
    assert clock.parse(sent["sentAt"]).astimezone(NEW_YORK).time().replace(second=0, microsecond=0) == time(
        8, 0
    )
    assert sent["firstDeferredAt"] == entry["firstDeferredAt"]


def test_a_purchase_during_the_quiet_night_cancels_the_deferred_message(local: LocalRuntime) -> None:
    customer = Customer(local, timezone="America/New_York")
    _advance_to(local, _next_local(local, time(3, 0), NEW_YORK))
    customer.track("Offer Viewed")
    assert customer.entries("night_offer")[0]["status"] == "deferred"

    local.advance(2 * 3600)  # 05:00 in New York
    customer.track("Order Completed", order_id="o-1")
    _advance_to(local, _next_local(local, time(9, 0), NEW_YORK))

    [entry] = customer.entries("night_offer")
    # The run ended while it waited: never sent, and the log says why.
    assert (entry["status"], entry["reason"]) == ("dropped", "run_ended")
    assert not [m for m in local.messages() if m["to"] == customer.email]


def test_two_journeys_at_once_with_a_daily_cap_of_one_send_one_and_defer_the_other(
    local: LocalRuntime,
) -> None:
    customer = Customer(local)  # no zone: no quiet hours (no default zone), UTC calendar days

    customer.track("Promo Day")

    entries = customer.entries("promo_a") + customer.entries("promo_b")
    assert sorted(e["status"] for e in entries) == ["deferred", "sent"]
    [deferred] = [e for e in entries if e["status"] == "deferred"]
    assert deferred["reason"] == "deferred_capped"
    midnight = datetime.combine(_now(local).date() + timedelta(days=1), time(), tzinfo=ZoneInfo("UTC"))
    assert clock.parse(deferred["deferredUntil"]) == midnight

    _advance_to(local, midnight + timedelta(minutes=1))  # the next day allows it
    entries = customer.entries("promo_a") + customer.entries("promo_b")
    assert [e["status"] for e in entries] == ["sent", "sent"]


@pytest.fixture(scope="module")
def dropping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    yield from running(
        env={
            "CONTINUUM_JOURNEYS_DIR": str(_journeys(tmp_path_factory)),
            "CONTINUUM_POLICY_FILE": str(DROP_POLICY),
        }
    )


def test_two_journeys_at_once_with_a_dropping_cap_of_one_send_one_and_record_the_other_capped(
    dropping: LocalRuntime,
) -> None:
    customer = Customer(dropping)

    customer.track("Promo Day")
    dropping.advance(2 * 86400)

    entries = customer.entries("promo_a") + customer.entries("promo_b")
    assert sorted((e["status"], e.get("reason") or "") for e in entries) == [
        ("dropped", "capped"),
        ("sent", ""),
    ]
