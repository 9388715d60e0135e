"""The send step on a task token, attacked through the harness: deliver failing after its commit but
before its answer, deliver failing for good, deferrals in a row, a deferral past the Task's timeout."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.local.harness import JourneyHarness
from infra.local.http import api_gateway_event
from shared.store.task_tokens import TaskTokens
from tests.journey_probe import probe_journey, templates_sent
from tests.policies import PERMISSIVE_POLICY_FILE

MakeHarness = Callable[..., JourneyHarness]


SEND_THEN_SEND = """trigger: Signed Up
steps:
  - send: {channel: email, template: a}
  - wait: 1h
  - send: {channel: email, template: b}
"""


def test_deliver_failing_after_its_commit_before_its_answer_is_retried_and_sends_once(
    make_journey_harness: MakeHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first answer of the token fails (the invocation raises after the outcome is logged): the
    # Task's Retry invokes deliver again, which answers from the log, without a second message.
    h = make_journey_harness(probe_journey(tmp_path, SEND_THEN_SEND), policy_file=PERMISSIVE_POLICY_FILE)
    original = TaskTokens.resume
    failed: list[str] = []

    def resume_failing_once(self: TaskTokens, token: str, output: dict[str, Any] | None = None) -> bool:
        if not failed:
            failed.append(token)
            raise ConnectionError("the answer did not get through")
        return original(self, token, output)

    monkeypatch.setattr(TaskTokens, "resume", resume_failing_once)
    h.identify("r", email="r@example.com")
    h.track("r", "Signed Up")
    h.advance("2h")

    assert failed
    assert templates_sent(h, "r") == ["a", "b"]
    assert h.status("r", "probe") == "SUCCEEDED"


def test_deliver_failing_for_good_fails_the_run_at_once_and_counts_it_failed(
    make_journey_harness: MakeHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not after the send step's 3600 s token timeout: the function's error fails the Task (retried as
    # every Task is), then the run.
    h = make_journey_harness(probe_journey(tmp_path, SEND_THEN_SEND), policy_file=PERMISSIVE_POLICY_FILE)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a bug in the send gate")

    monkeypatch.setattr("functions.deliver.handler.handle_send", broken)
    h.identify("f", email="f@example.com")
    h.track("f", "Signed Up")
    h.advance("1m")

    assert h.status("f", "probe") == "FAILED"
    assert templates_sent(h, "f") == []
    assert h.stats("probe").get("exited#failed") == 1


QUIET_AND_A_DAILY_CAP = """topics:
  marketing:
    default: {email: opt_out, push: opt_out}
default_topic: marketing
quiet_hours: {start: "21:00", end: "08:00"}
default_timezone: UTC
caps:
  - id: daily
    limit: 1
    window: calendar_day
    per_channel: true
    on_cap: defer
    max_deferral: 72h
"""

ONE_SEND = """trigger: Signed Up
steps:
  - send: {channel: email, template: a}
  - send: {channel: email, template: b, topic: transactional}
"""


def test_a_send_deferred_by_quiet_hours_then_by_a_cap_then_by_quiet_hours_again_is_sent_once(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # Two journeys send at 22:00: both wait for 08:00 (quiet hours); at 08:00 one is sent and the
    # other waits for the next calendar day (the cap), which begins in quiet hours: 08:00 again.
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        QUIET_AND_A_DAILY_CAP.replace(
            "default_topic", "  transactional:\n    default: {email: opt_out, push: opt_out}\ndefault_topic"
        ),
        encoding="utf-8",
    )
    journeys = probe_journey(probe_journey(tmp_path / "journeys", ONE_SEND, "first"), ONE_SEND, "second")
    h = make_journey_harness(journeys, policy_file=policy)
    h.identify("q", email="q@example.com")
    h.advance("13h")  # 22:00 UTC
    h.track("q", "Signed Up")
    assert templates_sent(h, "q") == []

    h.advance("10h")  # 08:00 the next day: one journey's first send, then its second
    [(journey, count)] = Counter(m["journey"] for m in h.messages("q")).items()
    assert count == 2
    h.advance("1d")

    sent = h.messages("q")
    assert sorted((m["journey"], m["template"]) for m in sent) == [
        ("first", "a"),
        ("first", "b"),
        ("second", "a"),
        ("second", "b"),
    ]
    assert [h.status("q", journey) for journey in ("first", "second")] == ["SUCCEEDED", "SUCCEEDED"]
    other = "second" if journey == "first" else "first"
    assert {m["sentAt"][:13] for m in sent if m["journey"] == other and m["template"] == "a"} == {
        "2030-01-09T08"
    }
    assert [e["status"] for e in h.engine.message_log() if e["status"] not in ("sent", "dropped")] == []


DEFERRED_BY_NIGHT = """trigger: Signed Up
exit_on: [Order Completed]
steps:
  - send: {channel: email, template: a}
