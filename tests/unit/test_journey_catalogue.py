"""The journey catalogue file (shared/journeys/catalogue.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from shared.journeys.catalogue import Catalogue, load_catalogue, write_catalogue
from shared.journeys.loader import load_journeys

JOURNEYS = Path(__file__).resolve().parents[2] / "journeys"
PREFIX = "arn:aws:states:eu-west-1:123456789012:stateMachine:"


def _names() -> dict[str, str]:
    return {j.definition.id: f"continuum-{j.definition.id}" for j in load_journeys(JOURNEYS)}


def test_a_written_catalogue_loads_back_the_same_definitions(tmp_path: Path) -> None:
    journeys = load_journeys(JOURNEYS)

    path = write_catalogue(journeys, _names(), tmp_path / "journeys.json")
    catalogue = load_catalogue(path)

    assert [entry.definition for entry in catalogue.journeys] == [j.definition for j in journeys]
    assert [entry.state_machine for entry in catalogue.journeys] == [
        f"continuum-{j.definition.id}" for j in journeys
    ]
    assert os.listdir(tmp_path) == ["journeys.json"]  # no temporary file left behind


def test_the_file_has_the_documented_shape(tmp_path: Path) -> None:
    path = write_catalogue(load_journeys(JOURNEYS), _names(), tmp_path / "journeys.json")

    raw = json.loads(path.read_text(encoding="utf-8"))

    entry = next(e for e in raw["journeys"] if e["definition"]["id"] == "cart_abandonment")
    assert entry["stateMachine"] == "continuum-cart_abandonment"
    assert entry["definition"]["trigger"] == {"event": "Product Added", "where": {}}
    checkout = entry["definition"]["steps"][2]
    assert checkout["id"] == "checkout"
    assert checkout["wait_for"]["where"] == {"cart_id": {"same_as_trigger": True}}


def test_start_arn_names_the_alias_when_there_is_one(tmp_path: Path) -> None:
    catalogue = load_catalogue(write_catalogue(load_journeys(JOURNEYS), _names(), tmp_path / "c.json"))

    entry = catalogue.get("welcome")
    assert entry is not None
    assert entry.start_arn(PREFIX, "live") == f"{PREFIX}continuum-welcome:live"
    assert entry.start_arn(PREFIX, "") == f"{PREFIX}continuum-welcome"
    assert catalogue.get("nope") is None


def test_a_rewritten_catalogue_is_read_again(tmp_path: Path) -> None:
    journeys = load_journeys(JOURNEYS)
    path = tmp_path / "c.json"
    write_catalogue(journeys[:1], _names(), path)
    first = load_catalogue(path)

    write_catalogue(journeys, _names(), path)
    second = load_catalogue(path)

    assert len(first.journeys) == 1
    assert len(second.journeys) == len(journeys)
    assert load_catalogue(path) is second  # unchanged: cached


def test_a_catalogue_validates_from_its_own_dump() -> None:
    catalogue = Catalogue.model_validate(
        {
            "journeys": [
                {
                    "stateMachine": "m",
                    "definition": load_journeys(JOURNEYS)[0].definition.model_dump(mode="json"),
                }
            ]
        }
    )

    assert Catalogue.model_validate_json(json.dumps(catalogue.model_dump(mode="json"))) == catalogue
