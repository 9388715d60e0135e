"""Consent and SES feedback end to end, over HTTP, on the local runtime: consent given by an identify
and by the admin route shows in the Profile API; an email to SES's simulated bouncing mailbox comes
back as a hard bounce through the feedback route and suppresses the address; a complaint unsubscribes
the person from marketing email; a push token is disabled through /_local/push/disable.

Journeys: the shipped ones (welcome sends an email at once on `Signed Up`) and tests/e2e/
feedback_journeys/receipt (a transactional email on `Receipt Requested`)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, LocalRuntime, running

ADMIN = {"Authorization": "Bearer dev-admin-token"}
FEEDBACK_JOURNEYS = Path(__file__).parent / "feedback_journeys"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    journeys = tmp_path_factory.mktemp("journeys")
    for folder in [*(ROOT / "journeys").iterdir(), *FEEDBACK_JOURNEYS.iterdir()]:
        # Journeys, and the shared layouts and partials (_layouts, _partials) their emails use.
        if (folder / "journey.yaml").is_file() or folder.name in ("_layouts", "_partials"):
            shutil.copytree(folder, journeys / folder.name)
    yield from running(env={"CONTINUUM_JOURNEYS_DIR": str(journeys)})


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _profile(local: LocalRuntime, user: str) -> dict[str, Any]:
    status, body = local.request("GET", f"/v1/profiles?userId={user}", headers=ADMIN)
    assert status == 200, body
    return dict(body)


def _sign_up(local: LocalRuntime, user: str, email: str) -> None:
    assert local.send("identify", {"userId": user, "traits": {"email": email}})[0] == 200
    assert local.send("track", {"userId": user, "event": "Signed Up"})[0] == 200
    local.advance(0)


def test_an_identifys_consent_and_the_admin_route_show_in_the_profile(local: LocalRuntime) -> None:
    user = f"u-{_tag()}"
    call = {"userId": user, "traits": {"plan": "pro"}, "context": {"consent": {"marketing": {"push": False}}}}
    assert local.send("identify", call)[0] == 200
    local.advance(0)
    profile = _profile(local, user)
    assert profile["consent"]["marketing"]["push"]["subscribed"] is False
    assert profile["consent"]["marketing"]["push"]["source"] == "identify"

    status, body = local.request(
        "PUT", f"/v1/profiles/{profile['profileId']}/consent", {"product_updates": True}, ADMIN
    )

    assert status == 200
    assert body["consent"]["product_updates"]["email"]["subscribed"] is True
    assert _profile(local, user)["consent"] == body["consent"]
    bad = local.request(
        "PUT", f"/v1/profiles/{profile['profileId']}/consent", {"transactional": False}, ADMIN
    )
    assert bad[0] == 400


def test_an_email_to_the_simulators_bounce_mailbox_suppresses_the_address(local: LocalRuntime) -> None:
    user, address = f"u-{_tag()}", f"bounce+{_tag()}@simulator.amazonses.com"

    _sign_up(local, user, address)

    assert [m["template"] for m in local.messages(to=address)] == ["welcome"]
    [suppression] = _profile(local, user)["suppressions"]
    assert (suppression["address"], suppression["reason"]) == (address, "hard_bounce")


def test_after_a_hard_bounce_not_even_a_transactional_email_is_sent(local: LocalRuntime) -> None:
    user, address = f"u-{_tag()}", f"bounce+{_tag()}@simulator.amazonses.com"
    _sign_up(local, user, address)
    assert _profile(local, user)["suppressions"]

    assert local.send("track", {"userId": user, "event": "Receipt Requested"})[0] == 200
    local.advance(0)

    assert [m["template"] for m in local.messages(to=address)] == ["welcome"]
    profile_id = _profile(local, user)["profileId"]
    [dropped] = local.message_log(profileId=profile_id, template="receipt")
    assert (dropped["status"], dropped["reason"]) == ("dropped", "suppressed_bounce")


def test_an_email_to_the_simulators_complaint_mailbox_unsubscribes_from_marketing_email(
    local: LocalRuntime,
) -> None:
    user, address = f"u-{_tag()}", f"complaint+{_tag()}@simulator.amazonses.com"

    _sign_up(local, user, address)

    profile = _profile(local, user)
    assert profile["consent"]["marketing"]["email"]["subscribed"] is False
    assert profile["consent"]["marketing"]["email"]["source"] == "complaint"
    assert profile["consent"]["marketing"]["push"]["subscribed"] is True
    assert profile["suppressions"] == []  # transactional mail still reaches them


def test_a_push_token_can_be_disabled_locally(local: LocalRuntime) -> None:
    assert local.request("POST", "/_local/push/disable", {"token": f"t-{_tag()}"})[0] == 200
    assert local.request("POST", "/_local/push/disable", {"token": ""})[0] == 400
