"""GDPR erasure through the Profile API, checked in every table of the local runtime's moto backend."""

from __future__ import annotations

import json
import uuid
from typing import Any

from infra.local.engine import PREFIX, Failure, LocalEngine
from infra.local.http import api_gateway_event
from infra.topology import TOPOLOGY
from shared.store.journey_stats import JourneyStats
from tests.integration.conftest import client, eventbridge_event, http_event

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


def _identified(engine: LocalEngine, tag: str, **extra: Any) -> str:
    person = {"userId": f"u-{tag}", "traits": {"email": f"p-{tag}@example.com"}, **extra}
    assert engine.invoke("ingest", http_event("/v1/identify", person))["statusCode"] == 200
    engine.wait_idle()
    found = _profiles_api(engine, "GET", f"/v1/profiles?userId=u-{tag}")
    assert found["status"] == 200
    return str(found["body"]["profileId"])


def _executions_of(profile_id: str) -> list[dict[str, Any]]:
    sfn = client("stepfunctions")
    found = []
    for machine in sfn.list_state_machines()["stateMachines"]:
        for execution in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]:
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            if json.loads(described["input"]).get("profileId") == profile_id:
                found.append(described)
    return found


def _erased_exits() -> float:
    return JourneyStats(f"{PREFIX}-journey-stats").get("cart_abandonment").get("exited#erased", 0)


def test_erasure_stops_the_persons_running_journey_and_not_anyone_elses(engine: LocalEngine) -> None:
    # Given two customers in the cart journey, waiting for their reminder
    tags = [uuid.uuid4().hex[:10] for _ in range(2)]
    profile_ids = [_identified(engine, tag) for tag in tags]
    for tag in tags:
        added = {"userId": f"u-{tag}", "event": "Product Added", "properties": {"name": "Kettle"}}
        assert engine.invoke("ingest", http_event("/v1/track", added))["statusCode"] == 200
    engine.advance(60)
    assert [[e["status"] for e in _executions_of(p)] for p in profile_ids] == [["RUNNING"], ["RUNNING"]]

    erased_before = _erased_exits()

    # When the first is erased
    assert _profiles_api(engine, "DELETE", f"/v1/profiles/{profile_ids[0]}")["status"] == 200

    # Then their execution (its input holds their data) is stopped; the other's runs on
    (stopped,) = _executions_of(profile_ids[0])
    assert stopped["status"] == "ABORTED"
    assert [e["status"] for e in _executions_of(profile_ids[1])] == ["RUNNING"]
    assert _erased_exits() == erased_before + 1  # the journey counts the run it lost
    engine.advance(2 * 3600)
    assert [m["profileId"] for m in engine.message_log() if m["profileId"] in profile_ids] == [profile_ids[1]]


def test_erasure_removes_the_persons_entries_from_the_local_failure_list(engine: LocalEngine) -> None:
    tag, other = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    profile_id = _identified(engine, tag)
    raw = eventbridge_event(
        "customer.track",
        "continuum.ingest",
        {
            "name": "track",
            "correlationId": "c-1",
            "time": "t",
            "data": {
                "anonymousId": "x",
                "type": "track",
                "context": {"traits": {"email": f"P-{tag}@Example.com"}},
            },
        },
    )
    resolved = eventbridge_event(
        "event.resolved",
        "continuum.identity",
        {
            "name": "event.resolved",
            "correlationId": "c-2",
            "time": "t",
            "data": {"profileId": profile_id, "event": {"type": "track", "anonymousId": "y"}},
        },
    )
    someone_else = eventbridge_event(
        "customer.track",
        "continuum.ingest",
        {
            "name": "track",
            "correlationId": "c-3",
            "time": "t",
            "data": {"userId": f"u-{other}", "type": "track"},
        },
    )
    engine.failures += [Failure("identity", "boom", e) for e in (raw, resolved, someone_else)]
    try:
        assert _profiles_api(engine, "DELETE", f"/v1/profiles/{profile_id}")["status"] == 200
        engine.wait_idle()

        assert [f.event for f in engine.failures] == [someone_else]
    finally:
        engine.failures.clear()


def test_the_erased_event_names_the_person_by_hashes_only(engine: LocalEngine) -> None:
    tag = uuid.uuid4().hex[:10]
    profile_id = _identified(engine, tag)

    assert _profiles_api(engine, "DELETE", f"/v1/profiles/{profile_id}")["status"] == 200
    engine.wait_idle()

    (erased,) = [
        e
        for e in engine.bus_events
        if e["detail-type"] == "profile.erased" and e["detail"]["data"]["profileId"] == profile_id
    ]
    detail = erased["detail"]["data"]["detail"]
    assert detail["erasedProfileIds"] == [profile_id]
    assert len(detail["identifierHashes"]) == 2
    assert tag not in json.dumps(erased)
