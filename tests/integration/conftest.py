"""Integration tier: handlers and stores against moto. The engine fixture is the local runtime
in-process (moto, topology resources, virtual clock) without its HTTP adapter."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra.local.engine import REGION, LocalEngine

WRITE_KEY = "integration-key"


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
