"""Identity records the time zone of a profile's latest event (`Profile.timezone`): the journeys'
`wait_until` reads it when the profile has no `timezone` trait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.identity.resolver import resolve
from shared.identity.rules import IdentityRules
from shared.models.types import iana_timezone
from tests.identifiers import anon, user
from tests.unit.fakes import FakeProfileStore

pytestmark = pytest.mark.usefixtures("fixed_clock")

RULES = IdentityRules()
T0 = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)


def track(n: int, timezone: object = None, **ids: str) -> dict[str, Any]:
    call: dict[str, Any] = {"type": "track", "event": "App Opened", "messageId": f"m-{n}", **ids}
    if timezone is not None:
        call["context"] = {"timezone": timezone}
    return call


def at(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.fixture
def store() -> FakeProfileStore:
    return FakeProfileStore()


def test_a_new_profile_takes_the_time_zone_of_its_first_event(store: FakeProfileStore) -> None:
    resolve(track(1, "Europe/Berlin", userId="u-1"), store, RULES, at(1), lambda: "p-1")

    assert store.docs["p-1"].timezone == "Europe/Berlin"


def test_a_known_profile_takes_the_time_zone_of_a_newer_event_on_the_fast_path(
    store: FakeProfileStore,
) -> None:
    store.seed("p-1", user("u-1"), created_at="2024-01-01T00:00:00.000Z", timezone="Europe/Berlin")

    resolve(track(2, "America/New_York", userId="u-1"), store, RULES, at(2))

    assert store.writes == ["record"]
    assert store.docs["p-1"].timezone == "America/New_York"


@pytest.mark.parametrize("invalid", ["Mars/Olympus_Mons", "../../etc/passwd", "", 5, "x" * 300])
def test_an_invalid_time_zone_is_ignored_and_the_previous_one_kept(
    store: FakeProfileStore, invalid: object
) -> None:
    store.seed("p-1", user("u-1"), created_at="2024-01-01T00:00:00.000Z", timezone="Europe/Berlin")

    resolve(track(2, invalid, userId="u-1"), store, RULES, at(2))

    assert store.docs["p-1"].timezone == "Europe/Berlin"


def test_an_event_without_a_time_zone_keeps_the_one_recorded(store: FakeProfileStore) -> None:
    resolve(track(1, "Asia/Tokyo", userId="u-1"), store, RULES, at(1), lambda: "p-1")

    resolve(track(2, userId="u-1"), store, RULES, at(2))

    assert store.docs["p-1"].timezone == "Asia/Tokyo"


def test_an_older_event_arriving_late_does_not_replace_the_latest_events_time_zone(
    store: FakeProfileStore,
) -> None:
    resolve(track(5, "Asia/Tokyo", userId="u-1"), store, RULES, at(5), lambda: "p-1")

    resolve(track(1, "Europe/Paris", userId="u-1"), store, RULES, at(1))

    assert store.docs["p-1"].timezone == "Asia/Tokyo"


def test_a_merge_keeps_the_time_zone_of_the_profile_whose_latest_event_is_newer(
    store: FakeProfileStore,
) -> None:
    # Given the survivor-to-be last seen in Berlin, and another profile seen since in New York
    resolve(track(1, "Europe/Berlin", userId="u-1"), store, RULES, at(1), lambda: "p-a")
    resolve(track(3, "America/New_York", anonymousId="a-1"), store, RULES, at(3), lambda: "p-b")

    # When an event without a time zone links them
    resolve(track(4, userId="u-1", anonymousId="a-1"), store, RULES, at(4))

    survivor = store.owner_of(anon("a-1"))
    assert survivor is not None and survivor.profileId == "p-a"
    assert survivor.timezone == "America/New_York"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Europe/Berlin", "Europe/Berlin"), ("UTC", "UTC"), ("europe/berlin", None), ("/etc/localtime", None)],
)
def test_iana_timezone_accepts_only_zones_zoneinfo_knows(value: str, expected: str | None) -> None:
    assert iana_timezone(value) == expected
