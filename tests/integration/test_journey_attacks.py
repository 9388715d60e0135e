"""Journeys written the way authors will write them, attacked through the harness: update steps read
by a later branch, local-time waits on the DST gap, weekdays and bad time zones, past date traits,
a re-entry cap, split determinism, and a reload while runs wait for an event."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.local.harness import JourneyHarness
from infra.local.http import api_gateway_event
from infra.topology import JOURNEY_RUNS, JOURNEY_WAITS, JOURNEYS_DIR, PROFILES, table_env
from tests.journey_probe import probe_journey, templates_sent
from tests.policies import PERMISSIVE_POLICY_FILE

MakeHarness = Callable[..., JourneyHarness]


UPDATE_THEN_BRANCH = """trigger: Signed Up
steps:
  - update: {set: {onboarded: true}, unset: [trial]}
  - branch:
      cases:
        - when: {traits: {onboarded: true, trial: {exists: false}}}
          steps: [{send: {channel: email, template: a}}]
      else: [{send: {channel: email, template: b}}]
"""


def test_an_update_is_seen_by_the_branch_after_it(make_journey_harness: MakeHarness, tmp_path: Path) -> None:
    h = make_journey_harness(probe_journey(tmp_path, UPDATE_THEN_BRANCH))
    h.identify("u", email="u@example.com", trial=True)
    h.track("u", "Signed Up")
    h.advance("1m")
    assert templates_sent(h, "u") == ["a"]


WAIT_UNTIL_0230 = """trigger: Signed Up
steps:
  - wait_until: {time: "02:30"}
  - send: {channel: email, template: a}
"""


def test_a_local_time_in_the_spring_forward_gap_is_sent_once_just_after_the_gap(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # 2030-03-31 is the spring-forward Sunday in Berlin: 02:00 CET → 03:00 CEST.
    h = make_journey_harness(
        probe_journey(tmp_path, WAIT_UNTIL_0230), start=datetime(2030, 3, 30, 12, 0, tzinfo=UTC)
    )
    h.identify("b", email="b@example.com", timezone="Europe/Berlin")
    h.track("b", "Signed Up")
    h.advance("3d")
    [message] = h.messages("b")
    assert message["template"] == "a"


WEEKDAYS = """trigger: Signed Up
steps:
  - wait_until: {time: "10:00", weekdays: [sat]}
  - send: {channel: email, template: a}
"""


def test_garbage_time_zones_and_weekdays_fail_nothing(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(probe_journey(tmp_path, WEEKDAYS))
    for n, zone in enumerate(["Mars/Olympus", "../../../etc/passwd", "", "UTC", "Pacific/Kiritimati"]):
        h.identify(f"w{n}", email=f"w{n}@example.com", timezone=zone)
        h.track(f"w{n}", "Signed Up")
    h.advance("8d")
    assert [len(h.messages(f"w{n}")) for n in range(5)] == [1] * 5


TRAIT_DATE = """trigger: Signed Up
steps:
  - wait_until: {trait: trial_ends_at, offset: -3d, time: "09:00"}
  - send: {channel: email, template: a}
"""


def test_a_date_trait_in_the_past_or_garbage_continues_at_once(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(probe_journey(tmp_path, TRAIT_DATE))
    for n, value in enumerate(["2001-01-01", "not a date", 0, "2001-01-01T00:00:00Z", 1e30, "9999-12-31"]):
        h.identify(f"d{n}", email=f"d{n}@example.com", trial_ends_at=value)
        h.track(f"d{n}", "Signed Up")
    h.advance("1m")
    assert [len(h.messages(f"d{n}")) for n in range(5)] == [1] * 5


CAP = """trigger: Product Added
re_entry: {max: 2, min_interval: 1d}
steps:
  - send: {channel: email, template: a}
"""


def test_a_re_entry_cap_admits_two_entries_a_day_apart(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(probe_journey(tmp_path, CAP))
    h.identify("c", email="c@example.com")
    for _ in range(5):
        h.track("c", "Product Added")
        h.advance("12h")
    assert templates_sent(h, "c") == ["a", "a"]
    stats = h.stats("probe")
    assert stats.get("entered") == 2


RELOAD = """trigger: Signed Up
steps:
  - send: {channel: email, template: a}
  - id: opened
    wait_for:
      event: App Opened
      timeout: 2d
      on_event: [{send: {channel: email, template: b}}]
"""
RELOADED = """trigger: Signed Up
steps:
  - id: opened-v2
    wait_for:
      event: App Opened
      timeout: 2d
      on_timeout: [{send: {channel: email, template: b}}]
  - send: {channel: email, template: a}
"""


def test_a_reload_while_a_run_waits_for_an_event_resumes_it_on_its_old_definition(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(probe_journey(tmp_path, RELOAD))
    h.identify("r", email="r@example.com")
    h.track("r", "Signed Up")
    h.advance("1h")
    probe_journey(tmp_path, RELOADED)
    assert h.reload() == ["probe"]
    h.track("r", "App Opened")
    h.advance("3d")
    assert templates_sent(h, "r") == ["a", "b"]
    assert h.status("r", "probe") == "SUCCEEDED"


WAIT_FOR = """trigger: Signed Up
steps:
  - send: {channel: email, template: a}
  - id: opened
    wait_for:
      event: App Opened
      timeout: 2d
      on_timeout: [{send: {channel: email, template: b}}]
