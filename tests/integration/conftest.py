"""Integration tier: handlers and stores against moto. The engine fixture is the local runtime
in-process (moto, topology resources, virtual clock) without its HTTP adapter."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra.local.engine import REGION, LocalEngine
from shared import clock
from shared.models.message import MessageLogEntry, OutboundMessage
from shared.store.messages import MessageLog

WRITE_KEY = "integration-key"


class LambdaContext:
    """What a handler reads of its Lambda context, for calling a handler directly."""

    function_version = "$LATEST"
    memory_limit_in_mb = 512

    def __init__(self, name: str, remaining_ms: int = 10_000):
        self.function_name = name
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{name}"
        self.aws_request_id = name
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = name
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalEngine]:
    local = LocalEngine(write_key=WRITE_KEY).start()
    yield local
    local.stop()


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def eventbridge_event(detail_type: str, source: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "0d2a0b6e-0000-0000-0000-000000000000",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-11-24T00:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def http_event(path: str, body: Any, write_key: str = WRITE_KEY, raw: str | None = None) -> dict[str, Any]:
    from infra.local.http import api_gateway_event

    headers = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    payload = raw.encode() if raw is not None else json.dumps(body).encode()
    return api_gateway_event("POST", path, headers, payload)


def queued_message(to: str, channel: str = "email") -> OutboundMessage:
    """A message the send gate queued: its log entry recorded (status `queued`), and the queue's copy."""
    key = f"test-{uuid.uuid4().hex}"
    content = {"subject": "Hi", "text": "Hello"} if channel == "email" else {"title": "Hi", "body": "Hello"}
    MessageLog("continuum-messages").record(
        MessageLogEntry(
            messageKey=key,
            status="queued",
            channel=channel,
            to=to,
            journey="j",
            step="s",
            template="t",
            profileId="p",
            createdAt=clock.iso(clock.now()),
            content=content,
        )
    )
    return OutboundMessage(
        messageKey=key, channel=channel, to=to, content=content, journey="j", template="t", profileId="p"
    )
