"""`python -m infra.sources`: the write-key command line, its options and its errors."""

from __future__ import annotations

from typing import Any

import pytest

from infra import sources


class _RecordingLocal:
    """Stands in for the local runtime's HTTP API: records which URL the command line chose."""

    urls: list[str] = []

    def __init__(self, url: str) -> None:
        self.urls.append(url)

    def list(self) -> list[dict[str, Any]]:
        return []


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    _RecordingLocal.urls = []
    monkeypatch.setattr(sources, "_Local", _RecordingLocal)
    return _RecordingLocal.urls


@pytest.mark.parametrize(
    "argv",
    [["--local", "http://127.0.0.1:9123", "list"], ["list", "--local", "http://127.0.0.1:9123"]],
    ids=["before", "after"],
)
def test_the_target_may_come_before_or_after_the_subcommand(local: list[str], argv: list[str]) -> None:
    assert sources.main(argv) == 0
    assert local == ["http://127.0.0.1:9123"]


def test_without_a_target_the_default_local_runtime_is_used(local: list[str]) -> None:
    assert sources.main(["list"]) == 0
    assert local == ["http://127.0.0.1:8000"]


def test_local_and_stack_exclude_each_other_wherever_they_are_given(
    local: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        sources.main(["--stack", "Continuum", "list", "--local", "http://127.0.0.1:9123"])
    assert stopped.value.code == 2
    assert "not allowed with" in capsys.readouterr().err
    assert local == []


@pytest.fixture
def no_aws_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("region", [None, "eu-west-1"], ids=["no-region", "no-credentials"])
def test_a_stack_without_aws_configuration_is_a_one_line_error_and_exit_2(
    no_aws_configuration: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    region: str | None,
) -> None:
    if region:
        monkeypatch.setenv("AWS_DEFAULT_REGION", region)

    assert sources.main(["--stack", "Continuum", "list"]) == 2

    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "AWS" in err
