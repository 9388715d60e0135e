"""`python -m infra.journeys validate | graph ID` (infra/journeys.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.journeys import main

SIGNED_UP = {"userId": "u1", "event": "Signed Up", "properties": {"plan": "pro"}}
IDENTIFY = {"userId": "u1", "traits": {"email": "a@example.com", "firstName": "Ada"}}


def _journey(root: Path, definition: dict[str, Any], templates: dict[str, Any]) -> None:
    folder = root / definition["id"]
    (folder / "templates").mkdir(parents=True)
    (folder / "journey.yaml").write_text(yaml.safe_dump(definition), encoding="utf-8")
    for name, content in templates.items():
        (folder / "templates" / f"{name}.yaml").write_text(yaml.safe_dump(content), encoding="utf-8")


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    journeys, events = tmp_path / "journeys", tmp_path / "events"
    journeys.mkdir()
    events.mkdir()
    (events / "identify.json").write_text(json.dumps(IDENTIFY), encoding="utf-8")
    (events / "track-signed-up.json").write_text(json.dumps(SIGNED_UP), encoding="utf-8")
    return journeys, events


def _welcome(text: str, trigger: str = "Signed Up") -> dict[str, Any]:
    return {
        "id": "welcome",
        "name": "Welcome",
        "trigger": trigger,
        "steps": [{"id": "hello", "send": {"channel": "email", "template": "hi"}}],
    }


def _validate(dirs: tuple[Path, Path]) -> int:
    return main(["--journeys", str(dirs[0]), "validate", "--events", str(dirs[1])])


def test_the_shipped_journeys_validate_against_the_shipped_sample_events(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate"]) == 0
    assert "ok: 5 journey(s) valid" in capsys.readouterr().out


def test_a_template_rendered_with_the_samples_passes(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _journey(
        dirs[0],
        _welcome(""),
        {
            "hi": {
                "email": {
                    "subject": "Hi {{ profile.traits.firstName }}",
                    "text": "Plan {{ trigger.properties.plan }}",
                }
            }
        },
    )

    assert _validate(dirs) == 0
    assert "ok: 1 journey(s)" in capsys.readouterr().out


def test_a_missing_variable_without_default_names_journey_template_step_field_line_and_variable(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _journey(
        dirs[0],
        _welcome(""),
        {"hi": {"email": {"subject": "Hi", "text": "Hello\n\nCode {{ trigger.properties.coupon }}"}}},
    )

    assert _validate(dirs) == 1
    err = capsys.readouterr().err
    assert (
        "journey welcome, template hi (used by hello), email.text, line 3:"
        " undefined variable trigger.properties.coupon" in err
    )


def test_default_covers_a_variable_the_sample_lacks(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    text = 'Code {{ trigger.properties.coupon | default: "none" }}'
    _journey(dirs[0], _welcome(""), {"hi": {"email": {"subject": "Hi", "text": text}}})

    assert _validate(dirs) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{{ user.name | upcase }}", "email.text, line 1: undefined variable user "),
        ("x\n{{ profile.traits.firstName | upcasee }}", "email.text, line 2: unknown filter 'upcasee'"),
        ("Hi {{ profile.traits.firstName", "email.text, line 1: syntax:"),
        ("{% if profile.traits.firstName %}\nHi", "email.text, line 2: syntax: expected tag endif"),
        ('{% render "header.txt" %}', "email.text, line 1: no partial named header.txt"),
    ],
)
def test_bad_templates_are_reported(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    _journey(dirs[0], _welcome(""), {"hi": {"email": {"subject": "Hi", "text": text}}})

    assert _validate(dirs) == 1
    assert problem in capsys.readouterr().err


def _shared(journeys: Path, layouts: dict[str, str], partials: dict[str, str]) -> None:
    (journeys / "_layouts").mkdir()
    (journeys / "_partials").mkdir()
    for name, source in layouts.items():
        (journeys / "_layouts" / name).write_text(source, encoding="utf-8")
    for name, source in partials.items():
        (journeys / "_partials" / name).write_text(source, encoding="utf-8")


LAYOUTS = {"brand.txt.liquid": '{{ content }}\n{% render "footer.txt", links: links %}'}
FOOTER = (
    "Preferences: {{ links.preferences }}\n"
    "{% if links.unsubscribe %}Unsubscribe: {{ links.unsubscribe }}{% endif %}"
)


def test_a_template_with_its_layout_and_footer_validates(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _shared(dirs[0], LAYOUTS, {"footer.txt.liquid": FOOTER})
    _journey(dirs[0], _welcome(""), {"hi": {"email": {"layout": "brand", "subject": "Hi", "text": "Hello"}}})

    assert _validate(dirs) == 0, capsys.readouterr().err


def test_an_error_in_a_partial_names_the_partial_and_its_line(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _shared(dirs[0], LAYOUTS, {"footer.txt.liquid": "--\n{{ links.preferencess }}"})
    _journey(dirs[0], _welcome(""), {"hi": {"email": {"layout": "brand", "subject": "Hi", "text": "Hello"}}})

    assert _validate(dirs) == 1
    assert (
        "journey welcome, template hi (used by hello), email.text layout, partial footer.txt, line 2:"
        " undefined variable links.preferencess" in capsys.readouterr().err
    )


def test_a_footer_that_assumes_an_unsubscribe_link_fails_for_transactional_sends(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Rendered with both sample links: a transactional send's unsubscribe is nil.
    _shared(dirs[0], LAYOUTS, {"footer.txt.liquid": "Unsubscribe ({{ links.unsubscribe.size }})"})
    _journey(dirs[0], _welcome(""), {"hi": {"email": {"layout": "brand", "subject": "Hi", "text": "Hello"}}})

    assert _validate(dirs) == 1
    assert "partial footer.txt, line 1: undefined variable links.unsubscribe.size" in capsys.readouterr().err


def test_a_template_naming_a_layout_that_does_not_exist_does_not_load(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _journey(dirs[0], _welcome(""), {"hi": {"email": {"layout": "brnad", "subject": "Hi", "text": "Hello"}}})

    assert _validate(dirs) == 1
    assert "layout 'brnad' does not exist" in capsys.readouterr().err


def test_a_journey_whose_trigger_has_no_sample_event_is_reported(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _journey(
        dirs[0], _welcome("", trigger="Plan Changed"), {"hi": {"email": {"subject": "Hi", "text": "Hello"}}}
    )

    assert _validate(dirs) == 1
    assert "journey welcome: no sample 'Plan Changed' event" in capsys.readouterr().err


def test_a_journey_that_does_not_load_is_reported_and_the_others_still_checked(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _journey(
        dirs[0], _welcome(""), {"hi": {"email": {"subject": "Hi", "text": "{{ trigger.properties.nope }}"}}}
    )
    broken = _welcome("")
    broken["id"] = "another"
    broken["steps"] = [{"wait": "soon"}]
    _journey(dirs[0], broken, {})

    assert _validate(dirs) == 1
    err = capsys.readouterr().err
    assert "journey another:" in err and "'soon' is not a number" in err
    assert "journey welcome, template hi" in err
    assert "2 problem(s) in 2 journey(s)" in err


def test_graph_prints_a_mermaid_flowchart_with_labelled_paths(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "welcome"]) == 0

    out = capsys.readouterr().out
    assert out.startswith("flowchart TD\n")
    assert 'start(["Signed Up"])' in out
    assert '|"App Opened"|' in out
    assert '|"timeout 2d"|' in out
    assert '|"plan = #34;pro#34;"|' in out
    assert '|"else"|' in out
    assert "plan.case-0.send-email-pro-onboarding" in out


def test_graph_labels_split_paths_by_share_and_same_as_trigger_conditions(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    definition = _welcome("")
    definition["steps"] = [
        {
            "id": "ab",
            "split": {
                "paths": [
                    {"weight": 1, "steps": [{"send": {"channel": "email", "template": "hi"}}]},
                    {"weight": 3},
                ]
            },
        },
        {
            "wait_for": {
                "event": "Checkout Started",
                "where": {"cart_id": {"same_as_trigger": True}},
                "timeout": "1h",
            }
        },
    ]
    _journey(dirs[0], definition, {"hi": {"email": {"subject": "Hi", "text": "Hello"}}})

    assert main(["--journeys", str(dirs[0]), "graph", "welcome"]) == 0

    out = capsys.readouterr().out
    assert '|"25%"|' in out and '|"75%"|' in out
    assert "cart_id = trigger's cart_id" in out
    assert "| done" in out  # both paths of the last wait_for end the run


def test_graph_of_an_unknown_journey_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "nope"]) == 2
    assert "no journey 'nope'" in capsys.readouterr().err


# -- segments and computed traits ---------------------------------------------------------------------

VIP = {"id": "vip", "name": "VIP", "when": {"computed": {"lifetime_revenue": {"gte": 500}}}}
COMPUTED = [{"id": "lifetime_revenue", "event": "Order Completed", "aggregate": "sum", "property": "revenue"}]


@pytest.fixture
def segments_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "segments"
    folder.mkdir()
    (folder / "vip.yaml").write_text(yaml.safe_dump(VIP), encoding="utf-8")
    (folder / "computed_traits.yaml").write_text(yaml.safe_dump(COMPUTED), encoding="utf-8")
    return folder


def _validate_with(dirs: tuple[Path, Path], segments: Path) -> int:
    return main(
        ["--journeys", str(dirs[0]), "validate", "--events", str(dirs[1]), "--segments", str(segments)]
    )


def _vip_thanks(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "vip_thanks",
        "name": "VIP thanks",
        "trigger": {"segment_entered": "vip"},
        "exit_on": [{"segment_exited": "vip"}],
        "steps": [{"id": "thanks", "send": {"channel": "email", "template": "thanks"}}],
        **overrides,
    }


THANKS = {
    "email": {
        "subject": "Welcome to {{ trigger.properties.segment }}, {{ profile.traits.firstName }}",
        "text": 'You spent {{ computed.lifetime_revenue | default: "a lot" }}',
    }
}


def test_a_segment_triggered_journey_rendering_computed_traits_validates(
    dirs: tuple[Path, Path], segments_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _journey(dirs[0], _vip_thanks(), {"thanks": THANKS})

    assert _validate_with(dirs, segments_dir) == 0, capsys.readouterr().err
    assert "ok: 1 journey(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"trigger": {"segment_entered": "vips"}}, "unknown segment(s) ['vips']"),
        ({"exit_on": [{"segment_exited": "churned"}]}, "unknown segment(s) ['churned']"),
        (
            {
                "steps": [
                    {
                        "branch": {
                            "cases": [{"when": {"segments": {"big_spenders": True}}, "steps": []}],
                        }
                    },
                    {"id": "thanks", "send": {"channel": "email", "template": "thanks"}},
                ]
            },
            "unknown segment(s) ['big_spenders']",
        ),
        (
            {
                "steps": [
                    {
                        "branch": {
                            "cases": [{"when": {"computed": {"orders_90d": {"gt": 1}}}, "steps": []}],
                        }
                    },
                    {"id": "thanks", "send": {"channel": "email", "template": "thanks"}},
                ]
            },
            "unknown computed trait(s) ['orders_90d']",
        ),
    ],
)
def test_a_journey_naming_an_undeclared_segment_or_computed_trait_fails(
    dirs: tuple[Path, Path],
    segments_dir: Path,
    capsys: pytest.CaptureFixture[str],
    overrides: dict[str, Any],
    problem: str,
) -> None:
    _journey(dirs[0], _vip_thanks(**overrides), {"thanks": THANKS})

    assert _validate_with(dirs, segments_dir) == 1
    assert f"journey vip_thanks: names {problem}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{{ computed.orders_count | default: 0 }}", "unknown computed trait(s) ['orders_count']"),
        ("{{ computed.lifetime_revenue }}", "undefined variable computed.lifetime_revenue"),
    ],
)
def test_a_template_rendering_an_undeclared_or_unguarded_computed_trait_fails(
    dirs: tuple[Path, Path], segments_dir: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    _journey(dirs[0], _vip_thanks(), {"thanks": {"email": {"subject": "Hi", "text": text}}})

    assert _validate_with(dirs, segments_dir) == 1
    assert problem in capsys.readouterr().err


def test_a_segments_folder_that_does_not_load_fails_validation(
    dirs: tuple[Path, Path], segments_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (segments_dir / "vip.yaml").write_text(yaml.safe_dump({**VIP, "when": {"nonsense": 1}}), encoding="utf-8")
    _journey(dirs[0], _welcome(""), {"hi": {"email": {"subject": "Hi", "text": "Hello"}}})

    assert _validate_with(dirs, segments_dir) == 1
    assert "error: segments:" in capsys.readouterr().err


def test_the_graph_of_a_segment_journey_reads_as_segments(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    branch = {"branch": {"cases": [{"when": {"segments": {"vip": False}}, "steps": []}]}}
    _journey(
        dirs[0],
        _vip_thanks(steps=[branch, {"id": "thanks", "send": {"channel": "email", "template": "thanks"}}]),
        {"thanks": THANKS},
    )

    assert main(["--journeys", str(dirs[0]), "graph", "vip_thanks"]) == 0
    out = capsys.readouterr().out
    assert 'start(["entered segment vip"])' in out
    assert "not in segment vip" in out
