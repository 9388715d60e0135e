"""A probe journey written into a temporary folder for harness tests: templates `a` and `b` (email),
and the journey.yaml body a test gives."""

from __future__ import annotations

from pathlib import Path

from infra.local.harness import JourneyHarness


def probe_journey(root: Path, body: str, journey_id: str = "probe") -> Path:
    """Write journeys/<journey_id> under `root` (id and name, then `body`); returns `root`."""
    folder = root / journey_id
    (folder / "templates").mkdir(parents=True, exist_ok=True)
    for template in ("a", "b"):
        (folder / "templates" / f"{template}.yaml").write_text(
            f"email:\n  subject: {template}\n  text: the {template} message\n", encoding="utf-8"
        )
    (folder / "journey.yaml").write_text(f"id: {journey_id}\nname: Probe\n{body}", encoding="utf-8")
    return root


def templates_sent(h: JourneyHarness, user_id: str) -> list[str]:
    """The templates of the messages handed to a provider for the user, in order."""
    return [m["template"] for m in h.messages(user_id)]
