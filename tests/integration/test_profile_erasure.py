"""GDPR erasure through the Profile API, checked in every table of the local runtime's moto backend."""

from __future__ import annotations

import json
import uuid
from typing import Any

from infra.local.engine import PREFIX, LocalEngine
from infra.local.http import api_gateway_event
from infra.topology import TOPOLOGY
from tests.integration.conftest import client, http_event

ADMIN = {"Authorization": "Bearer dev-admin-token"}


def _profiles_api(engine: LocalEngine, method: str, path: str) -> dict[str, Any]:
    event = api_gateway_event(method, path, ADMIN, b"")
    response: dict[str, Any] = engine.invoke("profiles", event)
    return {"status": response["statusCode"], "body": json.loads(response["body"])}


def _everything_stored() -> str:
    dynamodb = client("dynamodb")
    dumps = []
    for table in TOPOLOGY.tables:
        pages = dynamodb.get_paginator("scan").paginate(TableName=f"{PREFIX}-{table.name}")
        dumps += [json.dumps(item) for page in pages for item in page["Items"]]
    return "\n".join(dumps)


def test_after_erasure_no_table_holds_the_persons_identifiers_or_traits(engine: LocalEngine) -> None:
    tag = uuid.uuid4().hex[:10]
    person = {
        "userId": f"erase-user-{tag}",
        "anonymousId": f"erase-anon-{tag}",
        "traits": {"email": f"erase-{tag}@example.com", "firstName": f"Zed{tag}"},
        "context": {"device": {"token": f"erase-token-{tag}"}},
    }
    assert engine.invoke("ingest", http_event("/v1/identify", person))["statusCode"] == 200
    added = {"userId": person["userId"], "event": "Product Added", "properties": {"name": f"Kettle{tag}"}}
    assert engine.invoke("ingest", http_event("/v1/track", added))["statusCode"] == 200
    engine.advance(2 * 86400)  # the cart journey sends its email and push, logged with the address
    private = [
        person["userId"],
        person["anonymousId"],
        f"erase-{tag}@example.com",
        f"erase-token-{tag}",
        f"Zed{tag}",
    ]
    assert all(value in _everything_stored() for value in private)  # the check below can fail

    found = _profiles_api(engine, "GET", f"/v1/profiles?userId={person['userId']}")
    erased = _profiles_api(engine, "DELETE", f"/v1/profiles/{found['body']['profileId']}")

    assert erased["status"] == 200
    stored = _everything_stored()
    assert [value for value in private if value in stored] == []
    assert _profiles_api(engine, "GET", f"/v1/profiles/{found['body']['profileId']}")["status"] == 404


def test_an_erased_persons_old_identifier_does_not_re_create_them(engine: LocalEngine) -> None:
    tag = uuid.uuid4().hex[:10]
    identify = {"anonymousId": f"old-phone-{tag}", "traits": {"email": f"gone-{tag}@example.com"}}
    assert engine.invoke("ingest", http_event("/v1/identify", identify))["statusCode"] == 200
    engine.wait_idle()
    profile_id = _profiles_api(engine, "GET", f"/v1/profiles?anonymousId=old-phone-{tag}")["body"][
        "profileId"
    ]
    assert _profiles_api(engine, "DELETE", f"/v1/profiles/{profile_id}")["status"] == 200

    again = {"anonymousId": f"old-phone-{tag}", "event": "App Opened"}
    assert engine.invoke("ingest", http_event("/v1/track", again))["statusCode"] == 200
    engine.wait_idle()

    assert _profiles_api(engine, "GET", f"/v1/profiles?anonymousId=old-phone-{tag}")["status"] == 404
    assert f"old-phone-{tag}" not in _everything_stored()
    assert engine.failures == []
