"""What a journey author writes, validated: shared/models/journey.py and shared/journeys/loader.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from shared.journeys.loader import JourneyLoadError, load_journey, load_journeys
from shared.models.journey import (
    SPEC_MODELS,
    BranchStep,
    Condition,
    EventRule,
    ExitStep,
    Journey,
    JourneyDefinition,
    ReEntry,
    SendStep,
    SplitStep,
    Template,
    UpdateStep,
    WaitForStep,
    WaitStep,
    WaitUntilStep,
)
from shared.segments.catalogue import SegmentCatalogue

EMAIL = {"subject": "Hello", "text": 'Hi {{ profile.traits.firstName | default: "there" }}'}
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
    with pytest.raises(ValidationError, match="audience"):
        JourneyDefinition.model_validate(_definition(audience="vip"))


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

    with pytest.raises(ValidationError, match="step 'send-email-hello': send uses template 'hello', which"):
        Journey(definition=definition, templates={})


def test_a_template_without_content_for_the_sent_channel_is_rejected() -> None:
    definition = JourneyDefinition.model_validate(_definition())
    push_only = Template.model_validate({"name": "hello", "push": PUSH})

    with pytest.raises(
        ValidationError, match="step 'send-email-hello': template 'hello' has no email content"
    ):
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
    assert journey.definition.steps[0] == WaitStep(id="wait-1h", wait=3600)
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


# -- the tree of steps -----------------------------------------------------------------------------


def _steps(*steps: Any, **overrides: Any) -> JourneyDefinition:
    return JourneyDefinition.model_validate(_definition(steps=list(steps), **overrides))


SEND = {"send": {"channel": "email", "template": "hello"}}


def test_every_step_type_parses_from_its_verb() -> None:
    definition = _steps(
        {"wait": "1h"},
        {"wait_until": {"time": "10:00", "days_after_entry": 30, "weekdays": ["mon", "fri"]}},
        {"wait_for": {"event": "App Opened", "timeout": "2d"}},
        {"branch": {"cases": [{"when": {"traits": {"plan": "pro"}}, "steps": [SEND]}]}},
        {"split": {"paths": [{"weight": 50}, {"weight": 50}]}},
        SEND,
        {"update": {"set": {"onboarded": True}}},
        {"exit": {}},
    )

    expected: tuple[type, ...] = (
        WaitStep,
        WaitUntilStep,
        WaitForStep,
        BranchStep,
        SplitStep,
        SendStep,
        UpdateStep,
        ExitStep,
    )
    assert tuple(type(step) for step in definition.steps) == expected
    assert [step.type for step in definition.steps] == [
        "wait",
        "wait_until",
        "wait_for",
        "branch",
        "split",
        "send",
        "update",
        "exit",
    ]


@pytest.mark.parametrize("written", ["exit", {"exit": None}, {"exit": {}}])
def test_exit_is_written_bare_null_or_empty(written: object) -> None:
    definition = _steps(SEND, written)

    assert isinstance(definition.steps[1], ExitStep)


def test_a_step_with_two_verbs_is_rejected_naming_the_verbs() -> None:
    with pytest.raises(ValidationError, match=r"exactly one of wait, .*got \['send', 'wait'\]"):
        _steps({"wait": "1h", "send": SEND["send"]})


def test_a_step_with_an_unknown_verb_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"got \['sleep'\]"):
        _steps(SEND, {"sleep": "1h"})


def test_an_error_in_a_child_path_names_its_location() -> None:
    with pytest.raises(ValidationError) as caught:
        _steps(
            SEND,
            {"wait_for": {"event": "App Opened", "timeout": "2d", "on_timeout": [{"wait": "soon"}]}},
        )

    assert "steps.1.wait_for.wait_for.on_timeout.0" in str(caught.value)
    assert "'soon' is not a number" in str(caught.value)


def test_trigger_and_exit_on_accept_an_event_name_or_a_rule_with_conditions() -> None:
    definition = _steps(
        SEND,
        trigger={"event": "Product Added", "where": {"price": {"gt": 10}}},
        exit_on=[
            "Order Completed",
            {"event": "Cart Emptied", "where": {"cart_id": {"same_as_trigger": True}}},
        ],
    )

    assert definition.trigger.event == "Product Added"
    assert definition.trigger.where["price"] == Condition(op="gt", value=10)
    assert definition.exit_on[0] == EventRule(event="Order Completed")
    assert definition.exit_on[1].where["cart_id"] == Condition(op="same_as_trigger", value=True)


def test_a_goal_has_an_event_and_a_window_and_exits_by_default() -> None:
    definition = _steps(SEND, goal={"event": "Order Completed", "within": "7d"})

    assert definition.goal is not None
    assert (definition.goal.event, definition.goal.within, definition.goal.exit_on_goal) == (
        "Order Completed",
        7 * 86400,
        True,
    )


def test_a_goal_without_a_window_is_rejected() -> None:
    with pytest.raises(ValidationError, match="within"):
        _steps(SEND, goal={"event": "Order Completed"})


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("never", ReEntry(mode="never")),
        ("after_exit", ReEntry(mode="after_exit")),
        ({"max": 3, "min_interval": "30d"}, ReEntry(mode="cap", max=3, min_interval=30 * 86400)),
    ],
)
def test_re_entry_is_never_after_exit_or_a_cap(written: object, expected: ReEntry) -> None:
    assert _steps(SEND, re_entry=written).re_entry == expected


def test_re_entry_defaults_to_after_exit_and_holdout_to_zero() -> None:
    definition = _steps(SEND)

    assert definition.re_entry == ReEntry(mode="after_exit")
    assert definition.holdout == 0


@pytest.mark.parametrize("written", ["always", {}, {"max": 0}])
def test_a_bad_re_entry_is_rejected(written: object) -> None:
    with pytest.raises(ValidationError, match="re_entry"):
        _steps(SEND, re_entry=written)


@pytest.mark.parametrize("holdout", [-1, 100.5])
def test_holdout_is_a_percentage(holdout: float) -> None:
    with pytest.raises(ValidationError, match="holdout"):
        _steps(SEND, holdout=holdout)


# -- conditions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "op", "value"),
    [
        ("pro", "equals", "pro"),
        (3, "equals", 3),
        ({"equals": None}, "equals", None),
        ({"one_of": ["gold", "silver"]}, "one_of", ["gold", "silver"]),
        ({"exists": False}, "exists", False),
        ({"gte": 2.5}, "gte", 2.5),
        ({"before": "2024-01-01T00:00:00Z"}, "before", "2024-01-01T00:00:00Z"),
        ({"after": "now"}, "after", "now"),
        ({"same_as_trigger": "cart"}, "same_as_trigger", "cart"),
    ],
)
def test_a_condition_is_a_value_or_one_operator(written: object, op: str, value: object) -> None:
    condition = Condition.model_validate(written)

    assert (condition.op, condition.value) == (op, value)
    assert Condition.model_validate(condition.model_dump(mode="json")) == condition


def test_an_unquoted_yaml_date_in_a_condition_becomes_its_iso_form() -> None:
    raw = yaml.safe_load("before: 2024-01-01")

    assert Condition.model_validate(raw).value == "2024-01-01"


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ({"equals": 1, "gt": 0}, "exactly one of"),
        ({"like": "x"}, "exactly one of"),
        ({"one_of": "gold"}, "one_of takes a list"),
        ({"exists": "yes"}, "exists takes true or false"),
        ({"gt": "10"}, "gt takes a number"),
        ({"lt": True}, "lt takes a number"),
        ({"before": "yesterday"}, "not an ISO date-time or date"),
        ({"same_as_trigger": False}, "same_as_trigger takes true or the name"),
    ],
)
def test_a_bad_condition_says_what_is_wrong(written: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Condition.model_validate(written)


# -- step rules ------------------------------------------------------------------------------------


def test_wait_until_needs_a_time_or_a_trait() -> None:
    with pytest.raises(ValidationError, match="needs a time"):
        _steps({"wait_until": {"days_after_entry": 3}}, SEND)


def test_wait_until_with_an_unquoted_yaml_time_asks_for_quotes() -> None:
    raw = yaml.safe_load("wait_until: {time: 10:00}")  # YAML 1.1 reads 10:00 as 600

    with pytest.raises(ValidationError, match="write the time quoted"):
        _steps(raw, SEND)


def test_wait_until_a_trait_takes_a_negative_offset() -> None:
    definition = _steps({"wait_until": {"trait": "trial_ends_at", "offset": "-3d", "time": "09:30"}}, SEND)

    step = definition.steps[0]
    assert isinstance(step, WaitUntilStep)
    assert (step.wait_until.offset, step.wait_until.time) == (-3 * 86400, "09:30")


@pytest.mark.parametrize(
    "spec",
    [
        {"trait": "trial_ends_at", "weekdays": ["mon"]},
        {"time": "10:00", "offset": "1d"},
        {"time": "25:00"},
        {"time": "10:00", "weekdays": ["monday"]},
    ],
)
def test_a_bad_wait_until_is_rejected(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="wait_until"):
        _steps({"wait_until": spec}, SEND)


def test_a_wait_for_needs_a_positive_timeout() -> None:
    with pytest.raises(ValidationError, match="timeout"):
        _steps({"wait_for": {"event": "App Opened", "timeout": 0}}, SEND)
    with pytest.raises(ValidationError, match="timeout"):
        _steps({"wait_for": {"event": "App Opened"}}, SEND)


def test_a_branch_needs_a_case() -> None:
    with pytest.raises(ValidationError, match="cases"):
        _steps({"branch": {"cases": [], "else": [SEND]}}, SEND)


def test_a_case_needs_a_condition() -> None:
    with pytest.raises(ValidationError, match="use else"):
        _steps({"branch": {"cases": [{"when": {}, "steps": [SEND]}]}})


def test_a_split_needs_two_paths_with_positive_weights() -> None:
    with pytest.raises(ValidationError, match="paths"):
        _steps({"split": {"paths": [{"weight": 1, "steps": [SEND]}]}})
    with pytest.raises(ValidationError, match="weight"):
        _steps({"split": {"paths": [{"weight": 0}, {"weight": 1, "steps": [SEND]}]}})


def test_an_update_must_set_or_unset_something() -> None:
    with pytest.raises(ValidationError, match="needs set and/or unset"):
        _steps({"update": {}}, SEND)
    with pytest.raises(ValidationError, match="cannot both set and unset"):
        _steps({"update": {"set": {"plan": "pro"}, "unset": ["plan"]}}, SEND)


def test_a_send_nested_in_a_child_path_counts_as_the_journeys_send() -> None:
    definition = _steps({"wait_for": {"event": "App Opened", "timeout": "1d", "on_timeout": [SEND]}})

    assert definition.send_step_ids() == ["wait-for-app-opened.on_timeout.send-email-hello"]


def test_a_journey_condition_must_name_a_send_step() -> None:
    with pytest.raises(ValidationError, match="journey sent: 'wait-1h' is not a send step"):
        _steps(
            {"wait": "1h"},
            SEND,
            {"branch": {"cases": [{"when": {"journey": {"sent": "wait-1h"}}, "steps": []}]}},
        )


def test_a_template_used_only_in_a_child_path_must_exist() -> None:
    definition = _steps(
        SEND,
        {
            "wait_for": {
                "event": "A",
                "timeout": "1d",
                "on_timeout": [{"send": {"channel": "push", "template": "x"}}],
            }
        },
    )

    with pytest.raises(
        ValidationError, match="step 'wait-for-a.on_timeout.send-push-x': send uses template 'x'"
    ):
        Journey(definition=definition, templates={"hello": Template(name="hello", email=EMAIL)})  # type: ignore[arg-type]


# -- step ids --------------------------------------------------------------------------------------


def _ids(definition: JourneyDefinition) -> list[str | None]:
    return [step.id for step in definition.walk()]


def test_ids_are_derived_from_content_and_parent_path() -> None:
    definition = _steps(
        {"wait": "1h"},
        SEND,
        {
            "id": "checkout",
            "wait_for": {
                "event": "Checkout Started",
                "timeout": "23h",
                "on_timeout": [{"send": {"channel": "push", "template": "hello"}}],
            },
        },
        {"wait_until": {"time": "10:00"}},
        {"branch": {"cases": [{"when": {"traits": {"plan": "pro"}}, "steps": [SEND]}], "else": ["exit"]}},
        {"split": {"paths": [{"weight": 1, "steps": [{"wait": 5400}]}, {"weight": 1}]}},
        {"update": {"unset": ["trial"]}},
    )

    assert _ids(definition) == [
        "wait-1h",
        "send-email-hello",
        "checkout",
        "checkout.on_timeout.send-push-hello",
        "wait-until-10-00",
        "branch",
        "branch.case-0.send-email-hello",
        "branch.else.exit",
        "split",
        "split.path-0.wait-90m",
        "update",
    ]


def test_inserting_a_step_does_not_change_the_other_ids() -> None:
    before = _steps({"wait": "1h"}, SEND, {"wait_for": {"event": "A", "timeout": "1d", "on_timeout": [SEND]}})
    after = _steps(
        {"wait": "10m"},
        {"wait": "1h"},
        {"update": {"set": {"x": 1}}},
        SEND,
        {"wait_for": {"event": "A", "timeout": "1d", "on_timeout": [{"wait": "1h"}, SEND]}},
    )

    assert set(_ids(before)) <= set(_ids(after))


def test_same_content_in_the_same_path_gets_numbered_ids() -> None:
    definition = _steps(SEND, {"wait": "1d"}, SEND, {"wait": "1d"}, SEND)

    assert _ids(definition) == [
        "send-email-hello",
        "wait-1d",
        "send-email-hello-2",
        "wait-1d-2",
        "send-email-hello-3",
    ]


def test_a_derived_id_does_not_take_an_authors_id() -> None:
    definition = _steps(SEND, {"id": "send-email-hello", "wait": "1h"})

    assert _ids(definition) == ["send-email-hello-2", "send-email-hello"]


def test_repeated_author_ids_are_rejected() -> None:
    with pytest.raises(ValidationError, match=r"repeated: \['same'\]"):
        _steps({"id": "same", "wait": "1h"}, {"id": "same", **SEND})


@pytest.mark.parametrize("step_id", ["Bad", "-x", "a b", "x" * 73])
def test_a_malformed_step_id_is_rejected(step_id: str) -> None:
    with pytest.raises(ValidationError, match="id"):
        _steps({"id": step_id, **SEND})


def test_long_derived_ids_stay_within_the_state_name_limit() -> None:
    event = "An Extremely Long Event Name That Keeps Going And Going"
    definition = _steps(
        {
            "wait_for": {
                "event": event,
                "timeout": "1d",
                "on_timeout": [{"wait_for": {"event": event, "timeout": "1d", "on_timeout": [SEND]}}],
            }
        },
    )

    ids = _ids(definition)
    assert all(step_id is not None and len(step_id) <= 72 for step_id in ids)
    assert len(set(ids)) == len(ids)


def test_a_definition_round_trips_through_its_json_dump() -> None:
    definition = _steps(
        SEND,
        {
            "wait_for": {
                "event": "A",
                "where": {"cart_id": {"same_as_trigger": True}},
                "timeout": "1d",
                "on_event": [
                    {"branch": {"cases": [{"when": {"trigger": {"n": {"lt": 3}}}}], "else": ["exit"]}}
                ],
            }
        },
        {"wait_until": {"trait": "renews_at", "offset": "-1d"}},
        goal={"event": "Order Completed", "within": "7d"},
        re_entry={"max": 2},
        holdout=12.5,
    )

    dumped = definition.model_dump(mode="json")

    assert dumped["steps"][1]["wait_for"]["on_event"][0]["branch"]["else"] == [
        {"id": "wait-for-a.on_event.branch.else.exit", "exit": {}}
    ]
    assert JourneyDefinition.model_validate(dumped) == definition


def test_awaited_events_and_walk_cover_child_paths() -> None:
    definition = _steps(
        {
            "wait_for": {
                "event": "A",
                "timeout": "1d",
                "on_timeout": [{"wait_for": {"event": "B", "timeout": "1d"}}, SEND],
            }
        },
    )

    assert definition.awaited_events() == {"A", "B"}
    assert definition.step("wait-for-a.on_timeout.wait-for-b").type == "wait_for"


def test_a_steps_spec_strips_its_child_paths() -> None:
    definition = _steps(
        {"wait_for": {"event": "A", "timeout": "1d", "on_timeout": [SEND]}},
        {"branch": {"cases": [{"when": {"traits": {"plan": "pro"}}, "steps": [SEND]}], "else": [SEND]}},
        {"split": {"paths": [{"weight": 1, "steps": [SEND]}, {"weight": 3}]}},
    )

    wait_for, branch, split = definition.steps
    assert wait_for.spec() == {"event": "A", "where": {}, "timeout": 86400}
    assert branch.spec() == {"cases": [{"when": {"traits": {"plan": {"equals": "pro"}}, "trigger": {}}}]}
    assert split.spec() == {"paths": [{"weight": 1.0}, {"weight": 3.0}]}


def test_steps_after_an_exit_are_rejected() -> None:
    with pytest.raises(ValidationError, match=r"step 'w' on_timeout: steps after an exit are never reached"):
        _steps(SEND, {"id": "w", "wait_for": {"event": "A", "timeout": "1h", "on_timeout": ["exit", SEND]}})
    with pytest.raises(ValidationError, match=r"steps: steps after an exit are never reached \(step 2\)"):
        _steps(SEND, "exit", {"wait": "1h"})


def test_each_task_steps_spec_validates_back_to_its_spec_model() -> None:
    definition = _steps(
        {"wait_until": {"time": "10:00", "weekdays": ["sat"]}},
        {"wait_for": {"event": "A", "where": {"n": {"gt": 1}}, "timeout": "1h", "on_event": [SEND]}},
        {"branch": {"cases": [{"when": {"journey": {"dropped": "send-email-hello"}}, "steps": ["exit"]}]}},
        {"split": {"paths": [{"weight": 1}, {"weight": 2}]}},
        {"update": {"set": {"a": {"b": 1}}}},
        SEND,
    )

    for step in definition.steps:
        spec = SPEC_MODELS[step.type].model_validate(step.spec())
        assert type(step).model_validate({step.type: spec}).spec() == step.spec()


# -- a run lives at most a year --------------------------------------------------------------------


@pytest.mark.parametrize(
    "steps",
    [
        [{"wait": "300d"}, {"wait": "300d"}, SEND],
        [
            {"wait_for": {"event": "App Opened", "timeout": "200d", "on_timeout": [{"wait": "200d"}]}},
            SEND,
        ],
        [{"wait": "100d"}, {"wait_until": {"time": "10:00", "days_after_entry": 300}}, {"wait": "70d"}, SEND],
        [
            {"split": {"paths": [{"weight": 1, "steps": [{"wait": "200d"}]}, {"weight": 1, "steps": []}]}},
            {"wait": "200d"},
            SEND,
        ],
    ],
)
def test_a_path_certain_to_outlive_a_step_functions_execution_is_refused(steps: list[Any]) -> None:
    # Each wait was capped at 365 days, but two waits of 300 days validated, and the run would be cut
    # off by Step Functions (a Standard execution lives at most a year) before its send.
    with pytest.raises(ValidationError, match="at most a year"):
        JourneyDefinition.model_validate(_definition(steps=steps))


def test_a_long_path_that_may_end_early_or_fits_in_a_year_is_accepted() -> None:
    JourneyDefinition.model_validate(
        _definition(
            steps=[
                {"wait": "200d"},
                {"wait_for": {"event": "A", "timeout": "100d", "on_event": [SEND], "on_timeout": ["exit"]}},
                {"wait_until": {"time": "10:00", "days_after_entry": 360}},
                SEND,
            ]
        )
    )


# -- segments ----------------------------------------------------------------------------------------


def test_segment_entered_as_a_trigger_is_the_segment_event_for_that_segment() -> None:
    definition = JourneyDefinition.model_validate(_definition(trigger={"segment_entered": "vip"}))

    assert definition.trigger == EventRule(event="$segment.entered", where={"segment": {"equals": "vip"}})


def test_segment_exited_and_entered_in_exit_on_are_the_segment_events() -> None:
    definition = JourneyDefinition.model_validate(
        _definition(exit_on=[{"segment_exited": "cart_abandoners"}, {"segment_entered": "vip"}, "Churned"])
    )

    assert definition.exit_on == [
        EventRule(event="$segment.exited", where={"segment": {"equals": "cart_abandoners"}}),
        EventRule(event="$segment.entered", where={"segment": {"equals": "vip"}}),
        EventRule(event="Churned"),
    ]


def test_a_journey_on_segments_dumps_to_what_validates_back_to_it() -> None:
    definition = JourneyDefinition.model_validate(
        _definition(trigger={"segment_entered": "vip"}, exit_on=[{"segment_exited": "vip"}])
    )

    assert JourneyDefinition.model_validate(definition.model_dump(mode="json")) == definition


@pytest.mark.parametrize(
    "written",
    [
        {"segment_entered": "VIP"},  # not a segment id
        {"segment_entered": ""},
        {"segment_entered": ["vip"]},
        {"segment_entered": "vip", "where": {"plan": "pro"}},  # the sugar stands alone
        {"segment_entered": "vip", "segment_exited": "vip"},
        "$segment.changed",  # only the two segment events exist
        {"event": "$segment.left", "where": {"segment": "vip"}},
    ],
)
def test_a_malformed_segment_trigger_is_refused(written: Any) -> None:
    with pytest.raises(ValidationError):
        JourneyDefinition.model_validate(_definition(trigger=written))


def test_a_journey_names_the_segments_and_computed_traits_it_uses() -> None:
    branch = {
        "branch": {
            "cases": [
                {
                    "when": {
                        "segments": {"cart_abandoners": False},
                        "computed": {"orders_count": {"gte": 2}},
                    },
                    "steps": [{"send": {"channel": "email", "template": "hello"}}],
                },
                {"when": {"computed": {"lifetime_revenue": {"gt": 100}}}, "steps": []},
            ],
        }
    }
    definition = JourneyDefinition.model_validate(
        _definition(
            trigger={"segment_entered": "vip"}, exit_on=[{"segment_exited": "churn_risk"}], steps=[branch]
        )
    )

    assert definition.segments_named() == {"vip", "churn_risk", "cart_abandoners"}
    assert definition.computed_named() == {"orders_count", "lifetime_revenue"}


def test_a_journey_without_segments_names_none() -> None:
    definition = JourneyDefinition.model_validate(_definition())

    assert (definition.segments_named(), definition.computed_named()) == (set(), set())


@pytest.mark.parametrize(
    "when",
    [{"segments": {"Not An Id": True}}, {"segments": {"vip": "yes"}}, {"computed": {"x": {"nope": 1}}}],
)
def test_a_malformed_segment_or_computed_case_is_refused(when: dict[str, Any]) -> None:
    branch = {"branch": {"cases": [{"when": when, "steps": []}]}}
    with pytest.raises(ValidationError):
        JourneyDefinition.model_validate(
            _definition(steps=[branch, {"send": {"channel": "email", "template": "hello"}}])
        )


def _segment_catalogue() -> SegmentCatalogue:
    return SegmentCatalogue.model_validate(
        {
            "segments": [
                {"id": "vip", "name": "VIP", "when": {"computed": {"lifetime_revenue": {"gte": 500}}}}
            ],
            "computed": [
                {
                    "id": "lifetime_revenue",
                    "event": "Order Completed",
                    "aggregate": "sum",
                    "property": "revenue",
                }
            ],
        }
    )


def test_loading_journeys_with_the_segment_catalogue_refuses_one_naming_an_unknown_segment(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path, "welcome", _definition(exit_on=[{"segment_exited": "vips"}]), {"hello": {"email": EMAIL}}
    )

    with pytest.raises(JourneyLoadError, match=r"welcome: names unknown segment\(s\) \['vips'\]"):
        load_journeys(tmp_path, _segment_catalogue())


def test_loading_journeys_with_the_segment_catalogue_refuses_an_unknown_computed_trait_in_a_template(
    tmp_path: Path,
) -> None:
    text = {"subject": "Hi", "text": "{{ computed.orders_count | no }} orders"}
    _write(tmp_path, "welcome", _definition(), {"hello": {"email": text}})

    with pytest.raises(JourneyLoadError, match=r"unknown computed trait\(s\) \['orders_count'\]"):
        load_journeys(tmp_path, _segment_catalogue())


def test_loading_journeys_naming_declared_segments_and_computed_traits_succeeds(tmp_path: Path) -> None:
    branch = {"branch": {"cases": [{"when": {"computed": {"lifetime_revenue": {"gte": 900}}}, "steps": []}]}}
    definition = _definition(
        trigger={"segment_entered": "vip"},
        steps=[branch, {"send": {"channel": "email", "template": "hello"}}],
    )
    _write(tmp_path, "welcome", definition, {"hello": {"email": EMAIL}})

    [journey] = load_journeys(tmp_path, _segment_catalogue())

    assert journey.definition.segments_named() == {"vip"}
