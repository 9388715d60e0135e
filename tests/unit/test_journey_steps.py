"""The journey-steps actions (shared/journeys/steps.py) against in-memory ports."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import clock
from shared.identity.resolver import resolve
from shared.identity.rules import IdentityRules
from shared.journeys.steps import (
    ACTIONS,
    StepPorts,
    StepRequest,
    UnknownActionError,
    draw,
    pick_path,
    run_step,
    update_message_id,
)
from shared.models.events import DETAIL_RESOLVED, SOURCE_IDENTITY
from shared.models.message import MessageLogEntry
from shared.models.profile import Identifier, Profile, TimelineEntry
from tests.unit.conftest import FIXED_NOW
from tests.unit.fakes import (
    FakeJourneyWaits,
    FakeMessageLog,
    FakeProfileStore,
    FakePublisher,
    FakeSegmentStates,
    FakeTaskTokens,
)

pytestmark = pytest.mark.usefixtures("fixed_clock")

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:continuum-welcome:run-1"
NOW = clock.iso(FIXED_NOW)  # 2024-05-01T12:00:00.000Z
ENTERED = "2024-05-01T10:00:00.000Z"


class JournaledProfiles:
    """The profile store, noting in the shared journal when the timeline is read."""

    def __init__(self, store: FakeProfileStore, journal: list[str]) -> None:
        self.store, self.journal = store, journal

    def profile(self, profile_id: str) -> Profile | None:
        return self.store.profile(profile_id)

    def timeline_since(self, profile_ids: Iterable[str], since: str) -> list[TimelineEntry]:
        self.journal.append("read timeline")
        return self.store.timeline_since(profile_ids, since)


class World:
    def __init__(self) -> None:
        self.journal: list[str] = []
        self.profiles = FakeProfileStore()
        self.waits = FakeJourneyWaits(self.journal)
        self.tasks = FakeTaskTokens(self.journal)
        self.messages = FakeMessageLog()
        self.publisher = FakePublisher()
        self.segments = FakeSegmentStates()
        self.default_timezone = "UTC"

    @property
    def ports(self) -> StepPorts:
        return StepPorts(
            profiles=JournaledProfiles(self.profiles, self.journal),
            waits=self.waits,
            tasks=self.tasks,
            messages=self.messages,
            publisher=self.publisher,
            identity=lambda call: resolve(
                call, self.profiles, IdentityRules(), clock.parse(call["timestamp"])
            ),
            segments=self.segments,
            default_timezone=self.default_timezone,
        )

    def profile(self, profile_id: str = "p-1", *identifiers: Identifier, **fields: Any) -> None:
        self.profiles.seed(profile_id, *identifiers, created_at="2024-01-01T00:00:00.000Z", **fields)

    def event(self, profile_id: str, name: str, at: str, message_id: str, **properties: Any) -> None:
        self.profiles._keep_timeline(
            TimelineEntry(
                profileId=profile_id,
                type="track",
                name=name,
                timestamp=at,
                messageId=message_id,
                data=properties,
            )
        )

    def run(self, action: str, spec: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "action": action,
            "journey": "welcome",
            "step": "the-step",
            "spec": spec,
            "profileId": "p-1",
            "enteredAt": ENTERED,
            "trigger": {"event": "Product Added", "properties": {"cart_id": "c-1"}, "messageId": "m-trigger"},
            "executionId": EXECUTION,
            **overrides,
        }
        return run_step(StepRequest.model_validate(payload), self.ports)


@pytest.fixture
def world() -> World:
    return World()


def until(world: World, spec: dict[str, Any], entered: str = ENTERED) -> str:
    result: str = world.run("wait_until", spec, enteredAt=entered)["until"]
    return result


# -- wait_until: local time of day ------------------------------------------------------------------


def test_the_registry_has_one_action_per_step_type_the_function_runs() -> None:
    assert set(ACTIONS) == {"wait_until", "wait_for", "branch", "split", "update"}


def test_an_unknown_action_is_an_error(world: World) -> None:
    world.profile()
    with pytest.raises(UnknownActionError):
        world.run("teleport", {})


@pytest.mark.parametrize(
    ("zone", "entered", "days", "expected"),
    [
        # Berlin moves to CEST on 2026-03-29: 10:00 is 09:00 UTC before and 08:00 UTC after.
        ("Europe/Berlin", "2026-03-28T08:00:00.000Z", 0, "2026-03-28T09:00:00.000Z"),
        ("Europe/Berlin", "2026-03-28T08:00:00.000Z", 1, "2026-03-29T08:00:00.000Z"),
        # ...and back to CET on 2026-10-25.
        ("Europe/Berlin", "2026-10-24T07:00:00.000Z", 1, "2026-10-25T09:00:00.000Z"),
        # New York moves to EDT on 2026-03-08: 10:00 is 15:00 UTC before and 14:00 UTC after.
        ("America/New_York", "2026-03-07T14:00:00.000Z", 0, "2026-03-07T15:00:00.000Z"),
        ("America/New_York", "2026-03-07T14:00:00.000Z", 1, "2026-03-08T14:00:00.000Z"),
        ("America/New_York", "2026-10-31T13:00:00.000Z", 1, "2026-11-01T15:00:00.000Z"),
    ],
)
def test_a_local_time_is_the_wall_clock_time_across_a_dst_change(
    world: World, zone: str, entered: str, days: int, expected: str
) -> None:
    world.profile(timezone=zone)

    assert until(world, {"time": "10:00", "days_after_entry": days}, entered) == expected


def test_a_time_already_past_today_is_tomorrows(world: World) -> None:
    world.profile(timezone="UTC")

    # Entered at 11:00 UTC: 10:00 that day has passed.
    assert until(world, {"time": "10:00"}, "2026-05-05T11:00:00.000Z") == "2026-05-06T10:00:00.000Z"


def test_days_after_entry_count_from_the_local_time_of_entry(world: World) -> None:
    world.profile(timezone="Europe/Berlin")

    # Entered 2026-05-01 at 09:00 Berlin: 30 days later at 10:00 local (CEST).
    assert until(world, {"time": "10:00", "days_after_entry": 30}, "2026-05-01T07:00:00.000Z") == (
        "2026-05-31T08:00:00.000Z"
    )


def test_days_after_entry_are_calendar_days_so_a_late_entry_still_lands_on_day_30(world: World) -> None:
    world.profile(timezone="America/Los_Angeles")

    # Entered 2026-05-01 at 14:00 Los Angeles (PDT): "30 days after entry at 10:00" is the morning of
    # 2026-05-31, not the 10:00 after 2026-05-31 14:00 (which would be a day later).
    assert until(world, {"time": "10:00", "days_after_entry": 30}, "2026-05-01T21:00:00.000Z") == (
        "2026-05-31T17:00:00.000Z"
    )


def test_weekdays_move_the_wait_to_the_next_allowed_day(world: World) -> None:
    world.profile(timezone="UTC")
    weekdays = ["mon", "tue", "wed", "thu", "fri"]

    # Friday 2026-05-01 at 12:00: Friday's 10:00 has passed; Saturday and Sunday are not allowed.
    assert until(world, {"time": "10:00", "weekdays": weekdays}, "2026-05-01T12:00:00.000Z") == (
        "2026-05-04T10:00:00.000Z"
    )


def test_a_wait_whose_local_time_is_past_continues_now(world: World) -> None:
    world.profile(timezone="UTC")

    assert until(world, {"time": "10:00"}, "2024-04-01T11:00:00.000Z") == NOW


def test_the_timezone_trait_comes_before_the_latest_events_zone(world: World) -> None:
    world.profile(timezone="America/New_York", traits={"timezone": "Asia/Tokyo"})

    # 10:00 in Tokyo (UTC+9) is 01:00 UTC.
    assert until(world, {"time": "10:00"}, "2026-05-05T00:00:00.000Z") == "2026-05-05T01:00:00.000Z"


def test_an_invalid_timezone_trait_falls_back_to_the_latest_events_zone(world: World) -> None:
    world.profile(timezone="America/New_York", traits={"timezone": "Somewhere/Else"})

    assert until(world, {"time": "10:00"}, "2026-05-05T00:00:00.000Z") == "2026-05-05T14:00:00.000Z"


def test_without_any_known_zone_the_default_timezone_is_used(world: World) -> None:
    world.profile()
    world.default_timezone = "Europe/Berlin"

    assert until(world, {"time": "10:00"}, "2026-05-05T00:00:00.000Z") == "2026-05-05T08:00:00.000Z"


# -- wait_until: a date trait ± an offset --------------------------------------------------------------


def test_a_date_trait_minus_an_offset(world: World) -> None:
    world.profile(traits={"trial_ends_at": "2026-06-10T15:30:00Z"})

    assert until(world, {"trait": "trial_ends_at", "offset": -3 * 86400}) == "2026-06-07T15:30:00.000Z"


def test_a_date_trait_plus_an_offset_at_a_local_time(world: World) -> None:
    world.profile(timezone="Europe/Berlin", traits={"trial_ends_at": "2026-06-10"})

    # Midnight of 2026-06-10 in Berlin, plus a day, at 10:00 local (CEST).
    assert until(world, {"trait": "trial_ends_at", "offset": 86400, "time": "10:00"}) == (
        "2026-06-11T08:00:00.000Z"
    )


def test_a_date_trait_offset_in_days_keeps_the_local_hour_across_a_dst_change(world: World) -> None:
    # 2026-03-31 09:00 CEST; three days before is 2026-03-28 09:00 CET.
    world.profile(timezone="Europe/Berlin", traits={"renews_at": "2026-03-31T07:00:00Z"})

    assert until(world, {"trait": "renews_at", "offset": -3 * 86400}) == "2026-03-28T08:00:00.000Z"


def test_a_date_trait_already_past_continues_now(world: World) -> None:
    world.profile(traits={"trial_ends_at": "2024-04-20T00:00:00Z"})

    assert until(world, {"trait": "trial_ends_at", "offset": -3 * 86400}) == NOW


@pytest.mark.parametrize("value", [None, "soon", True, {"at": "2026-01-01"}])
def test_a_missing_or_unreadable_date_trait_continues_now(world: World, value: Any) -> None:
    world.profile(traits={} if value is None else {"trial_ends_at": value})

    result = world.run("wait_until", {"trait": "trial_ends_at"})

    assert result == {"until": NOW, "reason": "trait_not_a_date"}


# -- wait_for --------------------------------------------------------------------------------------------


def wait_for_spec(**where: Any) -> dict[str, Any]:
    return {"event": "Checkout Started", "where": where, "timeout": 82800}


def test_an_awaited_event_that_arrived_before_the_wait_began_resumes_at_once(world: World) -> None:
    world.profile()
    world.event("p-1", "Checkout Started", "2024-05-01T11:00:00.000Z", "m-1", cart_id="c-1")

    result = world.run("wait_for", wait_for_spec(cart_id={"same_as_trigger": True}), token="tok-1")

    assert result == {"resumed": True}
    assert world.tasks.resumed == ["tok-1"]
    assert world.waits.items == {}


def test_the_wait_is_put_before_the_timeline_is_read(world: World) -> None:
    # The router reads the wait after the event is on the timeline; this reads the timeline after the
    # wait is stored. So an event arriving between the two is seen by one side or the other.
    world.profile()
    world.event("p-1", "Checkout Started", "2024-05-01T11:00:00.000Z", "m-1", cart_id="c-1")

    world.run("wait_for", wait_for_spec(), token="tok-1")

    assert world.journal == ["put wait", "read timeline", "resume", "delete wait"]


def test_without_the_event_the_wait_stays_with_its_concrete_conditions(world: World) -> None:
    world.profile()

    result = world.run(
        "wait_for",
        wait_for_spec(cart_id={"same_as_trigger": True}, coupon={"same_as_trigger": True}),
        token="tok-1",
    )

    assert result == {"resumed": False}
    assert world.tasks.resumed == []
    wait = world.waits.items[EXECUTION]
    assert (wait.executionArn, wait.token, wait.event, wait.since, wait.step) == (
        EXECUTION,
        "tok-1",
        "Checkout Started",
        ENTERED,
        "the-step",
    )
    # same_as_trigger is replaced by the trigger's value; a property the trigger lacks must be absent.
    assert wait.where == {"cart_id": {"equals": "c-1"}, "coupon": {"exists": False}}


def test_an_event_with_another_value_than_the_triggers_does_not_resume(world: World) -> None:
    world.profile()
    world.event("p-1", "Checkout Started", "2024-05-01T11:00:00.000Z", "m-1", cart_id="c-2")

    result = world.run("wait_for", wait_for_spec(cart_id={"same_as_trigger": True}), token="tok-1")

    assert result == {"resumed": False}
    assert EXECUTION in world.waits.items


def test_an_event_before_entry_does_not_count(world: World) -> None:
    world.profile()
    world.event("p-1", "Checkout Started", "2024-05-01T09:59:59.999Z", "m-1", cart_id="c-1")

    assert world.run("wait_for", wait_for_spec(), token="tok-1") == {"resumed": False}


def test_the_trigger_itself_does_not_count_as_the_awaited_event(world: World) -> None:
    world.profile()
    world.event("p-1", "Product Added", ENTERED, "m-trigger", cart_id="c-1")

    spec = {"event": "Product Added", "where": {}, "timeout": 3600}
    assert world.run("wait_for", spec, token="tok-1") == {"resumed": False}


def test_an_event_recorded_under_a_profile_merged_into_the_live_one_resumes(world: World) -> None:
    # The run was started for p-old; p-old and p-other have since been merged into p-live.
    world.profile("p-live", mergedFrom=["p-old", "p-other"])
    world.profile("p-old", mergedInto="p-live")
    world.profile("p-other", mergedInto="p-live")
    world.event("p-other", "Checkout Started", "2024-05-01T11:00:00.000Z", "m-1", cart_id="c-1")

    result = world.run("wait_for", wait_for_spec(), token="tok-1", profileId="p-old")

    assert result == {"resumed": True}
    assert world.tasks.resumed == ["tok-1"]


def test_a_wait_of_a_run_whose_profile_was_merged_is_put_once_under_its_execution(world: World) -> None:
    # The run was started for p-old, merged into p-live: the router finds the wait by the run's
    # execution (the run moves to p-live on the merge), so the wait is not refiled.
    world.profile("p-live", mergedFrom=["p-old"])
    world.profile("p-old", mergedInto="p-live")

    result = world.run("wait_for", wait_for_spec(), token="tok-1", profileId="p-old")

    assert result == {"resumed": False}
    assert list(world.waits.items) == [EXECUTION]
    assert world.journal == ["put wait", "read timeline"]


def test_a_token_resumed_already_by_the_router_is_ignored(world: World) -> None:
    world.profile()
    world.event("p-1", "Checkout Started", "2024-05-01T11:00:00.000Z", "m-1", cart_id="c-1")
    world.tasks.spent.add("tok-1")  # the router got there first

    result = world.run("wait_for", wait_for_spec(), token="tok-1")

    assert result == {"resumed": True}
    assert world.tasks.resumed == []
    assert world.waits.items == {}


def test_a_wait_for_without_its_token_is_an_error(world: World) -> None:
    world.profile()
    with pytest.raises(ValueError, match="token"):
        world.run("wait_for", wait_for_spec())


# -- branch ----------------------------------------------------------------------------------------------


def branch_spec(*whens: dict[str, Any]) -> dict[str, Any]:
    return {"cases": [{"when": when} for when in whens]}


def log_entry(step: str, status: str, reason: str | None = None) -> MessageLogEntry:
    return MessageLogEntry(
        messageKey=f"{EXECUTION}#{step}",
        status=status,  # type: ignore[arg-type]
        reason=reason,
        channel="email",
        journey="welcome",
        step=step,
        template="welcome",
        profileId="p-1",
        createdAt=ENTERED,
    )


def test_branch_takes_the_first_case_whose_traits_hold(world: World) -> None:
    world.profile(traits={"plan": "pro", "orders": 3})

    result = world.run(
        "branch",
        branch_spec(
            {"traits": {"plan": "free"}}, {"traits": {"orders": {"gte": 2}}}, {"traits": {"plan": "pro"}}
        ),
    )

    assert result == {"path": "case-1"}


def test_branch_without_a_matching_case_takes_else(world: World) -> None:
    world.profile(traits={"plan": "free"})

    assert world.run("branch", branch_spec({"traits": {"plan": "pro"}})) == {"path": "else"}


def test_branch_reads_the_live_profile_after_a_merge(world: World) -> None:
    world.profile("p-live", traits={"plan": "pro"}, mergedFrom=["p-1"])
    world.profile("p-1", mergedInto="p-live")

    assert world.run("branch", branch_spec({"traits": {"plan": "pro"}})) == {"path": "case-0"}


def test_branch_on_trigger_properties(world: World) -> None:
    world.profile()

    result = world.run(
        "branch", branch_spec({"trigger": {"cart_id": "c-2"}}, {"trigger": {"cart_id": "c-1"}})
    )

    assert result == {"path": "case-1"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [("queued", "case-0"), ("sent", "case-0"), ("dropped", "case-1"), (None, "else")],
)
def test_branch_on_what_this_run_sent_or_dropped(world: World, status: str | None, expected: str) -> None:
    world.profile()
    if status is not None:
        world.messages.record(
            log_entry("send-email-welcome", status, "unsubscribed" if status == "dropped" else None)
        )

    result = world.run(
        "branch",
        branch_spec(
            {"journey": {"sent": "send-email-welcome"}}, {"journey": {"dropped": "send-email-welcome"}}
        ),
    )

    assert result == {"path": expected}


def test_branch_on_another_runs_message_does_not_count(world: World) -> None:
    world.profile()
    other = log_entry("send-email-welcome", "sent").model_copy(
        update={"messageKey": f"{EXECUTION}-earlier#send-email-welcome"}
    )
    world.messages.record(other)

    assert world.run("branch", branch_spec({"journey": {"sent": "send-email-welcome"}})) == {"path": "else"}


def test_branch_case_needs_all_its_conditions(world: World) -> None:
    world.profile(traits={"plan": "pro"})
    world.messages.record(log_entry("send-email-welcome", "dropped", "no_email_address"))

    result = world.run(
        "branch", branch_spec({"traits": {"plan": "pro"}, "journey": {"sent": "send-email-welcome"}})
    )

    assert result == {"path": "else"}


# -- branch on segments and computed traits --------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "expected"),
    [({"vip"}, "case-0"), ({"vip", "cart_abandoners"}, "case-1"), (set(), "case-2"), ({"x"}, "case-2")],
)
def test_branch_on_segment_membership(world: World, members: set[str], expected: str) -> None:
    world.profile()
    world.segments.put("p-1", members)

    result = world.run(
        "branch",
        branch_spec(
            {"segments": {"vip": True, "cart_abandoners": False}},
            {"segments": {"cart_abandoners": True}},
            {"segments": {"vip": False}},
        ),
    )

    assert result == {"path": expected}


@pytest.mark.parametrize(("revenue", "expected"), [(1200, "case-0"), (600.5, "case-1"), (80, "else")])
def test_branch_on_computed_traits(world: World, revenue: float, expected: str) -> None:
    world.profile()
    world.segments.put("p-1", lifetime_revenue=revenue, orders_count=3)

    result = world.run(
        "branch",
        branch_spec(
            {"computed": {"lifetime_revenue": {"gte": 1000}}},
            {"computed": {"lifetime_revenue": {"gte": 500}, "orders_count": {"gt": 1}}},
        ),
    )

    assert result == {"path": expected}


def test_branch_on_segments_of_a_profile_without_segment_state_is_a_member_of_none(world: World) -> None:
    world.profile()

    result = world.run(
        "branch",
        branch_spec(
            {"segments": {"vip": True}},
            {"computed": {"orders_count": {"exists": True}}},
            {"segments": {"vip": False}},
        ),
    )

    assert result == {"path": "case-2"}


def test_branch_reads_the_segment_state_of_the_live_profile_after_a_merge(world: World) -> None:
    world.profile("p-live", mergedFrom=["p-1"])
    world.profile("p-1", mergedInto="p-live")
    world.segments.put("p-live", {"vip"})

    assert world.run("branch", branch_spec({"segments": {"vip": True}})) == {"path": "case-0"}
    assert world.segments.reads == ["p-live"]


def test_branch_without_segment_cases_does_not_read_the_segment_state(world: World) -> None:
    world.profile(traits={"plan": "pro"})
    world.segments.put("p-1", {"vip"})

    world.run("branch", branch_spec({"traits": {"plan": "pro"}}))

    assert world.segments.reads == []


def test_branch_on_segments_and_traits_needs_both(world: World) -> None:
    world.profile(traits={"plan": "free"})
    world.segments.put("p-1", {"vip"})

    result = world.run("branch", branch_spec({"segments": {"vip": True}, "traits": {"plan": "pro"}}))

    assert result == {"path": "else"}


# -- split -----------------------------------------------------------------------------------------------


def split_spec(*weights: float) -> dict[str, Any]:
    return {"paths": [{"weight": weight} for weight in weights]}


def test_split_is_the_same_for_a_profile_every_time(world: World) -> None:
    world.profile()
    first = world.run("split", split_spec(1, 1, 1))

    again = [world.run("split", split_spec(1, 1, 1), executionId=f"{EXECUTION}-{n}") for n in range(5)]

    assert again == [first] * 5


def test_split_shares_follow_the_weights_over_many_profiles() -> None:
    weights = [70, 20, 10]
    taken = Counter(pick_path(weights, draw(f"p-{n}", "welcome", "split")) for n in range(4000))

    # A fixed population (the hash is deterministic): each share within 3 points of its weight.
    for index, weight in enumerate(weights):
        assert abs(taken[index] / 4000 - weight / 100) < 0.03, taken


def test_split_depends_on_the_step_as_well_as_the_profile() -> None:
    a = [pick_path([1, 1], draw(f"p-{n}", "welcome", "split-a")) for n in range(200)]
    b = [pick_path([1, 1], draw(f"p-{n}", "welcome", "split-b")) for n in range(200)]

    assert a != b


@given(
    weights=st.lists(st.floats(min_value=0.01, max_value=1000), min_size=2, max_size=6),
    point=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_pick_path_places_a_point_in_the_path_whose_share_holds_it(
    weights: list[float], point: float
) -> None:
    index = pick_path(weights, point)

    total = sum(weights)
    below = sum(weights[:index]) / total
    assert 0 <= index < len(weights)
    assert point >= below - 1e-9
    assert point < below + weights[index] / total + 1e-9


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_draw_is_uniform_range_and_deterministic(profile_id: str, step: str) -> None:
    value = draw(profile_id, "welcome", step)

    assert 0 <= value < 1
    assert value == draw(profile_id, "welcome", step)


# -- update ----------------------------------------------------------------------------------------------


def _applied(world: World) -> list[dict[str, Any]]:
    """The identify calls the update steps applied, from the event.resolved each published."""
    assert {(e.source, e.detail_type) for e in world.publisher.bus} <= {(SOURCE_IDENTITY, DETAIL_RESOLVED)}
    return [json.loads(e.detail_json)["data"]["event"] for e in world.publisher.bus]


def test_update_applies_its_identify_before_it_returns_and_publishes_it_resolved(world: World) -> None:
    world.profile(
        "p-1", Identifier(type="user_id", value="u-1"), Identifier(type="email", value="ada@example.com")
    )

    result = world.run("update", {"set": {"onboarded": True}, "unset": ["trial_plan"]})

    assert result == {"published": True}
    profile = world.profiles.profile("p-1")
    assert profile is not None
    # Read-your-writes: the step that follows sees the change (identity keeps an unset trait as null).
    assert profile.traits["onboarded"] is True and profile.traits["trial_plan"] is None
    [event] = world.publisher.bus
    envelope = json.loads(event.detail_json)
    assert envelope["correlationId"] == update_message_id(EXECUTION, "the-step")
    assert envelope["data"]["profileId"] == "p-1"
    [call] = _applied(world)
    assert call["messageId"] == update_message_id(EXECUTION, "the-step")
    assert (call["type"], call["userId"]) == ("identify", "u-1")
    assert call["traits"] == {"onboarded": True, "trial_plan": None}
    assert call["timestamp"] == NOW
    assert "anonymousId" not in call


def test_update_retried_applies_the_same_message_id(world: World) -> None:
    world.profile("p-1", Identifier(type="user_id", value="u-1"))

    world.run("update", {"set": {"a": 1}})
    world.run("update", {"set": {"a": 1}})
    world.run("update", {"set": {"a": 1}}, step="another-step")

    ids = [call["messageId"] for call in _applied(world)]
    assert ids[0] == ids[1] != ids[2]


def test_update_of_a_profile_known_by_email_only_names_the_email(world: World) -> None:
    world.profile("p-1", Identifier(type="email", value="ada@example.com"))

    world.run("update", {"set": {"plan": "pro"}})

    [call] = _applied(world)
    assert "userId" not in call and "anonymousId" not in call
    assert call["traits"] == {"email": "ada@example.com", "plan": "pro"}
    assert world.profiles.profile("p-1").traits["plan"] == "pro"  # type: ignore[union-attr]


def test_update_of_a_profile_known_by_a_device_token_only_names_the_device(world: World) -> None:
    world.profile("p-1", Identifier(type="device_token", value="tok"))

    world.run("update", {"set": {"plan": "pro"}})

    [call] = _applied(world)
    assert call["context"]["device"] == {"token": "tok"}
    assert world.profiles.profile("p-1").traits["plan"] == "pro"  # type: ignore[union-attr]


def test_update_of_an_erased_profile_publishes_nothing(world: World) -> None:
    assert world.run("update", {"set": {"plan": "pro"}}) == {
        "published": False,
        "reason": "profile_not_found",
    }
    assert world.publisher.bus == []


# -- the compiler's payloads ------------------------------------------------------------------------


def _steps_tasks() -> list[tuple[str, str, dict[str, Any]]]:
    from infra.topology import JOURNEYS_DIR
    from shared.journeys.compiler import JOURNEY_STEPS_ARN_PLACEHOLDER, compile_journey
    from shared.journeys.loader import load_journeys

    found = []
    for journey in load_journeys(JOURNEYS_DIR):
        for name, state in compile_journey(journey)["States"].items():
            parameters = state.get("Parameters", {})
            if parameters.get("FunctionName") == JOURNEY_STEPS_ARN_PLACEHOLDER:
                found.append((journey.definition.id, name, parameters["Payload"]))
    return found


EXPECTED_RESULTS = {
    "wait_until": {"until"},
    "wait_for": {"resumed"},
    "branch": {"path"},
    "split": {"path"},
    "update": {"published"},
}


@pytest.mark.parametrize(("journey", "state", "payload"), _steps_tasks(), ids=lambda v: str(v)[:40])
def test_every_journey_steps_task_the_compiler_emits_runs_here(
    world: World, journey: str, state: str, payload: dict[str, Any]
) -> None:
    # Given the payload as Step Functions resolves it for an execution
    resolved = {key: value for key, value in payload.items() if not key.endswith(".$")}
    resolved.update(
        profileId="p-1",
        enteredAt=ENTERED,
        trigger={"event": "E", "properties": {}, "messageId": "m-0", "timestamp": ENTERED},
        executionId=EXECUTION,
    )
    if "token.$" in payload:
        resolved["token"] = "tok-1"
    world.profile("p-1", Identifier(type="user_id", value="u-1"))

    result = run_step(StepRequest.model_validate(resolved), world.ports)

    assert set(result) >= EXPECTED_RESULTS[payload["action"]], (journey, state)


@pytest.mark.parametrize("huge", [1e308, 1.7e308])
def test_split_weights_too_large_to_add_up_still_share_evenly(huge: float) -> None:
    # Their sum overflowed to infinity, every share became 0 and every profile took the last path.
    assert [pick_path([huge, huge], point) for point in (0.1, 0.4, 0.6, 0.9)] == [0, 0, 1, 1]


def test_an_infinite_split_weight_is_refused() -> None:
    from pydantic import ValidationError

    from shared.models.journey import SplitPath

    with pytest.raises(ValidationError):
        SplitPath.model_validate({"weight": float("inf")})
