"""The Profile API's admin credential as deployed: a Secrets Manager secret read at run time (moto)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.local.engine import LocalEngine
from infra.local.http import api_gateway_event
from infra.topology import ADMIN_TOKEN_SECRET_ENV, ADMIN_TOKEN_SHA256_ENV
from shared import config
from shared.store import admin_token
from tests.integration.conftest import client

TOKEN = "Zq8cN1rTgeneratedBySecretsManager0aLm3Xw7Yv2Kp9Hd"


@pytest.fixture
def deployed_credential(engine: LocalEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The profiles function configured as the CDK stack configures it: the secret's ARN, no digest."""
    arn: str = client("secretsmanager").create_secret(
        Name=f"admin-token-{id(monkeypatch)}", SecretString=TOKEN
    )["ARN"]
    monkeypatch.delenv(ADMIN_TOKEN_SHA256_ENV)
    monkeypatch.setenv(ADMIN_TOKEN_SECRET_ENV, arn)
    config.reset()
    admin_token.reset()
    yield arn
    config.reset()
    admin_token.reset()


def _lookup(engine: LocalEngine, token: str) -> int:
    event = api_gateway_event(
        "GET", "/v1/profiles/no-such-profile", {"Authorization": f"Bearer {token}"}, b""
    )
    status: int = engine.invoke("profiles", event)["statusCode"]
    return status


def test_the_token_held_in_the_secret_opens_the_profile_api(
    engine: LocalEngine, deployed_credential: str
) -> None:
    assert _lookup(engine, TOKEN) == 404  # past the credential check: the profile does not exist


def test_the_published_development_token_does_not(engine: LocalEngine, deployed_credential: str) -> None:
    assert _lookup(engine, "dev-admin-token") == 401


def test_the_secret_is_fetched_once_and_cached(engine: LocalEngine, deployed_credential: str) -> None:
    assert _lookup(engine, TOKEN) == 404
    client("secretsmanager").put_secret_value(SecretId=deployed_credential, SecretString="rotated")
    # Within the cache time the old token still works (no Secrets Manager call per request) ...
    assert _lookup(engine, TOKEN) == 404
    # ... and once the cache is gone the rotated one does.
    admin_token.reset()
    assert _lookup(engine, "rotated") == 404
    assert _lookup(engine, TOKEN) == 401
