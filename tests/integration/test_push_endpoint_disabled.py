"""A push endpoint SNS reports disabled: the message is dropped (`endpoint_disabled`), never retried,
and the token leaves its profile as the Profile API's identifier removal does."""

from __future__ import annotations

import uuid

from infra.local.engine import PREFIX, LocalEngine
from shared.models.events import DETAIL_IDENTIFIER_REMOVED
from shared.models.profile import Identifier
from shared.store.messages import MessageLog
from shared.store.profiles import DynamoProfileStore
from tests.integration.conftest import http_event, queued_message
from tests.integration.test_channels import _record

TABLE = f"{PREFIX}-profiles"


def _device(engine: LocalEngine) -> tuple[str, str]:
    user, token = f"u-{uuid.uuid4().hex[:10]}", f"token-{uuid.uuid4().hex}"
    call = {"userId": user, "traits": {"plan": "pro"}, "context": {"device": {"token": token}}}
    assert engine.invoke("ingest", http_event("/v1/identify", call))["statusCode"] == 200
    engine.wait_idle()
    owner = DynamoProfileStore(TABLE).owner_of(Identifier(type="device_token", value=token))
    assert owner is not None
    return owner.profileId, token


def test_a_push_to_a_disabled_endpoint_is_dropped_and_the_token_removed(engine: LocalEngine) -> None:
    profile_id, token = _device(engine)
    first = queued_message(token, channel="push")
    engine.invoke("channel-push", {"Records": [_record(first.model_dump_json())]})  # the endpoint exists
    engine.disable_push_token(token)
    message = queued_message(token, channel="push")

    response = engine.invoke("channel-push", {"Records": [_record(message.model_dump_json())]})
    engine.wait_idle()

    assert response == {"batchItemFailures": []}  # acknowledged: never retried
    entry = MessageLog(f"{PREFIX}-messages").get(message.messageKey)
    assert entry is not None
    assert (entry.status, entry.reason) == ("dropped", "endpoint_disabled")
    profile = DynamoProfileStore(TABLE).profile(profile_id)
    assert profile is not None
    assert Identifier(type="device_token", value=token) not in profile.identifiers
    assert DynamoProfileStore(TABLE).owner_of(Identifier(type="device_token", value=token)) is None
    removed = [
        e
        for e in engine.bus_events
        if e["detail-type"] == DETAIL_IDENTIFIER_REMOVED and e["detail"]["data"]["profileId"] == profile_id
    ]
    assert [e["detail"]["data"]["detail"] for e in removed] == [{"type": "device_token"}]
    assert token not in str(removed)  # the type travels, never the value


def test_a_token_disabled_before_its_first_push_is_dropped_too(engine: LocalEngine) -> None:
    profile_id, token = _device(engine)
    engine.disable_push_token(token)
    message = queued_message(token, channel="push")

    assert engine.invoke("channel-push", {"Records": [_record(message.model_dump_json())]}) == {
        "batchItemFailures": []
    }

    entry = MessageLog(f"{PREFIX}-messages").get(message.messageKey)
    assert entry is not None and entry.reason == "endpoint_disabled"


def test_a_disabled_token_nobody_holds_any_more_is_still_dropped(engine: LocalEngine) -> None:
    token = f"orphan-{uuid.uuid4().hex}"
    engine.disable_push_token(token)
    message = queued_message(token, channel="push")

    assert engine.invoke("channel-push", {"Records": [_record(message.model_dump_json())]}) == {
        "batchItemFailures": []
    }
    entry = MessageLog(f"{PREFIX}-messages").get(message.messageKey)
    assert entry is not None and entry.status == "dropped"
