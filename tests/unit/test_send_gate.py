"""The send gate decides against the live profile at send time (shared/delivery/gate.py)."""

from __future__ import annotations

from typing import Any

from shared import clock
from shared.delivery.gate import Decision, Drop, GateFacts, Send, decide
from shared.models.message import SendRequest
from shared.models.profile import Identifier, Profile
from tests.policies import PERMISSIVE

ENTERED_AT = "2024-05-01T10:00:00.000Z"


def _decide(request: SendRequest, profile: Profile | None, computed: Any = None) -> Decision:
    """The gate under a policy with no caps and no quiet hours (the checks before them are tested here)."""
    return decide(
        request, profile, GateFacts(), PERMISSIVE, clock.parse("2024-05-01T12:00:00Z"), computed=computed
    )


def _request(**overrides: Any) -> SendRequest:
    fields: dict[str, Any] = {
        "journey": "cart_abandonment",
        "goal": "Order Completed",
        "step": "02 send email cart-reminder",
        "channel": "email",
        "template": "cart-reminder",
        "content": {
            "subject": '{{ trigger.properties.name | default: "Your cart" }} is waiting',
            "text": "Hi",
        },
        "profileId": "p-1",
        "enteredAt": ENTERED_AT,
        "trigger": {"event": "Product Added", "properties": {"name": "Red shoes"}},
        "executionId": "arn:aws:states:eu-west-1:1:execution:cart:run-1",
    }
    return SendRequest.model_validate({**fields, **overrides})


def _profile(*identifiers: Identifier, **fields: Any) -> Profile:
    return Profile(
        profileId="p-1",
        identifiers=list(identifiers) or [Identifier(type="email", value="ada@example.com")],
        createdAt="2024-04-01T00:00:00.000Z",
        updatedAt="2024-05-01T10:00:00.000Z",
        **fields,
    )


def test_a_missing_profile_drops_the_send() -> None:
    assert _decide(_request(), None) == Drop("profile_not_found")


def test_a_goal_reached_after_entry_drops_the_send() -> None:
    profile = _profile(lastEvents={"Order Completed": "2024-05-01T10:30:00.000Z"})

    assert _decide(_request(), profile) == Drop("goal_reached")


def test_a_goal_reached_at_the_moment_of_entry_drops_the_send() -> None:
    profile = _profile(lastEvents={"Order Completed": ENTERED_AT})

    assert _decide(_request(), profile) == Drop("goal_reached")


def test_a_goal_reached_before_entry_does_not_stop_the_send() -> None:
    # Yesterday's purchase says nothing about the cart abandoned today.
    profile = _profile(lastEvents={"Order Completed": "2024-04-30T10:00:00.000Z"})

    assert isinstance(_decide(_request(), profile), Send)


def test_a_journey_without_goal_ignores_past_events() -> None:
    profile = _profile(lastEvents={"Order Completed": "2024-05-01T11:00:00.000Z"})

    assert isinstance(_decide(_request(goal=None), profile), Send)


def test_an_unsubscribed_profile_drops_the_send() -> None:
    assert _decide(_request(), _profile(traits={"unsubscribed": True})) == Drop("unsubscribed")


def test_a_profile_without_email_drops_an_email_send() -> None:
    profile = _profile(Identifier(type="device_token", value="tok-1"))

    assert _decide(_request(), profile) == Drop("no_email_address")


def test_a_profile_without_device_token_drops_a_push_send() -> None:
    request = _request(channel="push", content={"title": "Hey", "body": "Back"})

    assert _decide(request, _profile()) == Drop("no_push_address")


def test_an_email_send_goes_to_the_newest_email() -> None:
    profile = _profile(
        Identifier(type="email", value="old@example.com"),
        Identifier(type="device_token", value="tok-1"),
        Identifier(type="email", value="new@example.com"),
    )

    decision = _decide(_request(), profile)

    assert isinstance(decision, Send)
    assert decision.to == "new@example.com"


def test_a_push_send_goes_to_the_newest_device_token() -> None:
    profile = _profile(
        Identifier(type="device_token", value="tok-old"), Identifier(type="device_token", value="tok-new")
    )

    decision = _decide(_request(channel="push", content={"title": "Hey", "body": "Back"}), profile)

    assert decision == Send(to="tok-new", content={"title": "Hey", "body": "Back"})


def test_a_send_renders_its_content_from_the_profile_and_the_trigger() -> None:
    request = _request(
        content={
            "subject": "{{ trigger.properties.name }} for {{ profile.traits.firstName }}",
            "text": "Profile {{ profile.profileId }}",
        }
    )

    decision = _decide(request, _profile(traits={"firstName": "Ada"}))

    assert isinstance(decision, Send)
    assert decision.content == {"subject": "Red shoes for Ada", "text": "Profile p-1"}