"""


def _night(h: JourneyHarness, user_id: str) -> None:
    """The user signs up at 22:00 UTC (in quiet hours, 21:00-08:00 in policy.yaml): the send waits."""
    h.identify(user_id, email=f"{user_id}@example.com", timezone="UTC")
    h.advance("13h")
    h.track(user_id, "Signed Up")
    assert [e["status"] for e in h.engine.message_log()] == ["deferred"]


def test_an_exit_while_a_send_is_deferred_ends_the_run_and_records_it_dropped_run_ended(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(probe_journey(tmp_path, DEFERRED_BY_NIGHT))
    _night(h, "x")
    h.advance("1h")
    h.track("x", "Order Completed")
    h.advance("1d")

    assert templates_sent(h, "x") == []
    assert [(e["status"], e.get("reason")) for e in h.engine.message_log()] == [("dropped", "run_ended")]
    assert h.status("x", "probe") == "ABORTED"


def test_a_reload_while_a_send_is_deferred_sends_it_once_in_the_morning(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(probe_journey(tmp_path, DEFERRED_BY_NIGHT))
    _night(h, "l")
    probe_journey(tmp_path, DEFERRED_BY_NIGHT.replace("template: a", "template: b"))
    assert h.reload() == ["probe"]
    h.advance("1d")

    assert templates_sent(h, "l") == ["a"]  # its own definition's
    assert [m["sentAt"][:13] for m in h.messages("l")] == ["2030-01-08T08"]
    assert h.status("l", "probe") == "SUCCEEDED"


def test_a_merge_while_a_send_is_deferred_sends_it_once_to_the_survivor_in_the_morning(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(probe_journey(tmp_path, DEFERRED_BY_NIGHT))
    _night(h, "m")
    h.send("identify", {"anonymousId": "anon-m", "traits": {"email": "m@example.com"}})
    h.send("alias", {"previousId": "anon-m", "userId": "m"})
    h.advance("1d")

    assert templates_sent(h, "m") == ["a"]
    assert [m["sentAt"][:13] for m in h.messages("m")] == ["2030-01-08T08"]


def test_erasing_a_profile_while_its_send_is_deferred_sends_nothing_later(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(probe_journey(tmp_path, DEFERRED_BY_NIGHT))
    _night(h, "e")
    [profile_id] = h.profile_ids("e")
    headers = {"authorization": f"Bearer {h.engine.admin_token}"}
    erased = h.engine.invoke(
        "profiles", api_gateway_event("DELETE", f"/v1/profiles/{profile_id}", headers, b"")
    )
    assert erased["statusCode"] == 200, erased
    h.settle()
    h.advance("1d")

    assert [e for e in h.engine.message_log() if e["status"] in ("sent", "queued", "deferred")] == []
    assert [e["status"] for e in h.engine.executions()] != ["RUNNING"]


def test_deliver_failing_after_its_answer_sends_once_and_the_run_goes_on(
    make_journey_harness: MakeHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The token is answered, then the invocation fails (its last words: a metrics flush, a timeout):
    # whichever Step Functions takes, the retried invocation answers from the log, sending nothing.
    h = make_journey_harness(probe_journey(tmp_path, SEND_THEN_SEND), policy_file=PERMISSIVE_POLICY_FILE)
    original = TaskTokens.resume
    answered: list[bool] = []

    def resume_then_fail_once(self: TaskTokens, token: str, output: dict[str, Any] | None = None) -> bool:
        answered.append(original(self, token, output))
        if len(answered) == 1:
            raise ConnectionError("the invocation died after its answer")
        return answered[-1]

    monkeypatch.setattr(TaskTokens, "resume", resume_then_fail_once)
    h.identify("a", email="a@example.com")
    h.track("a", "Signed Up")
    h.advance("2h")

    assert answered[0] is True
    assert templates_sent(h, "a") == ["a", "b"]
    assert h.status("a", "probe") == "SUCCEEDED"


def test_a_deferral_whose_answer_fails_is_retried_waits_once_and_is_counted_once(
    make_journey_harness: MakeHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deferral is logged, then its SendTaskFailure fails: the retried invocation decides again
    # (still quiet hours), answers, and the run waits for the morning; the deferral counts once.
    h = make_journey_harness(probe_journey(tmp_path, DEFERRED_BY_NIGHT))
    original = TaskTokens.fail
    failed: list[str] = []

    def fail_failing_once(self: TaskTokens, token: str, error: str, cause: str) -> bool:
        if not failed:
            failed.append(cause)
            raise ConnectionError("the answer did not get through")
        return original(self, token, error, cause)

    monkeypatch.setattr(TaskTokens, "fail", fail_failing_once)
    _night(h, "d")
    h.advance("1d")

    assert [cause[:16] for cause in failed] == ["2030-01-08T08:00"]
    assert templates_sent(h, "d") == ["a"]
    assert [m["sentAt"][:13] for m in h.messages("d")] == ["2030-01-08T08"]
    stats = h.stats("probe")
    assert {k: v for k, v in stats.items() if "#deferred#" in k or k.endswith("#sent")} == {
        "step#send-email-a#deferred#deferred_quiet_hours": 1,
        "step#send-email-a#sent": 1,
    }