"""


def _admin(h: JourneyHarness, method: str, target: str) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {h.engine.admin_token}"}
    response = h.engine.invoke("profiles", api_gateway_event(method, target, headers, b""))
    assert response["statusCode"] == 200, response
    body: dict[str, Any] = json.loads(response["body"])
    return body


def _waits(h: JourneyHarness) -> list[dict[str, Any]]:
    table = h.engine._env[table_env(JOURNEY_WAITS)]
    items: list[dict[str, Any]] = boto3.client("dynamodb").scan(TableName=table)["Items"]
    return items


def test_erasing_a_profile_while_its_run_waits_leaves_no_wait_and_no_run(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(probe_journey(tmp_path, WAIT_FOR))
    h.identify("e", email="e@example.com")
    h.track("e", "Signed Up")
    h.advance("1h")
    assert len(_waits(h)) == 1
    [profile_id] = h.profile_ids("e")
    _admin(h, "DELETE", f"/v1/profiles/{profile_id}")
    h.settle()

    h.advance("3d")

    assert _waits(h) == []
    assert [e["status"] for e in h.engine.executions()] != ["RUNNING"]
    stats = h.stats("probe")
    assert stats.get("entered") == 1
    assert sum(v for k, v in stats.items() if k.startswith("exited#")) == 1


def test_a_wait_for_that_timed_out_leaves_no_wait_once_the_run_ends(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(probe_journey(tmp_path, WAIT_FOR))
    h.identify("t", email="t@example.com")
    h.track("t", "Signed Up")

    h.advance("3d")

    assert templates_sent(h, "t") == ["a", "b"]
    assert h.status("t", "probe") == "SUCCEEDED"
    assert _waits(h) == []


RELOADED_OTHER_EVENT = """trigger: Signed Up
steps:
  - send: {channel: email, template: a}
  - id: opened
    wait_for:
      event: App Launched
      timeout: 2d
      on_event: [{send: {channel: email, template: b}}]
