"""A test harness for journey authors: a pytest plugin that runs your journeys on the local runtime.

    # conftest.py
    pytest_plugins = ["infra.local.harness"]

    # test_cart.py
    import pytest

    @pytest.mark.journeys("journeys")            # the folder of your journeys (default: `journeys_dir`
    def test_reminder(journey_harness):          # in the pytest ini options, else <rootdir>/journeys)
        h = journey_harness
        h.identify("u1", email="ada@example.com")
        h.track("u1", "Product Added", cart_id="c1")
        h.advance("1h")
        assert [m["template"] for m in h.messages("u1")] == ["cart-reminder"]
        assert h.path("u1", "cart_abandonment")[:2] == ["wait-1h", "send-email-cart-reminder"]

The calls go through the real ingest path (the ingest function, with the engine's write key), then
identity, the journey router and the compiled state machines, on moto, on the virtual clock: the
same engine `make local` runs. Each call returns once everything it set off has settled.

One engine serves each test module (starting one takes seconds; only one can run in a process at a
time); each test gets it reset (profiles, runs, messages, executions forgotten; the clock back at
`start`, ~0.1 s) and, if it asks for another folder, with those journeys registered.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.local.engine import LocalEngine
from infra.local.http import api_gateway_event
from infra.topology import JOURNEY_STATS, PROFILES, table_env

# Every test starts at this instant unless it says otherwise: a Monday, 09:00 UTC, so that
# "tomorrow at 10:00" and weekday rules give the same answer on every run.
DEFAULT_START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
WRITE_KEY = "journey-harness-key"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class HarnessError(AssertionError):
    """The engine refused a call (ingest answered an error) or a function failed for good."""


def duration_seconds(duration: str | float | timedelta) -> float:
    """'90s', '30m', '1h', '2d', '1w', a number of seconds, or a timedelta."""
    if isinstance(duration, timedelta):
        return duration.total_seconds()
    if isinstance(duration, int | float):
        return float(duration)
    match = _DURATION.match(duration)
    if not match:
        raise ValueError(f"duration {duration!r} is not a number followed by s, m, h, d or w (e.g. '1h')")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class JourneyHarness:
    """Drive one engine as customers would, and read what the journeys did."""

    def __init__(self, engine: LocalEngine):
        self.engine = engine

    # ------------------------------------------------------------ customers' calls

    @property
    def now(self) -> datetime:
        return self.engine.clock.now()

    def send(self, call: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Any Segment call (`identify`, `track`, `alias`, `page`, ...), as an SDK posts it."""
        body = {"messageId": str(uuid.uuid4()), "timestamp": _iso(self.now), **payload}
        credentials = base64.b64encode(f"{self.engine.write_key}:".encode()).decode()
        headers = {"authorization": f"Basic {credentials}", "content-type": "application/json"}
        response = self.engine.invoke(
            "ingest", api_gateway_event("POST", f"/v1/{call}", headers, json.dumps(body).encode())
        )
        if response.get("statusCode") != 200:
            raise HarnessError(
                f"ingest refused the {call}: {response.get('statusCode')} {response.get('body')}"
            )
        self.settle()
        answer: dict[str, Any] = json.loads(response.get("body") or "{}")
        return answer

    def identify(self, user_id: str, *, context: dict[str, Any] | None = None, **traits: Any) -> None:
        self.send(
            "identify", {"userId": user_id, "traits": traits, **({"context": context} if context else {})}
        )

    def track(
        self, user_id: str, event: str, *, context: dict[str, Any] | None = None, **properties: Any
    ) -> None:
        self.send(
            "track",
            {
                "userId": user_id,
                "event": event,
                "properties": properties,
                **({"context": context} if context else {}),
            },
        )

    def advance(self, duration: str | float | timedelta) -> datetime:
        """Move virtual time on, running everything that falls due on the way, in order."""
        moved = self.engine.advance(duration_seconds(duration))
        self._raise_failures()
        return moved

    def settle(self) -> None:
        self.engine.wait_idle()
        self._raise_failures()

    def reload(self, journeys_dir: str | Path | None = None) -> list[str]:
        """Redeploy the journeys (changed on disk, or another folder): running customers keep the
        definition they started with. The ids of the journeys that changed."""
        return self.engine.reload_journeys(Path(journeys_dir) if journeys_dir is not None else None)

    # ------------------------------------------------------------ what happened

    def profile_ids(self, user_id: str) -> set[str]:
        """The user's live profile and every profile merged into it."""
        from shared.models.profile import Identifier
        from shared.store.profiles import DynamoProfileStore

        store = DynamoProfileStore(self.engine._env[table_env(PROFILES)])
        user = Identifier(type="user_id", value=user_id)
        owner = store.lookup([user]).owners.get(user)
        found: set[str] = set()
        pending = [owner] if owner else []
        while pending:
            profile_id = pending.pop()
            if profile_id in found:
                continue
            found.add(profile_id)
            profile = store.profile(profile_id)
            pending.extend(getattr(profile, "mergedFrom", None) or [])
        return found

    def _entries(self, user_id: str | None) -> list[dict[str, Any]]:
        entries = self.engine.message_log()
        if user_id is None:
            return entries
        profiles = self.profile_ids(user_id)
        return [e for e in entries if e.get("userId") == user_id or e["profileId"] in profiles]

    def messages(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Messages handed to a provider (status `sent`), in order: channel, template, to, content, step…"""
        return [e for e in self._entries(user_id) if e["status"] == "sent"]

    def drops(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Messages the send gate dropped, each with its `reason`."""
        return [e for e in self._entries(user_id) if e["status"] == "dropped"]

    def executions(self, user_id: str, journey: str) -> list[dict[str, Any]]:
        """The user's runs of a journey (oldest first): name, executionArn, status, input."""
        profiles = self.profile_ids(user_id)
        return [
            e
            for e in self.engine.executions()
            if e["journey"] == journey and e["input"].get("profileId") in profiles
        ]

    def path(self, user_id: str, journey: str, run: int = -1) -> list[str]:
        """The steps one run (by default the latest) entered, in order, by step id, from the
        execution's history (helper states a step compiles to are left out)."""
        runs = self.executions(user_id, journey)
        if not runs:
            raise HarnessError(f"{user_id} never entered {journey}")
        return self.engine.execution_path(runs[run]["executionArn"])

    def status(self, user_id: str, journey: str, run: int = -1) -> str:
        runs = self.executions(user_id, journey)
        if not runs:
            raise HarnessError(f"{user_id} never entered {journey}")
        return str(runs[run]["status"])

    def stats(self, journey: str) -> dict[str, float]:
        """The journey's counters (entered, exited#<reason>, conversions, revenue, step#…)."""
        from shared.store.journey_stats import JourneyStats

        return JourneyStats(self.engine._env[table_env(JOURNEY_STATS)]).get(journey)

    def conversions(self, journey: str) -> dict[str, float]:
        """Conversions and revenue, of the customers in the journey and of those held out."""
        stats = self.stats(journey)
        names = ("conversions", "revenue", "heldOutConversions", "heldOutRevenue")
        return {name: stats.get(name, 0) for name in names}

    def _raise_failures(self) -> None:
        with self.engine.failures_lock:
            failures = list(self.engine.failures)
        if failures:
            raise HarnessError(
                "a function failed for good: " + "; ".join(f"{f.function}: {f.error}" for f in failures)
            )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- pytest plugin


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "journeys(path): the journeys folder `journey_harness` runs (relative to the rootdir)"
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("journeys_dir", "the journeys folder `journey_harness` runs by default", default="journeys")


class _Session:
    """The engine of the tests of one module, started when a test first needs it."""

    def __init__(self) -> None:
        self.engine: LocalEngine | None = None

    def harness(self, journeys_dir: Path, start: datetime, policy_file: Path | None = None) -> JourneyHarness:
        if self.engine is None:
            self.engine = LocalEngine(
                write_key=WRITE_KEY, start=start, journeys_dir=journeys_dir, policy_file=policy_file
            ).start()
        else:
            self.engine.reset(start)
            policy = policy_file or self.engine.topology.policy_file
            if self.engine.policy_file.resolve() != policy.resolve():
                self.engine.reload_policy(policy)
            if self.engine.journeys_dir.resolve() != journeys_dir.resolve():
                self.engine.reload_journeys(journeys_dir)
        return JourneyHarness(self.engine)

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None


# One engine per test module, not per session: only one engine can run in a process at a time (moto,
# the environment and the clock are the process's), and other tests' fixtures start their own.
@pytest.fixture(scope="module")
def _journey_engine_session() -> Iterator[_Session]:
    session = _Session()
    yield session
    session.stop()


@pytest.fixture
def make_journey_harness(
    _journey_engine_session: _Session, pytestconfig: pytest.Config
) -> Callable[..., JourneyHarness]:
    """`make_journey_harness(journeys_dir=None, start=DEFAULT_START, policy_file=None)`: the session's
    engine, reset, running the journeys of `journeys_dir` (relative paths from the rootdir) under the
    send policy of `policy_file` (default: the repository's policy.yaml)."""

    def make(
        journeys_dir: str | Path | None = None,
        start: datetime = DEFAULT_START,
        policy_file: str | Path | None = None,
    ) -> JourneyHarness:
        folder = Path(journeys_dir or pytestconfig.getini("journeys_dir"))
        if not folder.is_absolute():
            folder = pytestconfig.rootpath / folder
        policy = Path(policy_file) if policy_file is not None else None
        if policy is not None and not policy.is_absolute():
            policy = pytestconfig.rootpath / policy
        return _journey_engine_session.harness(folder, start, policy)

    return make


@pytest.fixture
def journey_harness(
    request: pytest.FixtureRequest, make_journey_harness: Callable[..., JourneyHarness]
) -> JourneyHarness:
    """The harness on the journeys of the test's `@pytest.mark.journeys(path)`, else the default folder."""
    marker = request.node.get_closest_marker("journeys")
    return make_journey_harness(marker.args[0] if marker and marker.args else None)
