"""The profile store keeps `Profile.timezone` on both of identity's paths (moto DynamoDB)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local.engine import create_table
from infra.topology import PROFILES, TOPOLOGY
from shared.identity.resolver import resolve
from shared.identity.rules import IdentityRules
from shared.store.profiles import DynamoProfileStore

REGION = "us-east-1"
T0 = datetime(2024, 6, 1, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[DynamoProfileStore]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in (
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
        ):
            env.setenv(name, value)
        with mock_aws():
            dynamodb = boto3.client("dynamodb", region_name=REGION)
            name = create_table(dynamodb, TOPOLOGY.table(PROFILES), f"profiles-{uuid.uuid4().hex}")
            yield DynamoProfileStore(name, dynamodb)


def call(n: int, timezone: str | None, **ids: str) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "track", "event": "App Opened", "messageId": f"m-{n}", **ids}
    if timezone:
        found["context"] = {"timezone": timezone}
    return found


def test_the_time_zone_is_stored_on_the_full_path_and_updated_on_the_fast_path(
    store: DynamoProfileStore,
) -> None:
    rules = IdentityRules()
    created = resolve(call(1, "Europe/Berlin", userId="u-1"), store, rules, T0, lambda: "p-1")
    assert created.profile_id == "p-1"
    stored = store.profile("p-1")
    assert stored is not None and stored.timezone == "Europe/Berlin"

    resolve(call(2, "America/New_York", userId="u-1"), store, rules, T0 + timedelta(minutes=1))
    resolve(call(3, "Not/AZone", userId="u-1"), store, rules, T0 + timedelta(minutes=2))

    stored = store.profile("p-1")
    assert stored is not None and stored.timezone == "America/New_York"
    assert stored.version == 3  # both later events took the fast path (one write each)
