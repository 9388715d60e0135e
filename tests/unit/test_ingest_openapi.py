"""The ingest API's OpenAPI document (shared/ingest/openapi.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from shared.ingest.calls import CALL_TYPES
from shared.ingest.openapi import document
from shared.models.segment import MAX_IDENTIFIER_BYTES, MAX_MESSAGE_ID_BYTES

PATHS = [f"/v1/{t}" for t in ("identify", "track", "page", "screen", "group", "alias", "batch", "import")]


def _refs(node: Any) -> Iterator[str]:
    """Every `$ref` in the document, and the targets of discriminator mappings."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            elif key == "discriminator":
                yield from value.get("mapping", {}).values()
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _target(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_every_call_type_has_a_path() -> None:
    # The same document also describes the admin APIs (tests/unit/test_admin_openapi.py).
    admin = ("/v1/profiles", "/v1/journeys", "/v1/segments")
    ingest = [path for path in document()["paths"] if not path.startswith(admin)]

    assert sorted(ingest) == sorted(PATHS)
    assert {p.removeprefix("/v1/") for p in PATHS} == CALL_TYPES


@pytest.mark.parametrize("path", PATHS)
def test_each_path_takes_json_or_plain_text_bodies_described_by_a_component(path: str) -> None:
    post = document()["paths"][path]["post"]

    content = post["requestBody"]["content"]
    assert set(content) == {"application/json", "text/plain"}
    assert content["application/json"]["schema"] == content["text/plain"]["schema"]
    assert content["application/json"]["schema"]["$ref"].startswith("#/components/schemas/")
    assert set(post["responses"]) == {"200", "400", "401", "413", "503"}
    assert post["security"] == [{"writeKey": []}]


def test_the_write_key_is_described_as_http_basic() -> None:
    scheme = document()["components"]["securitySchemes"]["writeKey"]

    assert (scheme["type"], scheme["scheme"]) == ("http", "basic")


def test_every_reference_resolves_inside_the_document() -> None:
    doc = document()

    refs = set(_refs(doc))
    missing = []
    for ref in refs:
        try:
            _target(doc, ref)
        except KeyError:
            missing.append(ref)

    assert len(refs) > 5
    assert missing == []


@pytest.mark.parametrize(
    ("model", "field", "limit"),
    [
        ("TrackCall", "userId", MAX_IDENTIFIER_BYTES),
        ("TrackCall", "anonymousId", MAX_IDENTIFIER_BYTES),
        ("AliasCall", "previousId", MAX_IDENTIFIER_BYTES),
        ("GroupCall", "groupId", MAX_IDENTIFIER_BYTES),
        ("IdentifyCall", "messageId", MAX_MESSAGE_ID_BYTES),
    ],
)
def test_the_document_bounds_each_id_by_its_byte_limit_and_says_it_counts_bytes(
    model: str, field: str, limit: int
) -> None:
    # maxLength counts characters: the byte limit is a true bound on them (a character is at least a
    # byte), so what the document refuses the API refuses too
    [text] = [
        branch
        for branch in document()["components"]["schemas"][model]["properties"][field]["anyOf"]
        if branch.get("type") == "string"
    ]

    assert text["maxLength"] == limit
    assert f"at most {limit} bytes in UTF-8" in text["description"]


def test_the_document_says_track_event_names_starting_with_segment_are_refused() -> None:
    event = document()["components"]["schemas"]["TrackCall"]["properties"]["event"]
    refused = re.compile(event["not"]["pattern"])

    assert refused.search("$segment.entered") and not refused.search("segment.entered")
    assert "$segment." in event["description"]
    assert "$segment." in document()["paths"]["/v1/track"]["post"]["responses"]["400"]["description"]
