"""What a journey author writes, validated: shared/models/journey.py and shared/journeys/loader.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from shared.journeys.loader import JourneyLoadError, load_journey, load_journeys
from shared.models.journey import Journey, JourneyDefinition, Template, WaitStep

EMAIL = {"subject": "Hello", "text": "Hi {{ profile.traits.firstName | there }}"}
PUSH = {"title": "Hey", "body": "Come back"}


def _definition(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "welcome",
        "name": "Welcome",
        "trigger": "Signed Up",
        "steps": [{"wait": "1h"}, {"send": {"channel": "email", "template": "hello"}}],
        **overrides,
    }


def _write(root: Path, folder: str, definition: dict[str, Any], templates: dict[str, Any]) -> Path:
    journey = root / folder
    (journey / "templates").mkdir(parents=True)
    (journey / "journey.yaml").write_text(yaml.safe_dump(definition), encoding="utf-8")
    for name, content in templates.items():
        (journey / "templates" / f"{name}.yaml").write_text(yaml.safe_dump(content), encoding="utf-8")
    return journey


# -- durations -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h", 3600),
        ("2d", 172800),
        (" 1h ", 3600),
        (45, 45),
        ("365d", 365 * 86400),
    ],
)
def test_a_wait_accepts_seconds_minutes_hours_days_or_an_int(written: object, seconds: int) -> None:
    assert WaitStep.model_validate({"wait": written}).wait == seconds


@pytest.mark.parametrize("written", ["1w", "1.5h", "h", "an hour", "-1h", ""])
def test_a_malformed_duration_is_rejected_with_the_expected_form(written: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WaitStep.model_validate({"wait": written})

    assert "is not a number followed by s, m, h or d" in str(caught.value)
    assert repr(written) in str(caught.value)


@pytest.mark.parametrize("written", ["0s", 0, "366d"])
def test_a_wait_must_be_positive_and_at_most_a_year(written: object) -> None:
    with pytest.raises(ValidationError):
        WaitStep.model_validate({"wait": written})


# -- definitions -----------------------------------------------------------------------------------


def test_a_journey_without_a_send_step_is_rejected() -> None:
    with pytest.raises(ValidationError, match="at least one send step"):
        JourneyDefinition.model_validate(_definition(steps=[{"wait": "1h"}]))


def test_a_journey_without_steps_is_rejected() -> None:
    with pytest.raises(ValidationError, match="steps"):
        JourneyDefinition.model_validate(_definition(steps=[]))


def test_an_unknown_field_in_a_definition_is_rejected() -> None:
    with pytest.raises(ValidationError, match="exit_on"):
        JourneyDefinition.model_validate(_definition(exit_on="Order Completed"))


def test_an_unknown_field_in_a_step_is_rejected() -> None:
    with pytest.raises(ValidationError, match="priority"):
        JourneyDefinition.model_validate(
            _definition(steps=[{"send": {"channel": "email", "template": "hello", "priority": 1}}])
        )


def test_a_send_on_an_unknown_channel_is_rejected() -> None:
    with pytest.raises(ValidationError, match="channel"):
        JourneyDefinition.model_validate(
            _definition(steps=[{"send": {"channel": "sms", "template": "hello"}}])
        )


def test_a_journey_id_must_be_snake_case() -> None:
    with pytest.raises(ValidationError, match="id"):
        JourneyDefinition.model_validate(_definition(id="Welcome-Flow"))


def test_a_send_using_a_missing_template_is_rejected() -> None:
    definition = JourneyDefinition.model_validate(_definition())

    with pytest.raises(ValidationError, match="template 'hello', which does not exist"):
        Journey(definition=definition, templates={})


def test_a_template_without_content_for_the_sent_channel_is_rejected() -> None:
    definition = JourneyDefinition.model_validate(_definition())
    push_only = Template.model_validate({"name": "hello", "push": PUSH})

    with pytest.raises(ValidationError, match="template 'hello' has no email content"):
        Journey(definition=definition, templates={"hello": push_only})


def test_an_unknown_channel_in_a_template_is_rejected() -> None:
    with pytest.raises(ValidationError, match="sms"):
        Template.model_validate({"name": "hello", "email": EMAIL, "sms": {"text": "hi"}})


def test_email_content_needs_a_subject_and_a_text() -> None:
    with pytest.raises(ValidationError, match="subject"):
        Template.model_validate({"name": "hello", "email": {"text": "hi"}})


# -- loading folders -------------------------------------------------------------------------------


def test_a_journey_folder_loads_with_its_templates(tmp_path: Path) -> None:
    folder = _write(tmp_path, "welcome", _definition(), {"hello": {"email": EMAIL}})

    journey = load_journey(folder)

    assert journey.definition.id == "welcome"
    assert journey.definition.steps[0] == WaitStep(wait=3600)
    assert journey.templates["hello"].name == "hello"
    assert journey.templates["hello"].email.subject == "Hello"  # type: ignore[union-attr]


def test_a_journey_id_must_equal_its_folder_name(tmp_path: Path) -> None:
    folder = _write(tmp_path, "onboarding", _definition(), {"hello": {"email": EMAIL}})

    with pytest.raises(JourneyLoadError, match="id 'welcome' must equal its folder name"):
        load_journey(folder)


def test_loading_a_send_with_a_missing_template_names_the_folder_and_the_template(tmp_path: Path) -> None:
    folder = _write(tmp_path, "welcome", _definition(), {"other": {"email": EMAIL}})

    with pytest.raises(JourneyLoadError) as caught:
        load_journey(folder)

    assert str(folder) in str(caught.value)
    assert "template 'hello', which does not exist" in str(caught.value)


def test_loading_a_template_without_the_sent_channel_is_rejected(tmp_path: Path) -> None:
    folder = _write(tmp_path, "welcome", _definition(), {"hello": {"push": PUSH}})

    with pytest.raises(JourneyLoadError, match="has no email content"):
        load_journey(folder)


def test_loading_a_bad_duration_says_what_a_duration_looks_like(tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        "welcome",
        _definition(steps=[{"wait": "soon"}, {"send": {"channel": "email", "template": "hello"}}]),
        {"hello": {"email": EMAIL}},
    )

    with pytest.raises(JourneyLoadError, match="'soon' is not a number followed by s, m, h or d"):
        load_journey(folder)


def test_loading_an_unknown_field_is_rejected(tmp_path: Path) -> None:
    folder = _write(tmp_path, "welcome", _definition(audience="vip"), {"hello": {"email": EMAIL}})

    with pytest.raises(JourneyLoadError, match="audience"):
        load_journey(folder)


def test_loading_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    folder = _write(tmp_path, "welcome", _definition(), {"hello": {"email": EMAIL}})
    (folder / "journey.yaml").write_text("id: welcome\nsteps: [unclosed\n", encoding="utf-8")

    with pytest.raises(JourneyLoadError, match="journey.yaml: not valid YAML"):
        load_journey(folder)


def test_a_template_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    folder = _write(tmp_path, "welcome", _definition(), {"hello": ["email", "push"]})

    with pytest.raises(JourneyLoadError, match="a template is a mapping"):
        load_journey(folder)


def test_load_journeys_loads_every_folder_with_a_definition_in_order(tmp_path: Path) -> None:
    _write(tmp_path, "welcome", _definition(), {"hello": {"email": EMAIL}})
    _write(tmp_path, "another", _definition(id="another"), {"hello": {"email": EMAIL}})
    (tmp_path / "drafts").mkdir()

    journeys = load_journeys(tmp_path)

    assert [j.definition.id for j in journeys] == ["another", "welcome"]
