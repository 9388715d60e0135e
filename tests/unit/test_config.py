"""Function settings over the environment, read lazily and loudly (shared/config.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from shared import config
from shared.config import (
    DeliverSettings,
    IngestSettings,
    JourneyStepsSettings,
    ProfilesApiSettings,
    RouterSettings,
)

MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:cart_abandonment"


INGEST = {
    "EVENT_BUS_NAME": "continuum-bus",
    "SOURCES_TABLE": "sources",
    "SEEN_MESSAGES_TABLE": "seen-messages",
    "DEDUPE_WINDOW_SECONDS": "86400",
}


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (*INGEST, "WRITE_KEY_CACHE_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    config.reset()
    yield
    config.reset()


def _ingest_env(monkeypatch: pytest.MonkeyPatch, **overrides: str) -> None:
    for name, value in {**INGEST, **overrides}.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("missing", sorted(INGEST))
def test_a_missing_variable_fails_naming_it(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    _ingest_env(monkeypatch)
    monkeypatch.delenv(missing)

    with pytest.raises(ValidationError) as caught:
        config.load(IngestSettings)

    [error] = caught.value.errors()
    assert error["loc"] == (missing,)
    assert missing in str(caught.value)


def test_an_empty_resource_name_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    _ingest_env(monkeypatch, EVENT_BUS_NAME="")

    with pytest.raises(ValidationError, match="EVENT_BUS_NAME"):
        config.load(IngestSettings)


def test_ingest_settings_read_the_bus_tables_and_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    _ingest_env(monkeypatch, WRITE_KEY_CACHE_SECONDS="5")

    settings = config.load(IngestSettings)

    assert (settings.event_bus_name, settings.sources_table, settings.seen_messages_table) == (
        "continuum-bus",
        "sources",
        "seen-messages",
    )
    assert settings.dedupe_window_seconds == 86400
    assert settings.write_key_cache_seconds == 5


def test_the_write_key_cache_lasts_a_minute_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    _ingest_env(monkeypatch)

    assert config.load(IngestSettings).write_key_cache_seconds == 60


@pytest.mark.parametrize("window", ["0", "-1", "a day", "1.5"])
def test_the_dedupe_window_is_a_positive_whole_number_of_seconds(
    monkeypatch: pytest.MonkeyPatch, window: str
) -> None:
    _ingest_env(monkeypatch, DEDUPE_WINDOW_SECONDS=window)

    with pytest.raises(ValidationError, match="DEDUPE_WINDOW_SECONDS"):
        config.load(IngestSettings)


def test_a_negative_write_key_cache_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    _ingest_env(monkeypatch, WRITE_KEY_CACHE_SECONDS="-1")

    with pytest.raises(ValidationError, match="WRITE_KEY_CACHE_SECONDS"):
        config.load(IngestSettings)


ROUTER = {
    "JOURNEY_RUNS_TABLE": "runs",
    "JOURNEY_WAITS_TABLE": "waits",
    "JOURNEY_STATS_TABLE": "stats",
    "MESSAGES_TABLE": "messages",
    "JOURNEY_CATALOGUE": "/opt/continuum/journeys.json",
    "JOURNEY_STATE_MACHINE_ARN_PREFIX": "arn:aws:states:eu-west-1:123456789012:stateMachine:",
    "JOURNEY_ALIAS": "live",
}


def test_the_router_reads_the_catalogue_file_not_the_journeys_themselves() -> None:
    settings = RouterSettings.model_validate(ROUTER)

    assert settings.journey_catalogue == "/opt/continuum/journeys.json"
    assert settings.state_machine_arn_prefix == MACHINE.removesuffix("cart_abandonment")
    assert settings.journey_alias == "live"


def test_no_alias_is_said_with_an_empty_alias_not_by_leaving_it_out() -> None:
    assert RouterSettings.model_validate({**ROUTER, "JOURNEY_ALIAS": ""}).journey_alias == ""
    with pytest.raises(ValidationError, match="JOURNEY_ALIAS"):
        RouterSettings.model_validate({k: v for k, v in ROUTER.items() if k != "JOURNEY_ALIAS"})


@pytest.mark.parametrize("prefix", [MACHINE, "arn:aws:states:eu-west-1:123456789012:execution:", "states"])
def test_the_state_machine_arn_prefix_must_end_before_the_name(prefix: str) -> None:
    with pytest.raises(ValidationError, match="JOURNEY_STATE_MACHINE_ARN_PREFIX"):
        RouterSettings.model_validate({**ROUTER, "JOURNEY_STATE_MACHINE_ARN_PREFIX": prefix})


def test_settings_are_read_once_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    _ingest_env(monkeypatch, EVENT_BUS_NAME="first-bus")
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
        "JOURNEY_STATS_TABLE": "journey-stats",
        "EMAIL_QUEUE_URL": "https://sqs/email",
        "PUSH_QUEUE_URL": "https://sqs/push",
        "POLICY_FILE": "/opt/continuum/policy.json",
    }.items():
        monkeypatch.setenv(name, value)

    settings = config.load(DeliverSettings)

    assert (settings.queue_url("email"), settings.queue_url("push")) == (
        "https://sqs/email",
        "https://sqs/push",
    )


PROFILES_API = {
    "EVENT_BUS_NAME": "continuum-bus",
    "PROFILES_TABLE": "profiles",
    "MESSAGES_TABLE": "messages",
    "JOURNEY_RUNS_TABLE": "journey-runs",
    "JOURNEY_STATS_TABLE": "journey-stats",
    "AUDIENCES_QUEUE_URL": "https://sqs/audiences.fifo",
    "POLICY_FILE": "/opt/continuum/policy.json",
}
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:admin-token-AbCdEf"


@pytest.mark.parametrize(
    "credential",
    [{}, {"ADMIN_TOKEN_SECRET_ARN": SECRET_ARN, "ADMIN_TOKEN_SHA256": "0" * 64}],
    ids=["neither", "both"],
)
def test_the_profile_api_needs_exactly_one_admin_credential(credential: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="exactly one of ADMIN_TOKEN_SECRET_ARN"):
        ProfilesApiSettings.model_validate({**PROFILES_API, **credential})


def test_the_cloud_gives_the_profile_api_only_the_admin_tokens_secret() -> None:
    settings = ProfilesApiSettings.model_validate({**PROFILES_API, "ADMIN_TOKEN_SECRET_ARN": SECRET_ARN})
    assert (settings.admin_token_secret_arn, settings.admin_token_sha256) == (SECRET_ARN, None)


JOURNEY_STEPS = {
    "PROFILES_TABLE": "profiles",
    "MESSAGES_TABLE": "messages",
    "JOURNEY_WAITS_TABLE": "journey-waits",
    "EVENT_BUS_NAME": "continuum-bus",
    "POLICY_FILE": "/opt/continuum/policy.json",
}


def test_journey_steps_settings_read_the_default_time_zone() -> None:
    settings = JourneyStepsSettings.model_validate({**JOURNEY_STEPS, "DEFAULT_TIMEZONE": "Europe/Berlin"})

    assert settings.default_timezone == "Europe/Berlin"


@pytest.mark.parametrize("zone", [None, "", "Europe/Atlantis", "CET+1"])
def test_journey_steps_refuse_a_missing_or_unknown_default_time_zone(zone: str | None) -> None:
    given = {**JOURNEY_STEPS, **({} if zone is None else {"DEFAULT_TIMEZONE": zone})}
    with pytest.raises(ValidationError, match="DEFAULT_TIMEZONE"):
        JourneyStepsSettings.model_validate(given)
