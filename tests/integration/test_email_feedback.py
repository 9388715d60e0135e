"""SES bounces and complaints (functions/feedback) and the local mailbox simulator, on moto."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from infra.local.engine import PREFIX, LocalEngine
from shared.models.policy import ConsentRecord, Suppression
from shared.models.profile import Identifier
from shared.store.consent import ConsentStore
from shared.store.profiles import DynamoProfileStore
from shared.store.suppressions import SuppressionStore
from tests.integration.conftest import http_event, queued_message
from tests.integration.test_channels import _record
from tests.payloads import load

TABLE = f"{PREFIX}-profiles"


def _bounce(address: str, bounce_type: str = "Permanent") -> dict[str, Any]:
    event = load("ses-bounce")
    event["detail"]["bounce"]["bounceType"] = bounce_type
    event["detail"]["bounce"]["bouncedRecipients"][0]["emailAddress"] = address
    event["detail"]["mail"]["destination"] = [address]
    return event


def _complaint(address: str) -> dict[str, Any]:
    event = load("ses-complaint")
    event["detail"]["complaint"]["complainedRecipients"][0]["emailAddress"] = address
    event["detail"]["mail"]["destination"] = [address]
    return event


def _address() -> str:
    return f"fb-{uuid.uuid4().hex[:10]}@example.com"


def _person(engine: LocalEngine, address: str) -> str:
    user = f"u-{uuid.uuid4().hex[:10]}"
    call = {"userId": user, "traits": {"email": address}}
    assert engine.invoke("ingest", http_event("/v1/identify", call))["statusCode"] == 200
    engine.wait_idle()
    owner = DynamoProfileStore(TABLE).owner_of(Identifier(type="user_id", value=user))
    assert owner is not None
    return owner.profileId


def test_a_permanent_bounce_suppresses_the_address_in_any_letter_case(engine: LocalEngine) -> None:
    address = _address()

    engine.invoke("feedback", _bounce(address.upper()))

    found = SuppressionStore(TABLE).suppressions("email", [address])
    assert found == {address: Suppression(reason="hard_bounce", at="2026-11-24T10:15:30.669Z", source="ses")}


def test_a_transient_bounce_suppresses_nothing(engine: LocalEngine) -> None:
    address = _address()

    engine.invoke("feedback", _bounce(address, "Transient"))

    assert SuppressionStore(TABLE).suppressions("email", [address]) == {}


def test_a_duplicate_bounce_event_keeps_one_suppression(engine: LocalEngine) -> None:
    address = _address()
    event = _bounce(address)
    engine.invoke("feedback", event)
    later = copy.deepcopy(event)
    later["detail"]["bounce"]["timestamp"] = "2026-11-25T00:00:00.000Z"

    engine.invoke("feedback", event)
    engine.invoke("feedback", later)

    assert SuppressionStore(TABLE).suppressions("email", [address])[address].at == "2026-11-24T10:15:30.669Z"


def test_a_complaint_unsubscribes_the_owner_from_marketing_email_only(engine: LocalEngine) -> None:
    address = _address()
    profile_id = _person(engine, address)

    engine.invoke("feedback", _complaint(f" {address.upper()} "))

    profile = DynamoProfileStore(TABLE).profile(profile_id)
    assert profile is not None
    consent = ConsentStore(TABLE).consent(profile)
    assert {k: (r.subscribed, r.source) for k, r in consent.items()} == {
        "marketing/email": (False, "complaint")
    }
    # A complaint is not a bounce: transactional mail still reaches the address.
    assert SuppressionStore(TABLE).suppressions("email", [address]) == {}


def test_a_complaint_never_overrides_a_later_resubscription(engine: LocalEngine) -> None:
    address = _address()
    profile_id = _person(engine, address)
    store = ConsentStore(TABLE)
    store.record(
        profile_id,
        {"marketing/email": ConsentRecord(subscribed=True, source="admin", at="2026-11-30T00:00:00.000Z")},
    )

    engine.invoke("feedback", _complaint(address))  # a late duplicate of a complaint of the 24th

    profile = DynamoProfileStore(TABLE).profile(profile_id)
    assert profile is not None
    assert store.consent(profile)["marketing/email"].subscribed is True


def test_a_complaint_about_an_unknown_address_or_an_unreadable_event_changes_nothing(
    engine: LocalEngine,
) -> None:
    engine.invoke("feedback", _complaint(_address()))
    broken = load("ses-bounce")
    broken["detail"] = {"eventType": "Bounce", "bounce": {"bouncedRecipients": "nobody"}}
    engine.invoke("feedback", broken)  # answered, not raised: a retry would fail again

    assert not [f for f in engine.failures if "feedback" in json.dumps(f.event)]


def test_the_simulators_bounce_address_with_a_label_is_suppressed_through_the_feedback_route(
    engine: LocalEngine,
) -> None:
    address = f"bounce+{uuid.uuid4().hex[:8]}@simulator.amazonses.com"
    message = queued_message(address)

    engine.invoke("channel-email", {"Records": [_record(message.model_dump_json())]})
    engine.wait_idle()

    assert address in SuppressionStore(TABLE).suppressions("email", [address])
    # The event took the route (the default bus's, locally on the engine's bus), not a shortcut.
    assert not [e for e in engine.bus_events if e.get("source") == "aws.ses"]  # not in the archive view


def test_the_simulators_complaint_address_unsubscribes_its_owner(engine: LocalEngine) -> None:
    address = f"complaint+{uuid.uuid4().hex[:8]}@simulator.amazonses.com"
    profile_id = _person(engine, address)

    engine.invoke("channel-email", {"Records": [_record(queued_message(address).model_dump_json())]})
    engine.wait_idle()

    profile = DynamoProfileStore(TABLE).profile(profile_id)
    assert profile is not None
    assert ConsentStore(TABLE).consent(profile)["marketing/email"].source == "complaint"
    assert SuppressionStore(TABLE).suppressions("email", [address]) == {}


def test_an_ordinary_address_and_the_success_mailbox_just_send(engine: LocalEngine) -> None:
    addresses = [_address(), f"success+{uuid.uuid4().hex[:8]}@simulator.amazonses.com"]

    for address in addresses:
        engine.invoke("channel-email", {"Records": [_record(queued_message(address).model_dump_json())]})
    engine.wait_idle()

    assert SuppressionStore(TABLE).suppressions("email", addresses) == {}


def test_the_profile_api_shows_a_bounced_address_of_the_profile(engine: LocalEngine) -> None:
    address = _address()
    profile_id = _person(engine, address)

    engine.invoke("feedback", _bounce(address.upper()))

    from infra.local.http import api_gateway_event

    event = api_gateway_event(
        "GET", f"/v1/profiles/{profile_id}", {"Authorization": "Bearer dev-admin-token"}, b""
    )
    shown = json.loads(engine.invoke("profiles", event)["body"])
    assert shown["suppressions"] == [
        {
            "channel": "email",
            "address": address,
            "reason": "hard_bounce",
            "at": "2026-11-24T10:15:30.669Z",
            "source": "ses",
        }
    ]
