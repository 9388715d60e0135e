"""The link plumbing of the local runtime: the engine's signing key and address reach the functions,
and the preferences function works against moto as API Gateway calls it."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from infra.local.engine import PLACEHOLDER_BASE_URL, LocalEngine
from infra.local.http import api_gateway_event
from shared import clock, config
from shared.delivery.links import LinkClaims
from shared.delivery.policy import load_policy
from shared.models.profile import Profile
from shared.store.consent import ConsentStore
from shared.store.link_key import link_maker, link_signer
from shared.store.profiles import profile_item


@pytest.fixture
def served(engine: LocalEngine) -> Iterator[LocalEngine]:
    yield engine
    engine.serve_at(PLACEHOLDER_BASE_URL)


def test_without_a_server_the_links_point_at_a_placeholder(engine: LocalEngine) -> None:
    assert config.load(config.LinkSettings).public_base_url == PLACEHOLDER_BASE_URL


def test_the_servers_address_reaches_the_functions_settings(served: LocalEngine) -> None:
    served.serve_at("http://127.0.0.1:8123/")
    assert config.load(config.LinkSettings).public_base_url == "http://127.0.0.1:8123"
    assert os.environ["PUBLIC_BASE_URL"] == "http://127.0.0.1:8123"


def test_the_functions_verify_what_the_engines_key_signs(engine: LocalEngine) -> None:
    token = engine.link_signer().sign(
        LinkClaims.model_validate({"p": "preferences", "pid": "p", "exp": 4102444800})
    )
    assert link_signer(config.load(config.LinkSettings)).verify(token, "preferences").profile_id == "p"


def test_the_gates_link_maker_signs_with_the_key_and_points_at_the_server(served: LocalEngine) -> None:
    # Given the server listening (as `python -m infra.local` tells the engine)
    served.serve_at("http://127.0.0.1:8124")
    policy = load_policy(os.environ["POLICY_FILE"])
    links = link_maker(config.load(config.LinkSettings), policy)("prof-9", "marketing", "email", clock.now())
    assert links.unsubscribe_url is not None
    assert links.headers["List-Unsubscribe"] == f"<{links.unsubscribe_url}>"
    assert links.unsubscribe_url.startswith("http://127.0.0.1:8124/unsubscribe/")
    token = links.unsubscribe_url.rsplit("/", 1)[1]
    assert served.link_signer().verify(token, "unsubscribe").profile_id == "prof-9"


def test_a_key_that_is_not_hex_or_too_short_is_refused_at_construction() -> None:
    with pytest.raises(ValueError):
        LocalEngine(write_key="k", link_signing_key="zz" * 32)
    with pytest.raises(ValueError):
        LocalEngine(write_key="k", link_signing_key="ab" * 8)


def _profile(profile_id: str) -> None:
    from shared.store.aws import client

    profile = Profile(
        profileId=profile_id, createdAt=clock.iso(clock.now()), updatedAt=clock.iso(clock.now())
    )
    client("dynamodb").put_item(TableName="continuum-profiles", Item=profile_item(profile))


def _call(engine: LocalEngine, method: str, path: str, body: bytes, base64_body: bool) -> dict[str, Any]:
    event = api_gateway_event(method, path, {"content-type": "application/x-www-form-urlencoded"}, b"")
    event["body"] = base64.b64encode(body).decode() if base64_body else body.decode()
    event["isBase64Encoded"] = base64_body
    event["routeKey"] = f"{method} /{path.split('/')[1]}/{{token}}"
    event["pathParameters"] = {"token": path.rsplit("/", 1)[1]}
    answer: dict[str, Any] = engine.invoke("preferences", event)
    return answer


@pytest.mark.parametrize("base64_body", [False, True], ids=["text", "base64"])
def test_a_saved_form_is_stored_as_consent_beside_the_profile(engine: LocalEngine, base64_body: bool) -> None:
    profile_id = f"links-{int(base64_body)}"
    _profile(profile_id)
    expires = int((clock.now() + timedelta(days=1)).timestamp())
    token = engine.link_signer().sign(
        LinkClaims.model_validate({"p": "preferences", "pid": profile_id, "exp": expires})
    )
    answer = _call(engine, "POST", f"/preferences/{token}", b"save=1&product_updates%2Femail=on", base64_body)
    assert answer["statusCode"] == 200 and "Saved" in answer["body"]
    assert answer["headers"]["Content-Type"] == "text/html; charset=utf-8"
    profile = Profile(profileId=profile_id, createdAt="x", updatedAt="x")
    stored = ConsentStore("continuum-profiles").consent(profile)
    assert stored["product_updates/email"].subscribed is True
    assert stored["marketing/email"].subscribed is False
    assert {r.source for r in stored.values()} == {"preferences"}


def test_the_route_not_the_path_says_which_link_it_is(engine: LocalEngine) -> None:
    # Given a preferences token posted on the unsubscribe route (a path that a base path would prefix)
    _profile("links-route")
    expires = int((clock.now() + timedelta(days=1)).timestamp())
    token = engine.link_signer().sign(
        LinkClaims.model_validate({"p": "preferences", "pid": "links-route", "exp": expires})
    )
    event = api_gateway_event("POST", f"/mail/unsubscribe/{token}", {}, b"")  # a custom domain's base path
    event |= {"routeKey": "POST /unsubscribe/{token}", "pathParameters": {"token": token}}
    answer = engine.invoke("preferences", event)
    # Then it is refused as an unsubscribe link (the other purpose's token), not read as a preferences form
    assert answer["statusCode"] == 403
