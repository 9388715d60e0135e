"""The send policy file: read from YAML at build, shipped as JSON, cached by file (shared/delivery/policy.py),
and journeys checked against it (a send step's topic must be declared)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.journeys import validate
from shared.delivery.policy import PolicyLoadError, load_policy, read_policy_yaml, write_policy
from shared.journeys.loader import JourneyLoadError, load_journeys
from tests.policies import PERMISSIVE, SHIPPED, SHIPPED_POLICY_FILE

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_policy_has_the_issues_defaults() -> None:
    assert SHIPPED.quiet_hours is not None and (SHIPPED.quiet_hours.start, SHIPPED.quiet_hours.end) == (
        "21:00",
        "08:00",
    )
    assert SHIPPED.default_timezone is None
    daily, weekly = SHIPPED.caps
    assert (daily.limit, daily.window, daily.per_channel, daily.on_cap, daily.max_deferral) == (
        1,
        "calendar_day",
        True,
        "defer",
        86400,
    )
    assert (weekly.limit, weekly.window, weekly.per_channel) == (5, 7 * 86400, False)


def test_the_json_file_reads_back_as_the_yaml_and_is_read_again_only_when_it_changes(tmp_path: Path) -> None:
    path = write_policy(SHIPPED, tmp_path / "policy.json")
    first = load_policy(path)
    assert first == SHIPPED and load_policy(path) is first
    write_policy(PERMISSIVE, path)
    assert load_policy(path) == PERMISSIVE
    assert os.listdir(tmp_path) == ["policy.json"]


def test_an_invalid_policy_names_the_file_and_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("topics: {marketing: {}, transactional: {}}\nquiet_hours: {start: '9pm', end: '08:00'}\n")
    with pytest.raises(PolicyLoadError, match=r"policy.yaml: quiet_hours.start: .*time of day"):
        read_policy_yaml(bad)


def _journey(root: Path, topic: str) -> Path:
    folder = root / "topical"
    (folder / "templates").mkdir(parents=True)
    (folder / "templates" / "hello.yaml").write_text("email: {subject: Hi, text: Hi}\n")
    (folder / "journey.yaml").write_text(
        "id: topical\nname: Topical\ntrigger: Signed Up\n"
        f"steps:\n  - send: {{channel: email, template: hello, topic: {topic}}}\n"
    )
    return root


def test_a_send_on_an_undeclared_topic_fails_to_load(tmp_path: Path) -> None:
    root = _journey(tmp_path, "newsletter")
    with pytest.raises(JourneyLoadError, match="unknown topic 'newsletter'"):
        load_journeys(root, policy=SHIPPED)
    assert load_journeys(_journey(tmp_path / "ok", "product_updates"), policy=SHIPPED)


def test_validate_reports_an_undeclared_topic(tmp_path: Path) -> None:
    count, errors = validate(
        _journey(tmp_path, "newsletter"), ROOT / "events", policy_file=SHIPPED_POLICY_FILE
    )
    assert count == 1
    assert any("unknown topic 'newsletter'" in error for error in errors), errors