"""


def test_a_run_waiting_for_an_event_the_reloaded_journey_no_longer_awaits_is_still_resumed(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(probe_journey(tmp_path, RELOAD))
    h.identify("o", email="o@example.com")
    h.track("o", "Signed Up")
    h.advance("1h")
    probe_journey(tmp_path, RELOADED_OTHER_EVENT)
    assert h.reload() == ["probe"]

    h.track("o", "App Opened")  # what its own (old) definition waits for
    h.advance("3d")

    assert templates_sent(h, "o") == ["a", "b"]
    assert h.path("o", "probe")[-1] == "opened.on_event.send-email-b"


def test_a_run_waiting_in_a_journey_deleted_and_reloaded_is_still_resumed_by_its_event(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # Given a run parked on `App Opened`, then its journey deleted from the folder and reloaded
    h = make_journey_harness(probe_journey(tmp_path, RELOAD))
    h.identify("d", email="d@example.com")
    h.track("d", "Signed Up")
    h.advance("1h")
    shutil.rmtree(tmp_path / "probe")
    h.reload()
    assert list(h.engine._journeys) == []  # the catalogue the router reads has no journey left

    # When the event its definition awaits comes
    h.track("d", "App Opened")
    h.advance("3d")

    # Then the run took its on_event path, on the definition it started with
    assert templates_sent(h, "d") == ["a", "b"]
    assert h.path("d", "probe")[-1] == "opened.on_event.send-email-b"
    assert _waits(h) == []


def test_after_a_redeploy_old_runs_and_new_runs_each_resume_on_their_own_definitions_event(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # Given v1 (awaits `App Opened`) deployed, a customer in it, then v2 (awaits `App Launched`)
    # deployed from another folder, as a release would: the catalogue only knows v2
    h = make_journey_harness(probe_journey(tmp_path / "v1", RELOAD))
    h.identify("old", email="old@example.com")
    h.identify("new", email="new@example.com")
    h.track("old", "Signed Up")
    h.advance("1h")
    assert h.reload(probe_journey(tmp_path / "v2", RELOADED_OTHER_EVENT)) == ["probe"]
    h.track("new", "Signed Up")
    h.advance("1h")

    # When each sends both events, its own definition's first
    h.track("old", "App Opened")
    h.track("new", "App Opened")  # v1's event: nothing for a v2 run
    h.advance("1h")
    opened_only = templates_sent(h, "new")
    h.track("new", "App Launched")
    h.track("old", "App Launched")
    h.advance("3d")

    # Then each run was resumed by its own definition's event, once
    assert opened_only == ["a"]
    assert templates_sent(h, "old") == ["a", "b"] and templates_sent(h, "new") == ["a", "b"]
    assert h.status("old", "probe") == h.status("new", "probe") == "SUCCEEDED"
    assert h.path("old", "probe")[-1] == h.path("new", "probe")[-1] == "opened.on_event.send-email-b"
    assert _waits(h) == []


def test_a_merge_after_the_wait_is_parked_moves_the_run_to_the_survivor_whose_event_resumes_it(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # Given a known user's profile (the older one: it survives a merge), and an anonymous visitor's
    # run parked on `App Opened`
    h = make_journey_harness(probe_journey(tmp_path, RELOAD))
    h.identify("m-user", name="M")
    h.advance("1m")
    h.send("identify", {"anonymousId": "anon-m", "traits": {"email": "m@example.com"}})
    h.send("track", {"anonymousId": "anon-m", "event": "Signed Up", "properties": {}})
    h.advance("1h")
    [parked] = _waits(h)
    # When the visitor logs in (the two profiles merge), before the event
    h.send("identify", {"anonymousId": "anon-m", "userId": "m-user"})
    h.advance("1m")
    [kept] = _waits(h)
    moved = _active_runs(h)
    # and the awaited event comes under the user id
    h.track("m-user", "App Opened")
    h.advance("3d")

    # Then the run had moved to the profile the user's events resolve to (its wait, keyed by the
    # execution, stayed as it was), and that profile's event resumed it
    assert len(h.profile_ids("m-user")) == 2
    assert kept == parked
    assert moved == [(_live_profile(h, "m-user"), parked["executionArn"]["S"])]
    assert templates_sent(h, "m-user") == ["a", "b"]
    assert _waits(h) == []


def _active_runs(h: JourneyHarness) -> list[tuple[str, str]]:
    """(profile, execution) of every active run."""
    table = h.engine._env[table_env(JOURNEY_RUNS)]
    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    return [
        (item["profileId"]["S"], item["executionArn"]["S"])
        for item in items
        if item.get("status", {}).get("S") == "active" and "executionArn" in item
    ]


def _live_profile(h: JourneyHarness, user_id: str) -> str:
    from shared.models.profile import Identifier
    from shared.store.profiles import DynamoProfileStore

    store = DynamoProfileStore(h.engine._env[table_env(PROFILES)])
    user = Identifier(type="user_id", value=user_id)
    owner = store.lookup([user]).owners[user]
    profile = store.profile(owner)
    assert profile is not None
    return profile.profileId


@pytest.mark.journeys(str(JOURNEYS_DIR))
def test_held_out_conversions_are_counted_apart_from_the_journeys(journey_harness: JourneyHarness) -> None:
    h = journey_harness
    held: list[str] = []
    treated: list[str] = []
    n = 0
    while not (held and treated):
        user = f"h{n}"
        n += 1
        before = h.stats("win_back").get("heldOut", 0)
        h.identify(user, email=f"{user}@example.com")
        h.track(user, "Order Completed", total=10)
        (held if h.stats("win_back").get("heldOut", 0) > before else treated).append(user)
    h.advance("5d")
    converted = h.conversions("win_back")

    h.track(held[0], "Order Completed", revenue=7)
    h.track(treated[0], "Order Completed", total=3)

    after = h.conversions("win_back")
    assert {k: after[k] - converted[k] for k in after} == {
        "conversions": 1,
        "revenue": 3,
        "heldOutConversions": 1,
        "heldOutRevenue": 7,
    }
    h.advance("40d")
    assert h.messages(held[0]) == []
    stats = h.stats("win_back")
    assert stats["entered"] - sum(v for k, v in stats.items() if k.startswith("exited#")) == 0


SPLIT_THEN_EXIT = """trigger: Signed Up
re_entry: {max: 3, min_interval: 1d}
steps:
  - id: coin
    split:
      paths:
        - {weight: 1, steps: [{send: {channel: email, template: a}}, exit]}
        - {weight: 1, steps: [{send: {channel: email, template: b}}]}
  - send: {channel: email, template: a}
"""


def test_a_compiled_split_takes_one_path_per_profile_the_same_on_re_entry(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # Given a split whose first path sends `a` and exits, whose second sends `b` and goes on to `a`
    # Two marketing emails in an hour: no daily cap here.
    h = make_journey_harness(probe_journey(tmp_path, SPLIT_THEN_EXIT), policy_file=PERMISSIVE_POLICY_FILE)
    users = [f"s{i}" for i in range(16)]  # both paths unseen: 2 in 65,536 (profile ids are random)
    for user in users:
        h.identify(user, email=f"{user}@example.com")
        h.track(user, "Signed Up")
    h.advance("1h")

    # Then each customer took exactly one whole path, and both paths were taken by someone
    first = {user: templates_sent(h, user) for user in users}
    assert set(map(tuple, first.values())) <= {("a",), ("b", "a")}
    assert {tuple(t) for t in first.values()} == {("a",), ("b", "a")}
    for user in users:
        path = h.path(user, "probe")
        assert path[0] == "coin" and ("coin.path-0.exit" in path) == (first[user] == ["a"]), path

    # And re-entering a day later takes each customer down the same path again
    h.advance("1d")
    for user in users:
        h.track(user, "Signed Up")
    h.advance("1h")
    assert {user: templates_sent(h, user) for user in users} == {user: first[user] * 2 for user in users}
