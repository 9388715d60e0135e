"""The local runtime as a user runs it: `python -m infra.local` in its own process, driven over HTTP."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRITE_KEY = "e2e-write-key"
BOOT_SECONDS = 90
# It stops within a second of SIGTERM; the margin is for a loaded machine, not a promise.
STOP_SECONDS = 30


def basic(write_key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


class LocalRuntime:
    def __init__(self, url: str, output: list[str]):
        self.url = url
        self.output = output

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        status, _, raw = self.raw(method, path, data, headers)
        return status, json.loads(raw or b"null")

    def raw(
        self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers.items()), error.read()

    def events(self) -> list[dict[str, Any]]:
        """What reached the bus, in order."""
        status, body = self.request("GET", "/_local/events")
        assert status == 200
        return list(body)

    def send(self, call: str, payload: dict[str, Any], write_key: str = WRITE_KEY) -> tuple[int, Any]:
        return self.request(
            "POST", f"/v1/{call}", payload, {**basic(write_key), "Content-Type": "application/json"}
        )

    def advance(self, seconds: float) -> str:
        status, body = self.request("POST", "/_local/clock/advance", {"seconds": seconds})
        assert status == 200, body
        return str(body["now"])

    def messages(self, **match: str) -> list[dict[str, Any]]:
        status, body = self.request("GET", "/_local/messages")
        assert status == 200
        return [m for m in body if all(m.get(k) == v for k, v in match.items())]

    def message_log(self, **match: str) -> list[dict[str, Any]]:
        status, body = self.request("GET", "/_local/message-log")
        assert status == 200
        return [m for m in body if all(m.get(k) == v for k, v in match.items())]

    def executions(self) -> list[dict[str, Any]]:
        status, body = self.request("GET", "/_local/executions")
        assert status == 200
        return list(body)

    def failures(self) -> list[Any]:
        return self.request("GET", "/_local/failures")[1]


class LocalProcess:
    """`python -m infra.local` started as `make local` starts it, its output collected line by line."""

    def __init__(self, env: dict[str, str] | None = None):
        environment = {**os.environ, "CONTINUUM_WRITE_KEY": WRITE_KEY, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infra.local", "--port", "0"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self._ready = threading.Event()
        self.finished = threading.Event()  # its output is closed: every line is in `output`
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if "endpoint" in line:
                self._ready.set()
        self.finished.set()

    def ready(self) -> LocalRuntime:
        """Wait until it answers; the runtime to drive it."""
        if not self._ready.wait(BOOT_SECONDS):
            pytest.fail("local runtime did not start:\n" + "".join(self.output))
        url = next(line for line in self.output if "endpoint" in line).split()[1]
        runtime = LocalRuntime(url, self.output)
        deadline = time.monotonic() + BOOT_SECONDS
        while runtime.request("GET", "/_local/health")[0] != 200:
            assert time.monotonic() < deadline, "".join(self.output)
            time.sleep(0.1)
        return runtime

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit code."""
        self.process.terminate()
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def journeys_folder(target: Path, *sources: Path) -> Path:
    """`target` holding the journeys of `sources` (folders of journey folders), with the layouts and
    partials (`_layouts/`, `_partials/`) their templates share: a journeys folder for the runtime."""
    for source in sources:
        for folder in source.iterdir():
            if (folder / "journey.yaml").is_file() or (folder.is_dir() and folder.name.startswith("_")):
                shutil.copytree(folder, target / folder.name)
    return target


def running(env: dict[str, str] | None = None) -> Iterator[LocalRuntime]:
    """`make local` as a separate process for a module's tests; when they are done, no function may
    have failed for good (what the runtime's failure list holds)."""
    started = LocalProcess(env=env)
    try:
        runtime = started.ready()
        yield runtime
        failures = runtime.failures()
        assert failures == [], "functions failed for good:\n" + "\n".join(
            f"{f['error'][-600:]}\n{json.dumps(f['event'].get('detail', {}))[:1500]}" for f in failures
        )
    finally:
        started.stop()


@pytest.fixture(scope="module")
def local() -> Iterator[LocalRuntime]:
    yield from running()
