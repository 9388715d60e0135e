"""Journeys on segments on the local runtime: a `segment.entered` on the bus starts the shipped
vip_thanks journey (topology route segment-changes), whose branch reads the profile's segment state
and whose template renders its computed traits. The segment state item is written directly, as the
segments function keeps it (DESIGN9 §2): these tests are about what journeys do with it."""

from __future__ import annotations

import boto3
import pytest

from infra.local.harness import JourneyHarness
from infra.topology import EVENT_BUS_ENV, JOURNEYS_DIR, PROFILES, table_env
from shared.models.events import (
    DETAIL_SEGMENT_ENTERED,
    DETAIL_SEGMENT_EXITED,
    SOURCE_SEGMENTS,
    BusEvent,
)
from shared.models.segments import SegmentChange, SegmentState


def _state(h: JourneyHarness, profile_id: str, segments: list[str], **computed: float) -> None:
    state = SegmentState(profileId=profile_id, version=3, segments=segments, computed=computed)
    boto3.client("dynamodb").put_item(
        TableName=h.engine._env[table_env(PROFILES)],
        Item={
            "pk": {"S": f"profile#{profile_id}"},
            "sk": {"S": "segments"},
            "state": {"S": state.model_dump_json()},
            "version": {"N": "3"},
        },
    )


def _segment_change(h: JourneyHarness, profile_id: str, segment: str, entered: bool) -> None:
    """What the segments function puts on the bus when the profile enters or leaves a segment."""
    at = h.now.isoformat().replace("+00:00", "Z")
    change = SegmentChange(profileId=profile_id, segment=segment, entered=entered, at=at, reason="event")
    name = DETAIL_SEGMENT_ENTERED if entered else DETAIL_SEGMENT_EXITED
    event = BusEvent.publishing(SOURCE_SEGMENTS, name, f"m-{profile_id}", at, change)
    response = boto3.client("events").put_events(
        Entries=[
            {
                "Source": event.source,
                "DetailType": event.detail_type,
                "Detail": event.detail_json,
                "EventBusName": h.engine._env[EVENT_BUS_ENV],
            }
        ]
    )
    assert response["FailedEntryCount"] == 0
    h.settle()


def _customer(h: JourneyHarness, user_id: str) -> str:
    h.identify(user_id, email=f"{user_id}@example.com", firstName="Ada")
    [profile_id] = h.profile_ids(user_id)
    return profile_id


@pytest.mark.journeys(str(JOURNEYS_DIR))
def test_entering_vip_sends_the_gold_thanks_rendering_the_computed_traits(
    journey_harness: JourneyHarness,
) -> None:
    h = journey_harness
    profile_id = _customer(h, "ada")
    _state(h, profile_id, ["vip"], lifetime_revenue=1250, orders_count=3)

    _segment_change(h, profile_id, "vip", entered=True)
    _segment_change(h, profile_id, "vip", entered=True)  # delivered twice: one run, one message

    [message] = h.messages("ada")
    assert (message["template"], message["to"]) == ("vip-thanks-gold", "ada@example.com")
    assert "1250 spent with us" in message["content"]["text"]
    assert h.path("ada", "vip_thanks") == ["how-big", "how-big.case-0.send-email-vip-thanks-gold"]
    assert h.stats("vip_thanks")["entered"] == 1


@pytest.mark.journeys(str(JOURNEYS_DIR))
def test_entering_vip_below_1000_takes_the_else_path(journey_harness: JourneyHarness) -> None:
    h = journey_harness
    profile_id = _customer(h, "bea")
    _state(h, profile_id, ["vip"], lifetime_revenue=640, orders_count=2)

    _segment_change(h, profile_id, "vip", entered=True)

    [message] = h.messages("bea")
    assert message["template"] == "vip-thanks"
    assert "2 orders so far" in message["content"]["text"]


@pytest.mark.journeys(str(JOURNEYS_DIR))
def test_leaving_a_segment_or_entering_another_starts_no_thanks(journey_harness: JourneyHarness) -> None:
    h = journey_harness
    profile_id = _customer(h, "cy")
    _state(h, profile_id, ["cart_abandoners"], lifetime_revenue=900)

    _segment_change(h, profile_id, "vip", entered=False)
    _segment_change(h, profile_id, "cart_abandoners", entered=True)

    assert h.messages("cy") == []
    assert h.executions("cy", "vip_thanks") == []
