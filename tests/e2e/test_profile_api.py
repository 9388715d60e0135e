"""The Profile API over HTTP on the local runtime: lookups, merges and their undoing, erasure."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from tests.e2e.conftest import WRITE_KEY, LocalRuntime, basic

ADMIN = {"Authorization": "Bearer dev-admin-token"}


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _get(local: LocalRuntime, path: str) -> tuple[int, Any]:
    return local.request("GET", path, headers=ADMIN)


def test_a_profile_is_found_by_id_and_by_each_identifier(local: LocalRuntime) -> None:
    tag = _tag()
    identify = {
        "userId": f"u-{tag}",
        "anonymousId": f"a-{tag}",
        "traits": {"email": f" Ada.{tag}@Example.com ", "phone": "(415) 555-2671", "plan": "pro"},
    }
    assert local.send("identify", identify)[0] == 200
    local.advance(1)
    assert (
        local.send("track", {"userId": f"u-{tag}", "event": "Product Added", "properties": {"sku": "42"}})[0]
        == 200
    )
    local.advance(0)

    status, by_user = _get(local, f"/v1/profiles?userId=u-{tag}")
    assert status == 200
    assert {"type": "email", "value": f"ada.{tag}@example.com"} in by_user["identifiers"]
    assert {"type": "phone", "value": "+14155552671"} in by_user["identifiers"]
    assert by_user["traits"]["plan"] == "pro"
    assert [e["type"] for e in by_user["timeline"]] == ["track", "identify"]  # newest first
    assert by_user["timeline"][0]["name"] == "Product Added"

    for query in (f"email=ADA.{tag}%40example.com", f"anonymousId=a-{tag}", "phone=%2B1%20415%20555%202671"):
        assert _get(local, f"/v1/profiles?{query}")[1]["profileId"] == by_user["profileId"], query
    assert _get(local, f"/v1/profiles/{by_user['profileId']}")[1]["profileId"] == by_user["profileId"]


def test_the_profile_api_needs_the_admin_token_and_never_takes_a_write_key(local: LocalRuntime) -> None:
    for headers in ({}, basic(WRITE_KEY), {"Authorization": f"Bearer {WRITE_KEY}"}):
        status, body = local.request("GET", "/v1/profiles?userId=anyone", headers=headers)
        assert status == 401, headers
        assert "admin token" in body["error"]


def test_unknown_profiles_and_malformed_lookups_are_answered_404_and_400(local: LocalRuntime) -> None:
    assert _get(local, "/v1/profiles/no-such-profile")[0] == 404
    assert _get(local, "/v1/profiles?userId=nobody-at-all")[0] == 404
    assert _get(local, "/v1/profiles")[0] == 400
    assert _get(local, "/v1/profiles?email=not-an-email")[0] == 400


def test_a_merge_shows_in_the_survivor_and_can_be_undone(local: LocalRuntime) -> None:
    tag = _tag()
    # Two anonymous visitors, then one event that names both: they are one person.
    assert local.send("track", {"anonymousId": f"a1-{tag}", "event": "Viewed"})[0] == 200
    local.advance(60)
    assert (
        local.send("identify", {"anonymousId": f"a2-{tag}", "traits": {"email": f"b-{tag}@example.com"}})[0]
        == 200
    )
    local.advance(60)
    link = {
        "anonymousId": f"a1-{tag}",
        "event": "Signed In",
        "context": {"traits": {"email": f"b-{tag}@example.com"}},
    }
    assert local.send("track", link)[0] == 200
    local.advance(0)

    survivor = _get(local, f"/v1/profiles?anonymousId=a2-{tag}")[1]
    assert survivor == _get(local, f"/v1/profiles?anonymousId=a1-{tag}")[1]
    [merge] = survivor["merges"]
    assert _get(local, f"/v1/profiles/{merge['mergedProfileId']}")[1]["profileId"] == survivor["profileId"]

    status, split = local.request(
        "POST",
        f"/v1/profiles/{survivor['profileId']}/unmerge",
        {"mergedProfileId": merge["mergedProfileId"]},
        ADMIN,
    )
    assert status == 200
    # The survivor is the older profile (a1's); the merged one comes back with what it brought.
    restored = _get(local, f"/v1/profiles?anonymousId=a2-{tag}")[1]
    assert restored["profileId"] == merge["mergedProfileId"] != survivor["profileId"]
    assert {"type": "email", "value": f"b-{tag}@example.com"} in restored["identifiers"]
    assert _get(local, f"/v1/profiles?anonymousId=a1-{tag}")[1]["profileId"] == survivor["profileId"]
    assert {"type": "anonymous_id", "value": f"a2-{tag}"} not in split["survivor"]["identifiers"]
    assert split["survivor"]["merges"] == []


def test_an_identifier_can_be_removed_from_a_profile(local: LocalRuntime) -> None:
    tag = _tag()
    assert local.send("identify", {"userId": f"u-{tag}", "anonymousId": f"shared-kiosk-{tag}"})[0] == 200
    local.advance(0)
    profile = _get(local, f"/v1/profiles?userId=u-{tag}")[1]

    path = f"/v1/profiles/{profile['profileId']}/identifiers/anonymous_id/{quote(f'shared-kiosk-{tag}')}"
    status, after = local.request("DELETE", path, headers=ADMIN)
    assert status == 200
    assert after["identifiers"] == [{"type": "user_id", "value": f"u-{tag}"}]
    assert _get(local, f"/v1/profiles?anonymousId=shared-kiosk-{tag}")[0] == 404


def test_an_erased_person_is_gone_and_an_old_device_does_not_bring_them_back(local: LocalRuntime) -> None:
    tag = _tag()
    assert (
        local.send("identify", {"userId": f"u-{tag}", "anonymousId": f"a-{tag}", "traits": {"name": "Eve"}})[
            0
        ]
        == 200
    )
    local.advance(0)
    profile = _get(local, f"/v1/profiles?userId=u-{tag}")[1]

    status, erased = local.request("DELETE", f"/v1/profiles/{profile['profileId']}", headers=ADMIN)
    assert (status, erased["erased"]) == (200, profile["profileId"])
    assert _get(local, f"/v1/profiles/{profile['profileId']}")[0] == 404

    # The old device sends again: answered 200, and dropped.
    assert local.send("track", {"anonymousId": f"a-{tag}", "event": "App Opened"})[0] == 200
    local.advance(0)
    assert _get(local, f"/v1/profiles?anonymousId=a-{tag}")[0] == 404
    assert _get(local, f"/v1/profiles?userId=u-{tag}")[0] == 404
