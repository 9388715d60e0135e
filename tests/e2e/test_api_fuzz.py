"""Schemathesis against the running local server, as a user would run it: `st run` on the server's own
/openapi.json, authenticated, with the checks `not_a_server_error` (no 5xx, whatever is sent) and
`negative_data_rejection` (what the document says is invalid is refused with a 4xx). The ingest API is
driven with the write key, the Profile API with the admin token.

Run from the command line (schemathesis's pytest plugin does not run under pytest 9); a failure
prints schemathesis's own report, each finding with a curl command that reproduces it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import WRITE_KEY, LocalRuntime, basic

CHECKS = "not_a_server_error,negative_data_rejection"
# schemathesis's coverage phase: for every operation, the boundary values and the documented
# constraints broken one at a time (~3,000 cases, deterministic). Its random phase adds little to that
# and doubles the run time on a laptop.
PHASES = "coverage"
MINIMUM_CASES = 2500
ADMIN_TOKEN = "dev-admin-token"  # the local runtime's default (CONTINUUM_ADMIN_TOKEN)
SCHEMATHESIS = [sys.executable, "-m", "schemathesis.cli"]  # `st`, from this virtualenv


def _run(local: LocalRuntime, report: Path, authorization: str, paths: str) -> dict[str, object]:
    completed = subprocess.run(
        [
            *SCHEMATHESIS,
            "run",
            f"{local.url}/openapi.json",
            "--checks",
            CHECKS,
            "--phases",
            PHASES,
            "--generation-deterministic",
            # Health checks judge the data generation (too slow, too filtered), not the API.
            "--suppress-health-check",
            "all",
            "--header",
            f"Authorization: {authorization}",
            "--include-path-regex",
            paths,
            # One worker: the local runtime runs one call per function at a time anyway, and Python
            # 3.11's ast.parse (used by hypothesis in each worker thread) can fail under threads.
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--no-color",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        cwd=report.parent,  # schemathesis keeps a .schemathesis directory where it runs
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stdout[-20000:] + completed.stderr[-5000:]
    document: dict[str, object] = json.loads(report.read_text())
    return document


def _cases(document: dict[str, object]) -> int:
    return int(document["test_cases"]["generated"])  # type: ignore[index]


def test_schemathesis_finds_no_server_error_and_no_accepted_invalid_input(
    local: LocalRuntime, tmp_path: Path
) -> None:
    ingest = _run(local, tmp_path / "ingest.json", basic(WRITE_KEY)["Authorization"], r"^/v1/(?!profiles)")
    profiles = _run(local, tmp_path / "profiles.json", f"Bearer {ADMIN_TOKEN}", r"^/v1/profiles")

    document = local.request("GET", "/openapi.json")[1]
    operations = sum(len(methods) for methods in document["paths"].values())
    tested = [run["operations"]["tested"] for run in (ingest, profiles)]  # type: ignore[index]
    assert sum(tested) == operations
    total = _cases(ingest) + _cases(profiles)
    assert total >= MINIMUM_CASES, f"only {total} cases were generated"
    assert [run["failures"] for run in (ingest, profiles)] == [[], []]
    assert [run["errors"] for run in (ingest, profiles)] == [[], []]
