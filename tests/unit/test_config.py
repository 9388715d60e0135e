"""Function settings over the environment, read lazily and loudly (shared/config.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from shared import config
from shared.config import DeliverSettings, IngestSettings, JourneyRef, RouterSettings

MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:cart_abandonment"


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("EVENT_BUS_NAME", "WRITE_KEY_SHA256", "JOURNEY_RUNS_TABLE", "JOURNEYS"):
        monkeypatch.delenv(name, raising=False)
    config.reset()
    yield
    config.reset()


def test_a_missing_variable_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_BUS_NAME", "continuum-bus")

    with pytest.raises(ValidationError) as caught:
        config.load(IngestSettings)

    [error] = caught.value.errors()
    assert error["loc"] == ("WRITE_KEY_SHA256",)
    assert "WRITE_KEY_SHA256" in str(caught.value)


def test_an_empty_resource_name_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_BUS_NAME", "")
    monkeypatch.setenv("WRITE_KEY_SHA256", "abc")

    with pytest.raises(ValidationError, match="EVENT_BUS_NAME"):
        config.load(IngestSettings)


def test_write_key_hashes_split_on_commas_trimmed_and_lower_cased(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = hashlib.sha256(b"one").hexdigest(), hashlib.sha256(b"two").hexdigest()
    monkeypatch.setenv("EVENT_BUS_NAME", "continuum-bus")
    monkeypatch.setenv("WRITE_KEY_SHA256", f" {first.upper()} ,{second},,")

    settings = config.load(IngestSettings)

    assert settings.write_key_sha256 == frozenset({first, second})
    assert settings.event_bus_name == "continuum-bus"


def test_journeys_parse_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_RUNS_TABLE", "runs")
    monkeypatch.setenv(
        "JOURNEYS",
        json.dumps(
            [
                {
                    "id": "cart_abandonment",
                    "trigger": "Product Added",
                    "goal": "Order Completed",
                    "stateMachineArn": MACHINE,
                }
            ]
        ),
    )

    settings = config.load(RouterSettings)

    assert settings.journeys == [
        JourneyRef(
            id="cart_abandonment", trigger="Product Added", goal="Order Completed", stateMachineArn=MACHINE
        )
    ]
    assert settings.journeys[0].state_machine_arn == MACHINE


def test_journeys_that_are_not_json_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_RUNS_TABLE", "runs")
    monkeypatch.setenv("JOURNEYS", "cart_abandonment")

    with pytest.raises(ValueError):
        config.load(RouterSettings)


def test_settings_are_read_once_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_BUS_NAME", "first-bus")
    monkeypatch.setenv("WRITE_KEY_SHA256", "abc")
    first = config.load(IngestSettings)
    monkeypatch.setenv("EVENT_BUS_NAME", "second-bus")

    cached = config.load(IngestSettings)
    config.reset()
    reread = config.load(IngestSettings)

    assert cached is first
    assert reread.event_bus_name == "second-bus"


def test_deliver_settings_find_the_queue_of_each_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PROFILES_TABLE": "profiles",
        "MESSAGES_TABLE": "messages",
        "EMAIL_QUEUE_URL": "https://sqs/email",
        "PUSH_QUEUE_URL": "https://sqs/push",
    }.items():
        monkeypatch.setenv(name, value)

    settings = config.load(DeliverSettings)

    assert (settings.queue_url("email"), settings.queue_url("push")) == (
        "https://sqs/email",
        "https://sqs/push",
    )
