"""The journey router and the Journeys API handlers against moto: the topology's tables, state machines
(moto keeps an execution RUNNING: it does not run ASL unless told to), and a catalogue file."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Metrics
from moto import mock_aws

from infra.local.engine import create_table
from infra.local.http import api_gateway_event
from infra.topology import (
    JOURNEY_ALIAS_ENV,
    JOURNEY_ARN_PREFIX_ENV,
    JOURNEY_CATALOGUE_ENV,
    TOPOLOGY,
    table_env,
)
from shared import clock, config
from shared.journeys.router import execution_name
from shared.models.events import (
    DETAIL_EXECUTION_STATUS_CHANGE,
    DETAIL_RESOLVED,
    DETAIL_SEGMENT_ENTERED,
    DETAIL_SEGMENT_EXITED,
    SOURCE_IDENTITY,
    SOURCE_SEGMENTS,
    SOURCE_STATES,
    Envelope,
    ResolvedEvent,
)
from shared.models.message import MessageLogEntry
from shared.models.segments import SegmentChange
from shared.store import admin_token, aws
from shared.store.journey_stats import JourneyStats
from shared.store.journeys import JourneyRunStore
from shared.store.messages import MessageLog
from tests.integration.conftest import LambdaContext, eventbridge_event

REGION = "us-east-1"
ADMIN_TOKEN = "journeys-admin-token"
PREFIX = f"arn:aws:states:{REGION}:123456789012:stateMachine:"
JOURNEYS: list[dict[str, Any]] = [
    {
        "id": "cart_abandonment",
        "name": "Cart abandonment",
        "trigger": "Product Added",
        "exit_on": [{"event": "Order Completed", "where": {"cart_id": {"same_as_trigger": True}}}],
        "goal": {"event": "Order Completed", "within": "7d", "exit_on_goal": False},
        "steps": [
            {"wait": "1h"},
            {"send": {"channel": "email", "template": "cart-reminder"}},
            {
                "id": "checkout",
                "wait_for": {
                    "event": "Checkout Started",
                    "where": {"cart_id": {"same_as_trigger": True}},
                    "timeout": "23h",
                    "on_timeout": [{"send": {"channel": "push", "template": "cart-reminder"}}],
                },
            },
        ],
    },
    {
        "id": "welcome",
        "name": "Welcome",
        "trigger": "Signed Up",
        "re_entry": "never",
        "steps": [{"send": {"channel": "email", "template": "welcome"}}],
    },
    {
        "id": "vip_thanks",
        "name": "VIP thanks",
        "trigger": {"segment_entered": "vip"},
        "exit_on": [{"segment_exited": "vip"}],
        "steps": [{"wait": "1d"}, {"send": {"channel": "email", "template": "vip-thanks"}}],
    },
]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_METRICS_NAMESPACE": "Continuum",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        dynamodb, sfn = boto3.client("dynamodb"), boto3.client("stepfunctions")
        role = boto3.client("iam").create_role(RoleName="journeys", AssumeRolePolicyDocument="{}")["Role"][
            "Arn"
        ]
        variables = {table_env(t.name): create_table(dynamodb, t, f"it-{t.name}") for t in TOPOLOGY.tables}
        entries = []
        for journey in JOURNEYS:
            name = f"it-{journey['id']}"
            sfn.create_state_machine(
                name=name,
                definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
                roleArn=role,
            )
            entries.append({"stateMachine": name, "definition": journey})
        catalogue = tmp_path / "journeys.json"
        catalogue.write_text(json.dumps({"journeys": entries}))
        variables |= {
            JOURNEY_CATALOGUE_ENV: str(catalogue),
            JOURNEY_ARN_PREFIX_ENV: PREFIX,
            JOURNEY_ALIAS_ENV: "",
            "ADMIN_TOKEN_SHA256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),
        }
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        config.reset()
        aws.reset()
        admin_token.reset()
        yield variables
        config.reset()
        aws.reset()
        # Powertools buffers metrics even when disabled, in a set every Metrics instance shares: the
        # handlers' values must not reach the next test module (the local runtime drops them itself).
        Metrics().clear_metrics()


def _route(
    event: str, profile_id: str, message_id: str | None = None, at: str | None = None, **properties: Any
) -> str:
    from functions.journey_router.handler import handler

    message_id = message_id or uuid.uuid4().hex
    resolved = ResolvedEvent(
        profileId=profile_id,
        event={
            "type": "track",
            "event": event,
            "messageId": message_id,
            "timestamp": at or clock.iso(clock.now()),
            "properties": properties,
            "anonymousId": f"anon-{profile_id}",
        },
    )
    envelope = Envelope(
        name=DETAIL_RESOLVED,
        correlationId=message_id,
        time=clock.iso(clock.now()),
        data=resolved.model_dump(),
    )
    handler(
        eventbridge_event(DETAIL_RESOLVED, SOURCE_IDENTITY, envelope.model_dump()), LambdaContext("journeys")
    )
    return message_id


def _segment_change(profile_id: str, segment: str, entered: bool, at: str) -> None:
    """The bus event the segments function publishes when the profile enters or leaves a segment."""
    from functions.journey_router.handler import handler

    name = DETAIL_SEGMENT_ENTERED if entered else DETAIL_SEGMENT_EXITED
    change = SegmentChange(profileId=profile_id, segment=segment, entered=entered, at=at, reason="event")
    envelope = Envelope(name=name, correlationId=f"m-{uuid.uuid4().hex}", time=at, data=change.model_dump())
    handler(eventbridge_event(name, SOURCE_SEGMENTS, envelope.model_dump()), LambdaContext("journeys"))


def _ended(execution: str, status: str, output: str | None = None) -> None:
    from functions.journey_router.handler import handler

    detail = {
        "executionArn": execution,
        "stateMachineArn": execution.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0],
        "name": execution.rsplit(":", 1)[1],
        "status": status,
        "startDate": 1,
        "stopDate": 2,
        "input": "{}",
        "output": output,
    }
    handler(
        eventbridge_event(DETAIL_EXECUTION_STATUS_CHANGE, SOURCE_STATES, detail), LambdaContext("journeys")
    )


def _status(execution: str) -> str:
    status: str = boto3.client("stepfunctions").describe_execution(executionArn=execution)["status"]
    return status


def _runs(env: dict[str, str], profile_id: str, journey: str = "cart_abandonment") -> list[dict[str, str]]:
    return JourneyRunStore(env[table_env("journey-runs")]).runs(profile_id, journey)


def _stats(env: dict[str, str], journey: str = "cart_abandonment") -> dict[str, float]:
    return JourneyStats(env[table_env("journey-stats")]).get(journey)


def _profile() -> str:
    return f"profile-{uuid.uuid4().hex[:12]}"


# -- the router ------------------------------------------------------------------------------------


def test_a_trigger_starts_the_journey_with_its_catalogue_input_and_counts_the_entry(
    env: dict[str, str],
) -> None:
    profile = _profile()

    message_id = _route("Product Added", profile, cart_id="c-1")

    [run] = _runs(env, profile)
    assert run["executionArn"] == f"{PREFIX.replace(':stateMachine:', ':execution:')}it-cart_abandonment:" + (
        execution_name(profile, message_id)
    )
    assert json.loads(run["trigger"]) == {"cart_id": "c-1"}
    described = boto3.client("stepfunctions").describe_execution(executionArn=run["executionArn"])
    assert json.loads(described["input"])["journey"] == "cart_abandonment"
    assert json.loads(described["input"])["profileId"] == profile
    assert _stats(env)["entered"] == 1


def test_an_exit_event_for_the_same_cart_stops_the_run_and_another_cart_does_not(env: dict[str, str]) -> None:
    same, other = _profile(), _profile()
    _route("Product Added", same, cart_id="c-1")
    _route("Product Added", other, cart_id="c-1")

    _route("Order Completed", same, cart_id="c-1")
    _route("Order Completed", other, cart_id="c-2")

    [exited], [running] = _runs(env, same), _runs(env, other)
    assert (exited["status"], exited["closedReason"], _status(exited["executionArn"])) == (
        "exited",
        "exit_event",
        "ABORTED",
    )
    assert (running["status"], _status(running["executionArn"])) == ("active", "RUNNING")
    assert _stats(env)["exited#exit_event"] == 1


def test_entering_a_segment_starts_the_journey_it_triggers_once_however_often_delivered(
    env: dict[str, str],
) -> None:
    profile, at = _profile(), "2024-05-01T10:00:00.000Z"

    _segment_change(profile, "vip", True, at)
    _segment_change(profile, "vip", True, at)  # EventBridge delivers at least once

    [run] = _runs(env, profile, "vip_thanks")
    described = json.loads(
        boto3.client("stepfunctions").describe_execution(executionArn=run["executionArn"])["input"]
    )
    assert (described["profileId"], described["enteredAt"]) == (profile, at)
    assert described["trigger"]["event"] == "$segment.entered"
    assert described["trigger"]["properties"] == {"segment": "vip"}
    assert _stats(env, "vip_thanks")["entered"] == 1
    assert _runs(env, profile) == []  # no other journey is triggered by it


def test_leaving_the_segment_stops_the_run_and_entering_again_starts_a_new_one(env: dict[str, str]) -> None:
    profile = _profile()
    _segment_change(profile, "vip", True, "2024-05-01T10:00:00.000Z")
    [first] = _runs(env, profile, "vip_thanks")

    _segment_change(profile, "vip", False, "2024-05-01T11:00:00.000Z")
    _segment_change(profile, "vip", True, "2024-05-02T10:00:00.000Z")

    runs = {run["executionArn"]: run for run in _runs(env, profile, "vip_thanks")}
    assert (runs[first["executionArn"]]["closedReason"], _status(first["executionArn"])) == (
        "exit_event",
        "ABORTED",
    )
    [second] = [run for arn, run in runs.items() if arn != first["executionArn"]]
    assert (second["status"], _status(second["executionArn"])) == ("active", "RUNNING")
    assert _stats(env, "vip_thanks") == {"entered": 2, "exited#exit_event": 1}


def test_leaving_another_segment_leaves_the_run_running(env: dict[str, str]) -> None:
    profile = _profile()
    _segment_change(profile, "vip", True, "2024-05-01T10:00:00.000Z")

    _segment_change(profile, "cart_abandoners", False, "2024-05-01T11:00:00.000Z")

    [run] = _runs(env, profile, "vip_thanks")
    assert (run["status"], _status(run["executionArn"])) == ("active", "RUNNING")


def test_an_ended_execution_closes_its_run_through_the_execution_index(env: dict[str, str]) -> None:
    profile = _profile()
    _route("Product Added", profile, cart_id="c-1")
    [run] = _runs(env, profile)

    _ended(run["executionArn"], "SUCCEEDED", json.dumps({"exit": {"step": "exit"}}))
    _ended(run["executionArn"], "SUCCEEDED", json.dumps({"exit": {"step": "exit"}}))  # delivered twice

    [closed] = _runs(env, profile)
    assert (closed["status"], closed["closedReason"]) == ("exited", "exit_step")
    assert _stats(env)["exited#exit_step"] == 1
    # The slot is free: the next trigger starts again.
    _route("Product Added", profile, cart_id="c-2")
    assert [r["status"] for r in _runs(env, profile)].count("active") == 1


def test_an_awaited_event_resumes_the_waiting_execution_and_deletes_its_wait(env: dict[str, str]) -> None:
    profile = _profile()
    _route("Product Added", profile, cart_id="c-1")
    [run] = _runs(env, profile)
    dynamodb, waits = boto3.client("dynamodb"), env[table_env("journey-waits")]
    dynamodb.put_item(
        TableName=waits,
        Item={
            "executionArn": {"S": run["executionArn"]},
            "journey": {"S": "cart_abandonment"},
            "step": {"S": "checkout"},
            "token": {"S": "a-task-token"},
            "event": {"S": "Checkout Started"},
            "where": {"S": json.dumps({"cart_id": {"equals": "c-1"}})},
            "since": {"S": run["enteredAt"]},
        },
    )

    _route("Checkout Started", profile, cart_id="c-2")
    still_waiting = dynamodb.get_item(TableName=waits, Key={"executionArn": {"S": run["executionArn"]}})
    _route("Checkout Started", profile, cart_id="c-1")
    resumed = dynamodb.get_item(TableName=waits, Key={"executionArn": {"S": run["executionArn"]}})

    assert "Item" in still_waiting
    assert "Item" not in resumed


def test_a_goal_converts_with_its_revenue_credited_to_the_step_that_sent(env: dict[str, str]) -> None:
    profile = _profile()
    _route("Product Added", profile, cart_id="c-1", at="2024-05-01T10:00:00.000Z")
    [run] = _runs(env, profile)
    MessageLog(env[table_env("messages")]).record(
        MessageLogEntry(
            messageKey=f"{run['executionArn']}#send-email-cart-reminder",
            status="sent",
            channel="email",
            journey="cart_abandonment",
            step="send-email-cart-reminder",
            template="cart-reminder",
            profileId=profile,
            createdAt="2024-05-01T11:00:00.000Z",
        )
    )

    _route("Order Completed", profile, cart_id="c-9", revenue=19.5, at="2024-05-02T10:00:00.000Z")

    stats = _stats(env)
    assert (stats["conversions"], stats["revenue"]) == (1, 19.5)
    assert stats["step#send-email-cart-reminder#conversions"] == 1
    assert _runs(env, profile)[0]["convertedAt"] == "2024-05-02T10:00:00.000Z"


# -- the Journeys API ------------------------------------------------------------------------------


def _get(path: str, token: str | None = ADMIN_TOKEN) -> tuple[int, dict[str, Any]]:
    from functions.journeys.handler import handler

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = handler(api_gateway_event("GET", path, headers, b""), LambdaContext("journeys"))
    return response["statusCode"], json.loads(response["body"])


def test_the_journeys_api_lists_every_catalogued_journey_with_its_entries(env: dict[str, str]) -> None:
    _route("Product Added", _profile(), cart_id="c-1")

    status, body = _get("/v1/journeys")

    assert status == 200
    assert body["journeys"] == [
        {
            "id": "cart_abandonment",
            "name": "Cart abandonment",
            "trigger": {"event": "Product Added", "where": {}},
            "entered": 1,
            "active": 1,
        },
        {
            "id": "welcome",
            "name": "Welcome",
            "trigger": {"event": "Signed Up", "where": {}},
            "entered": 0,
            "active": 0,
        },
        {
            "id": "vip_thanks",
            "name": "VIP thanks",
            "trigger": {"event": "$segment.entered", "where": {"segment": {"equals": "vip"}}},
            "entered": 0,
            "active": 0,
        },
    ]


def test_the_journeys_api_shows_a_journeys_exits_conversions_and_steps(env: dict[str, str]) -> None:
    profile = _profile()
    _route("Product Added", profile, cart_id="c-1")
    _route("Order Completed", profile, cart_id="c-1", total=12)
    JourneyStats(env[table_env("journey-stats")]).add(
        "cart_abandonment",
        {"step#send-email-cart-reminder#sent": 3, "step#send-email-cart-reminder#dropped#consent": 1},
    )

    status, body = _get("/v1/journeys/cart_abandonment")

    assert status == 200
    assert {k: body[k] for k in ("entered", "active", "exited", "conversions", "revenue", "heldOut")} == {
        "entered": 1,
        "active": 0,
        "exited": {"exit_event": 1},
        "conversions": 1,
        "revenue": 12,
        "heldOut": 0,
    }
    assert [(s["id"], s["type"]) for s in body["steps"]] == [
        ("wait-1h", "wait"),
        ("send-email-cart-reminder", "send"),
        ("checkout", "wait_for"),
        ("checkout.on_timeout.send-push-cart-reminder", "send"),
    ]
    assert body["steps"][1] == {
        "id": "send-email-cart-reminder",
        "type": "send",
        "sent": 3,
        "dropped": {"consent": 1},
        "deferred": {},
        "conversions": 0,
        "revenue": 0,
    }


def test_the_journeys_api_answers_404_for_an_unknown_journey(env: dict[str, str]) -> None:
    status, body = _get("/v1/journeys/no_such_journey")

    assert status == 404
    assert body == {"error": "no such journey"}


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_the_journeys_api_needs_the_admin_token(env: dict[str, str], token: str | None) -> None:
    status, body = _get("/v1/journeys", token)

    assert status == 401
    assert "admin token" in body["error"]


@pytest.mark.parametrize(("status", "failed"), [("FAILED", 1), ("TIMED_OUT", 1), ("SUCCEEDED", 0)])
def test_a_failed_or_timed_out_execution_is_counted_for_the_journeys_alarm(
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    status: str,
    failed: int,
) -> None:
    from functions.journey_router import handler as module

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # this test reads them
    # The handler's Metrics took its namespace from the environment when first imported, perhaps by
    # another test before this module's environment was set.
    monkeypatch.setattr(module.metrics, "namespace", "Continuum")
    profile = _profile()
    _route("Product Added", profile, cart_id="c-1")
    [run] = _runs(env, profile)
    capsys.readouterr()

    _ended(run["executionArn"], status)

    out = capsys.readouterr().out
    emitted = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    values = [m["JourneyExecutionsFailed"] for m in emitted if "JourneyExecutionsFailed" in m]
    counted = sum(sum(v) if isinstance(v, list) else v for v in values)
    assert counted == failed
