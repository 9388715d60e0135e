"""The gate's rules and their one order (shared/delivery/gate.py, caps.py), and deferral through the
send step (shared/delivery/service.py), with in-memory fakes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from shared import clock
from shared.delivery.caps import CapCheck, CountedSend, allowed_at, cap_sort_key, check_caps
from shared.delivery.gate import Defer, Drop, GateFacts, Send, decide
from shared.delivery.service import COMMIT_ATTEMPTS, CapContentionError, handle_send
from shared.delivery.templates import TemplateRenderError
from shared.models.message import SendRequest
from shared.models.policy import CapRule, ConsentRecord, Policy
from shared.models.profile import Identifier, Profile
from tests.policies import PERMISSIVE, SHIPPED
from tests.unit.fakes import FakeGateStore, FakeJourneyStats, FakeMessageLog, FakeQueue, FakeSegmentStates

NEW_YORK_NOON = clock.parse("2026-03-02T17:00:00Z")  # 12:00 EST
NEW_YORK_3AM = clock.parse("2026-03-02T08:00:00Z")  # 03:00 EST
EXECUTION = "arn:aws:states:us-east-1:1:execution:j:run-1"
DAILY = SHIPPED.caps[0]  # marketing_daily_per_channel: 1 per channel per calendar day, deferred


def _request(**overrides: Any) -> SendRequest:
    fields: dict[str, Any] = {
        "journey": "j",
        "step": "send-email-hello",
        "channel": "email",
        "template": "hello",
        "content": {"subject": "Hi", "text": "Hi"},
        "profileId": "p-1",
        "enteredAt": "2026-03-01T00:00:00.000Z",
        "executionId": EXECUTION,
    }
    return SendRequest.model_validate({**fields, **overrides})


def _profile(**fields: Any) -> Profile:
    return Profile(
        profileId="p-1",
        identifiers=[Identifier(type="email", value="ada@example.com")],
        traits={"timezone": "America/New_York", **fields.pop("traits", {})},
        createdAt="2026-01-01T00:00:00.000Z",
        updatedAt="2026-01-01T00:00:00.000Z",
        **fields,
    )


def _capped_daily(rule: CapRule = DAILY, at: str = "2026-03-02T14:00:00.000Z") -> tuple[CapCheck, ...]:
    return (
        CapCheck(
            rule=rule, sort_key=cap_sort_key(rule, "email"), version=1, sends=(CountedSend(at, "other"),)
        ),
    )


# -- the order -------------------------------------------------------------------------------------


def test_an_unsubscribed_and_capped_profile_is_reported_unsubscribed() -> None:
    facts = GateFacts(
        consent={
            "marketing/email": ConsentRecord(subscribed=False, source="one_click", at="2026-03-01T00:00:00Z")
        },
        caps=_capped_daily(),
    )
    assert decide(_request(), _profile(), facts, SHIPPED, NEW_YORK_NOON) == Drop("unsubscribed")


def test_a_capped_send_inside_quiet_hours_is_reported_capped() -> None:
    at = "2026-03-02T05:30:00.000Z"  # 00:30 EST today
    facts = GateFacts(caps=_capped_daily(at=at))
    dropping = GateFacts(caps=_capped_daily(rule=DAILY.model_copy(update={"on_cap": "drop"}), at=at))

    assert decide(_request(), _profile(), dropping, SHIPPED, NEW_YORK_3AM) == Drop("capped")
    deferred = decide(_request(), _profile(), facts, SHIPPED, NEW_YORK_3AM)
    assert deferred == Defer("deferred_capped", clock.parse("2026-03-03T05:00:00Z"))  # next NY midnight


def test_a_suppressed_address_comes_before_caps_and_quiet_hours() -> None:
    facts = GateFacts(suppressed=frozenset({"ada@example.com"}), caps=_capped_daily())
    assert decide(_request(), _profile(), facts, SHIPPED, NEW_YORK_3AM) == Drop("suppressed_bounce")


def test_a_suppressed_address_is_skipped_for_the_newest_unsuppressed_one() -> None:
    profile = _profile()
    profile.identifiers.append(Identifier(type="email", value="new@example.com"))
    facts = GateFacts(suppressed=frozenset({"new@example.com"}))

    decision = decide(_request(), profile, facts, PERMISSIVE, NEW_YORK_NOON)
    assert isinstance(decision, Send) and decision.to == "ada@example.com"


def test_quiet_hours_come_before_the_address_check() -> None:
    profile = _profile()
    profile.identifiers.clear()
    assert decide(_request(), profile, GateFacts(), SHIPPED, NEW_YORK_3AM) == Defer(
        "deferred_quiet_hours", clock.parse("2026-03-02T13:00:00Z")
    )
    assert decide(_request(), profile, GateFacts(), SHIPPED, NEW_YORK_NOON) == Drop("no_email_address")


def test_an_opt_in_topic_without_a_record_is_not_sent() -> None:
    request = _request(topic="product_updates")
    assert decide(request, _profile(), GateFacts(), SHIPPED, NEW_YORK_NOON) == Drop("not_opted_in")


def test_transactional_skips_opt_outs_caps_and_quiet_hours_but_not_suppression() -> None:
    request = _request(topic="transactional")
    facts = GateFacts(
        consent={
            "transactional/email": ConsentRecord(subscribed=False, source="admin", at="2026-03-01T00:00:00Z")
        },
        caps=_capped_daily(),
    )
    profile = _profile(traits={"unsubscribed": True})

    sent = decide(request, profile, facts, SHIPPED, NEW_YORK_3AM)
    assert isinstance(sent, Send) and sent.cap_writes == ()
    bounced = GateFacts(suppressed=frozenset({"ada@example.com"}))
    assert decide(request, profile, bounced, SHIPPED, NEW_YORK_3AM) == Drop("suppressed_bounce")


def test_a_journey_without_quiet_hours_sends_at_night() -> None:
    assert isinstance(
        decide(_request(quietHours=False), _profile(), GateFacts(), SHIPPED, NEW_YORK_3AM), Send
    )


def test_a_render_failure_is_dropped_with_where_it_failed_and_no_value() -> None:
    def failing(content: dict[str, str], context: dict[str, Any], **layout: Any) -> dict[str, str]:
        raise TemplateRenderError("subject", 1, "profile.traits.frist_name", "undefined variable")

    decision = decide(_request(), _profile(), GateFacts(), PERMISSIVE, NEW_YORK_NOON, render=failing)
    assert decision == Drop("render_failed", "field=subject, line=1, variable=profile.traits.frist_name")


# -- caps ------------------------------------------------------------------------------------------


def _sends(*ats: str) -> tuple[CountedSend, ...]:
    return tuple(CountedSend(at, f"k{i}") for i, at in enumerate(ats))


def test_a_rolling_cap_allows_the_next_send_when_the_oldest_counted_one_leaves() -> None:
    weekly = SHIPPED.caps[1]  # 5 per rolling 7 days
    sends = _sends(*(f"2026-03-0{d}T10:00:00.000Z" for d in range(1, 6)))
    now = clock.parse("2026-03-06T12:00:00Z")

    assert allowed_at(weekly, sends, now, None) == clock.parse("2026-03-08T10:00:00Z")
    assert allowed_at(weekly, sends, clock.parse("2026-03-08T10:00:00Z"), None) is None


def test_a_calendar_day_is_the_recipients_and_utc_without_a_zone() -> None:
    sends = _sends("2026-03-02T03:00:00.000Z")  # 22:00 EST on Mar 1, 03:00 UTC on Mar 2
    now = clock.parse("2026-03-02T12:00:00Z")
    from zoneinfo import ZoneInfo

    assert allowed_at(DAILY, sends, now, ZoneInfo("America/New_York")) is None  # a new day in New York
    assert allowed_at(DAILY, sends, now, None) == clock.parse("2026-03-03T00:00:00Z")  # same UTC day


def test_a_deferral_past_max_deferral_is_dropped_capped() -> None:
    checks = _capped_daily(rule=DAILY.model_copy(update={"max_deferral": 3600}))
    verdict = check_caps(checks, "mine", NEW_YORK_NOON, None, first_deferred_at=None)
    assert verdict.drop is True  # type: ignore[union-attr]
    roomy = check_caps(_capped_daily(), "mine", NEW_YORK_NOON, None, first_deferred_at=None)
    assert roomy.drop is False  # type: ignore[union-attr]
    stale = check_caps(_capped_daily(), "mine", NEW_YORK_NOON, None, NEW_YORK_NOON - timedelta(hours=20))
    assert stale.drop is True  # type: ignore[union-attr]


def test_a_send_counted_already_is_not_counted_again() -> None:
    check = CapCheck(rule=DAILY, sort_key="cap#x", version=3, sends=_sends("2026-03-02T17:00:00.000Z"))
    verdict = check_caps((check,), "k0", NEW_YORK_NOON, None, None)
    assert verdict.writes[0].sends == check.sends  # type: ignore[union-attr]


# -- through the send step -------------------------------------------------------------------------


@pytest.fixture
def world() -> tuple[FakeGateStore, FakeMessageLog, FakeQueue, FakeJourneyStats]:
    log = FakeMessageLog()
    store = FakeGateStore(cap_items=log.cap_items)
    store.docs["p-1"] = _profile()
    return store, log, FakeQueue(), FakeJourneyStats()


def _send(world: Any, request: SendRequest, now: datetime, policy: Policy = SHIPPED) -> Any:
    store, log, queue, stats = world
    clock.install(lambda: now)
    try:
        return handle_send(request, store, log, queue, stats, FakeSegmentStates(), policy)
    finally:
        clock.reset()


def test_a_deferred_send_is_logged_then_sent_when_run_again_at_its_time(world: Any) -> None:
    store, log, queue, stats = world
    deferred = _send(world, _request(), NEW_YORK_3AM)
    assert (deferred.status, deferred.reason, deferred.deferredUntil) == (
        "deferred",
        "deferred_quiet_hours",
        "2026-03-02T13:00:00.000Z",
    )
    assert deferred.firstDeferredAt == "2026-03-02T08:00:00.000Z" and queue.messages == []

    sent = _send(world, _request(), clock.parse(deferred.deferredUntil))
    assert sent.status == "queued" and [m.to for m in queue.messages] == ["ada@example.com"]
    assert stats.counters["j"] == {
        "step#send-email-hello#deferred#deferred_quiet_hours": 1,
        "step#send-email-hello#sent": 1,
    }


def test_a_retried_deferring_step_defers_once_and_counts_once(world: Any) -> None:
    store, log, queue, stats = world
    first = _send(world, _request(), NEW_YORK_3AM)
    again = _send(world, _request(), NEW_YORK_3AM + timedelta(seconds=5))  # the Lambda retried

    assert again.deferredUntil == first.deferredUntil and again.firstDeferredAt == first.firstDeferredAt
    assert stats.counters["j"] == {"step#send-email-hello#deferred#deferred_quiet_hours": 1}


def test_a_goal_reached_while_deferred_drops_the_message_when_it_runs_again(world: Any) -> None:
    store, log, queue, stats = world
    deferred = _send(world, _request(goal="Order Completed"), NEW_YORK_3AM)
    store.docs["p-1"].lastEvents["Order Completed"] = "2026-03-02T10:00:00.000Z"

    final = _send(world, _request(goal="Order Completed"), clock.parse(deferred.deferredUntil))
    assert (final.status, final.reason) == ("dropped", "goal_reached") and queue.messages == []


def test_two_sends_the_same_day_count_one_and_defer_the_other_to_the_recipients_midnight(world: Any) -> None:
    store, log, queue, stats = world
    first = _send(world, _request(executionId=EXECUTION + "a"), NEW_YORK_NOON)
    second = _send(world, _request(executionId=EXECUTION + "b"), NEW_YORK_NOON)

    assert first.status == "queued"
    assert (second.status, second.reason, second.deferredUntil) == (
        "deferred",
        "deferred_capped",
        "2026-03-03T05:00:00.000Z",
    )
    # At midnight New York time quiet hours hold it again, until 08:00; then it goes.
    at_midnight = _send(world, _request(executionId=EXECUTION + "b"), clock.parse("2026-03-03T05:00:00Z"))
    assert (at_midnight.reason, at_midnight.deferredUntil) == (
        "deferred_quiet_hours",
        "2026-03-03T13:00:00.000Z",
    )
    assert at_midnight.firstDeferredAt == second.firstDeferredAt
    final = _send(world, _request(executionId=EXECUTION + "b"), clock.parse("2026-03-03T13:00:00Z"))
    assert final.status == "queued" and len(queue.messages) == 2


def test_a_cap_taken_between_the_read_and_the_commit_is_decided_again(world: Any) -> None:
    store, log, queue, stats = world
    interfered: list[bool] = []

    def concurrent_send() -> None:
        if not interfered:
            interfered.append(True)
            handle_send(_request(executionId=EXECUTION + "other"), *world, FakeSegmentStates(), SHIPPED)

    store.before_facts = concurrent_send
    entry = _send(world, _request(), NEW_YORK_NOON)

    assert (entry.status, entry.reason) == ("deferred", "deferred_capped")
    assert log.commits == 3  # the concurrent one's, this one's refused, this one's again


def test_a_send_that_keeps_losing_its_cap_items_pauses_between_attempts_then_gives_up(world: Any) -> None:
    store, log, queue, stats = world
    # A cap every send counts on and none reaches: each concurrent send changes the cap item.
    roomy = CapRule(id="roomy", limit=1000, window="7d")
    policy = SHIPPED.model_copy(update={"caps": [roomy], "quiet_hours": None})
    pauses: list[int] = []
    inside: list[bool] = []

    def concurrent_send() -> None:  # before each of this send's reads, another send takes the item
        if inside:
            return
        inside.append(True)
        other = _request(executionId=f"{EXECUTION}other{len(log.entries)}")
        handle_send(other, store, log, queue, stats, FakeSegmentStates(), policy)
        inside.clear()

    store.before_facts = concurrent_send
    with pytest.raises(CapContentionError):
        handle_send(_request(), store, log, queue, stats, FakeSegmentStates(), policy, pause=pauses.append)

    # Each failed attempt but the last pauses (jittered, in the deliver function) before reading again.
    assert pauses == list(range(COMMIT_ATTEMPTS - 1))
    assert _request().message_key not in log.entries
