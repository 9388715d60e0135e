"""wait_for resumed from the profile's active runs and their waits, attacked: a customer parked in
more runs than one BatchGetItem reads (100 keys), and the awaited event arriving twice at once."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from infra.local.harness import JourneyHarness
from infra.local.http import api_gateway_event
from tests.policies import PERMISSIVE_POLICY_FILE

MakeHarness = Callable[..., JourneyHarness]

WAIT_FOR = """steps:
  - id: opened
    wait_for:
      event: App Opened
      timeout: 2d
      on_event: [{send: {channel: email, template: hit}}]
      on_timeout: [{send: {channel: email, template: miss}}]
"""


def _journeys(root: Path, count: int) -> Path:
    for i in range(count):
        folder = root / f"journey_{i:03d}"
        (folder / "templates").mkdir(parents=True)
        for template in ("hit", "miss"):
            (folder / "templates" / f"{template}.yaml").write_text(
                f"email:\n  subject: {template}\n  text: {template} {i}\n", encoding="utf-8"
            )
        (folder / "journey.yaml").write_text(
            f"id: journey_{i:03d}\nname: Journey {i}\ntrigger: Signed Up\n{WAIT_FOR}", encoding="utf-8"
        )
    return root


def test_an_event_awaited_by_more_runs_than_one_batch_read_holds_resumes_every_one(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # 101 runs of one customer parked on `App Opened`: their waits take two BatchGetItem requests.
    count = 101
    h = make_journey_harness(_journeys(tmp_path, count), policy_file=PERMISSIVE_POLICY_FILE)
    h.identify("m", email="m@example.com")
    h.track("m", "Signed Up")
    h.advance("1h")

    h.track("m", "App Opened")
    h.advance("3d")

    sent = h.messages("m")
    assert sorted(m["journey"] for m in sent) == [f"journey_{i:03d}" for i in range(count)]
    assert {m["template"] for m in sent} == {"hit"}


def _track(h: JourneyHarness, user_id: str, event: str) -> None:
    body = {"messageId": str(uuid.uuid4()), "userId": user_id, "event": event, "timestamp": h.now.isoformat()}
    import base64

    credentials = base64.b64encode(f"{h.engine.write_key}:".encode()).decode()
    headers = {"authorization": f"Basic {credentials}", "content-type": "application/json"}
    response = h.engine.invoke(
        "ingest", api_gateway_event("POST", "/v1/track", headers, json.dumps(body).encode())
    )
    assert response["statusCode"] == 200, response


def test_the_awaited_event_sent_twice_at_once_resumes_the_run_once(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    h = make_journey_harness(_journeys(tmp_path, 1), policy_file=PERMISSIVE_POLICY_FILE)
    h.identify("d", email="d@example.com")
    h.track("d", "Signed Up")
    h.advance("1h")

    both = [threading.Thread(target=_track, args=(h, "d", "App Opened")) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    h.settle()
    h.advance("3d")

    assert [m["template"] for m in h.messages("d")] == ["hit"]
    assert h.status("d", "journey_000") == "SUCCEEDED"
    assert h.path("d", "journey_000")[-1] == "opened.on_event.send-email-hit"


def test_the_awaited_event_racing_the_runs_entry_into_its_wait_resumes_it_at_most_once(
    make_journey_harness: MakeHarness, tmp_path: Path
) -> None:
    # The trigger and the awaited event at once: wait_for's own look at the profile and the router
    # may both see the event; the run takes one path, once.
    h = make_journey_harness(_journeys(tmp_path, 1), policy_file=PERMISSIVE_POLICY_FILE)
    h.identify("w", email="w@example.com")

    both = [threading.Thread(target=_track, args=(h, "w", event)) for event in ("Signed Up", "App Opened")]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    h.settle()
    h.advance("3d")

    assert len(h.messages("w")) == 1
    assert h.status("w", "journey_000") == "SUCCEEDED"
    assert h.engine.failures == []
