"""The shipped journeys' templates (journeys/, Liquid) with the shared layout and footer, and the
transactional password_reset journey."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.delivery.templates import render_content
from shared.journeys.loader import load_journey, load_journeys
from shared.models.journey import SendStep

ROOT = Path(__file__).resolve().parents[2]
JOURNEYS = ROOT / "journeys"
PREFERENCES = "https://example.com/preferences/tok"
UNSUBSCRIBE = "https://example.com/unsubscribe/tok"


def _render(journey_id: str, template: str, context: dict[str, Any]) -> dict[str, str]:
    sent = load_journey(JOURNEYS / journey_id).send_content(template, "email")
    return render_content(sent["content"], context, layout=sent.get("layout"), partials=sent.get("partials"))


def test_every_shipped_email_uses_the_default_layout() -> None:
    for journey in load_journeys(JOURNEYS):
        for name, template in journey.templates.items():
            if template.email is not None:
                assert template.email.layout == "default", (journey.definition.id, name)
                assert template.email.html is not None, (journey.definition.id, name)


def test_password_reset_sends_the_reset_email_at_once_as_transactional() -> None:
    journey = load_journey(JOURNEYS / "password_reset")

    definition = journey.definition
    assert definition.trigger.event == "Password Reset Requested"
    first = definition.steps[0]
    assert isinstance(first, SendStep) and len(definition.steps) == 1
    assert (first.send.channel, first.send.template, first.send.topic) == (
        "email",
        "password-reset",
        "transactional",
    )


def test_the_password_reset_email_renders_the_sample_event_without_an_unsubscribe_link() -> None:
    event = json.loads((ROOT / "events" / "track-password-reset-requested.json").read_text(encoding="utf-8"))
    context = {
        "profile": {"profileId": "p-1", "traits": {"firstName": "Ada", "timezone": "America/New_York"}},
        "trigger": {"event": event["event"], "properties": event["properties"]},
        "computed": {},
        "links": {"preferences": PREFERENCES, "unsubscribe": None},
    }

    rendered = _render("password_reset", "password-reset", context)

    url = event["properties"]["reset_url"]
    assert "&" in url
    assert url in rendered["text"]
    assert f'href="{url.replace("&", "&amp;")}"' in rendered["html"]
    assert "May 1, 09:00 EDT" in rendered["text"]  # expires_at 13:00 UTC in the recipient's zone
    assert f"Email preferences: {PREFERENCES}" in rendered["text"]
    assert "Unsubscribe" not in rendered["text"] and "Unsubscribe" not in rendered["html"]


def test_a_marketing_email_footer_carries_both_links() -> None:
    context = {
        "profile": {"profileId": "p-1", "traits": {}},
        "trigger": {"event": "Signed Up", "properties": {}},
        "computed": {},
        "links": {"preferences": PREFERENCES, "unsubscribe": UNSUBSCRIBE},
    }

    rendered = _render("welcome", "welcome", context)

    assert rendered["subject"] == "Welcome aboard, friend"
    assert rendered["text"].startswith("Hi there,\n")
    assert f"Unsubscribe: {UNSUBSCRIBE}" in rendered["text"]
    assert f'<a href="{UNSUBSCRIBE}">Unsubscribe</a>' in rendered["html"]
    assert rendered["html"].lstrip().startswith("<!DOCTYPE html>")
