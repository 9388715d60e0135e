"""The Segments API (admin credential) on the local runtime: definitions, computed traits and sizes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.engine import LocalEngine
from infra.local.http import api_gateway_event
from shared.store.segment_members import SegmentMembers

ADMIN = {"Authorization": "Bearer dev-admin-token"}


@pytest.fixture
def local(engine: LocalEngine) -> Iterator[LocalEngine]:
    engine.reset()
    yield engine
    engine.reset()


def get(
    engine: LocalEngine, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    answer = engine.invoke(
        "segments-api", api_gateway_event("GET", path, ADMIN if headers is None else headers, b"")
    )
    return answer["statusCode"], json.loads(answer["body"]), answer["headers"]


def test_every_segment_is_listed_with_its_definition_and_size(local: LocalEngine) -> None:
    members = SegmentMembers("continuum-segment-members")
    for profile in ("p1", "p2", "p3"):
        members.enter("cart_abandoners", profile, "2026-11-28T10:00:00.000Z")
    members.enter("vip", "p1", "2026-11-28T10:00:00.000Z")
    members.leave("cart_abandoners", "p3")

    status, body, _ = get(local, "/v1/segments")

    assert status == 200
    shown = {s["id"]: s for s in body["segments"]}
    assert {s: shown[s]["size"] for s in shown} == {"cart_abandoners": 2, "vip": 1}
    assert shown["cart_abandoners"]["name"] == "Cart abandoners"
    assert shown["cart_abandoners"]["audiences"] == [
        {"platform": "meta", "audience": "cart-abandoners"},
        {"platform": "google", "audience": "cart-abandoners"},
    ]
    assert shown["vip"]["when"] == {"computed": {"lifetime_revenue": {"gte": 500}}}
    assert [t["id"] for t in body["computedTraits"]] == ["orders_count", "lifetime_revenue"]


def test_one_segment_by_id(local: LocalEngine) -> None:
    SegmentMembers("continuum-segment-members").enter("vip", "p9", "2026-11-28T10:00:00.000Z")

    status, body, _ = get(local, "/v1/segments/vip")

    assert status == 200
    assert (body["id"], body["name"], body["size"]) == ("vip", "VIP", 1)


def test_an_unknown_segment_is_404(local: LocalEngine) -> None:
    assert get(local, "/v1/segments/no_such_segment")[:2] == (404, {"error": "no such segment"})


def test_without_the_admin_token_it_is_401_naming_the_realm(local: LocalEngine) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic d3JpdGUta2V5Og=="}):
        status, _, answer_headers = get(local, "/v1/segments", headers)
        assert status == 401
        assert answer_headers["WWW-Authenticate"] == 'Bearer realm="Continuum segments"'
