"""Consent set by events (`context.consent` of identify and track) and by the admin route
`PUT /v1/profiles/{id}/consent`, read back through `GET /v1/profiles/{id}` — on the local runtime's
moto backend, through the real handlers."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from infra.local.engine import PREFIX, LocalEngine
from infra.local.http import api_gateway_event
from shared.models.events import DETAIL_RESOLVED
from shared.models.profile import Profile
from shared.store.consent import ConsentStore
from shared.store.profiles import DynamoProfileStore
from tests.integration.conftest import http_event

ADMIN = {"Authorization": "Bearer dev-admin-token"}
TABLE = f"{PREFIX}-profiles"


def _api(
    engine: LocalEngine, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    response: dict[str, Any] = engine.invoke("profiles", api_gateway_event(method, path, ADMIN, payload))
    return response["statusCode"], json.loads(response["body"])


def _identify(engine: LocalEngine, user_id: str, **call: Any) -> None:
    assert (
        engine.invoke("ingest", http_event("/v1/identify", {"userId": user_id, **call}))["statusCode"] == 200
    )
    engine.wait_idle()


def _profile(engine: LocalEngine, user_id: str) -> Profile:
    status, body = _api(engine, "GET", f"/v1/profiles?userId={user_id}")
    assert status == 200, body
    profile = DynamoProfileStore(TABLE).profile(body["profileId"])
    assert profile is not None
    return profile


def test_an_identifys_context_consent_is_recorded_at_the_time_ingest_received_it(engine: LocalEngine) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"

    _identify(engine, user, context={"consent": {"marketing": {"email": False}, "product_updates": True}})

    consent = ConsentStore(TABLE).consent(_profile(engine, user))
    assert {k: r.subscribed for k, r in consent.items()} == {
        "marketing/email": False,
        "product_updates/email": True,
        "product_updates/push": True,
    }
    [resolved] = [
        e
        for e in engine.bus_events
        if e["detail-type"] == DETAIL_RESOLVED and e["detail"]["data"]["event"].get("userId") == user
    ]
    assert consent["marketing/email"].at == resolved["detail"]["data"]["event"]["receivedAt"]
    assert consent["marketing/email"].source == "identify"


def test_a_tracks_segment_category_preferences_are_recorded(engine: LocalEngine) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"
    _identify(engine, user)

    track = {
        "userId": user,
        "event": "Consent Updated",
        "context": {"consent": {"categoryPreferences": {"marketing": False, "Ads": True}}},
    }
    assert engine.invoke("ingest", http_event("/v1/track", track))["statusCode"] == 200
    engine.wait_idle()

    consent = ConsentStore(TABLE).consent(_profile(engine, user))
    assert {k: r.subscribed for k, r in consent.items()} == {
        "marketing/email": False,
        "marketing/push": False,
    }


def test_unknown_topics_never_fail_the_event(engine: LocalEngine) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"

    _identify(
        engine,
        user,
        traits={"plan": "pro"},
        context={"consent": {"newsletter": False, "marketing": {"fax": False}, "transactional": False}},
    )

    profile = _profile(engine, user)
    assert profile.traits["plan"] == "pro"
    assert ConsentStore(TABLE).consent(profile) == {}
    assert not [f for f in engine.failures if user in json.dumps(f.event)]


def test_the_admin_route_sets_consent_and_the_profile_shows_it(engine: LocalEngine) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"
    _identify(engine, user)
    profile_id = _profile(engine, user).profileId

    status, body = _api(engine, "PUT", f"/v1/profiles/{profile_id}/consent", {"marketing": {"push": False}})

    assert status == 200
    assert body["consent"]["marketing"]["push"]["subscribed"] is False
    assert body["consent"]["marketing"]["push"]["source"] == "admin"
    assert body["consent"]["marketing"]["email"]["subscribed"] is True  # opt_out default, untouched
    shown = _api(engine, "GET", f"/v1/profiles/{profile_id}")[1]
    assert shown["consent"] == body["consent"]
    assert shown["consent"]["transactional"]["email"]["changeable"] is False


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"newsletter": false}',
        b'{"transactional": false}',
        b'{"marketing": "no"}',
        b'{"marketing": {"sms": false}}',
        b'{"marketing": {"email": null}}',
    ],
)
def test_the_admin_route_answers_400_to_a_bad_body_and_changes_nothing(
    engine: LocalEngine, raw: bytes
) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"
    _identify(engine, user)
    profile = _profile(engine, user)

    status, body = _api(engine, "PUT", f"/v1/profiles/{profile.profileId}/consent", raw=raw)

    assert status == 400, body
    assert body["error"]
    assert ConsentStore(TABLE).consent(profile) == {}


def test_the_admin_route_answers_404_for_an_unknown_or_erased_profile(engine: LocalEngine) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"
    _identify(engine, user)
    profile_id = _profile(engine, user).profileId
    assert _api(engine, "DELETE", f"/v1/profiles/{profile_id}")[0] == 200

    assert _api(engine, "PUT", f"/v1/profiles/{profile_id}/consent", {"marketing": False})[0] == 404
    assert _api(engine, "PUT", "/v1/profiles/no-such-profile/consent", {"marketing": False})[0] == 404


def test_consent_given_on_a_merged_profile_is_read_through_the_survivor(engine: LocalEngine) -> None:
    tag = uuid.uuid4().hex[:10]
    anonymous = {"anonymousId": f"a-{tag}", "event": "Viewed", "context": {"consent": {"marketing": False}}}
    assert engine.invoke("ingest", http_event("/v1/track", anonymous))["statusCode"] == 200
    engine.wait_idle()
    engine.advance(60)
    _identify(engine, f"u-{tag}")
    engine.advance(60)
    # One event names both: the two profiles merge.
    link = {"userId": f"u-{tag}", "anonymousId": f"a-{tag}", "event": "Signed In"}
    assert engine.invoke("ingest", http_event("/v1/track", link))["statusCode"] == 200
    engine.wait_idle()

    survivor = _profile(engine, f"u-{tag}")
    assert survivor.mergedFrom  # the check below reads through a merge
    shown = _api(engine, "GET", f"/v1/profiles/{survivor.profileId}")[1]
    assert shown["consent"]["marketing"]["email"]["subscribed"] is False
    assert shown["consent"]["marketing"]["push"]["subscribed"] is False
