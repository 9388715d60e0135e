"""The Profile API's admin credential, as the SHA-256 digest `shared.identity.profile_api.authorize`
compares a presented token against (in constant time).

In the cloud the token lives in a Secrets Manager secret generated at deploy: the function's
environment carries only the secret's ARN, and the token is fetched at run time. Powertools'
parameters utility caches it, so a warm function asks Secrets Manager at most once per
`CACHE_SECONDS`, and a rotated token is honoured within that time. The local runtime hands the
function the token's digest directly.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import TYPE_CHECKING, Any

from shared.store.aws import client

if TYPE_CHECKING:
    from shared.config import AdminCredential

CACHE_SECONDS = 300


class AdminTokenUnavailableError(Exception):
    """The admin token's secret could not be read (missing, empty, or access denied)."""


@cache
def _provider() -> Any:
    # Imported here: only the cloud path needs it, and the local runtime never pays for it.
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=client("secretsmanager"))


def reset() -> None:
    """Forget the provider and its cache (tests swap the AWS backend underneath)."""
    _provider.cache_clear()


def admin_token_sha256(settings: AdminCredential) -> str:
    if settings.admin_token_sha256 is not None:
        return settings.admin_token_sha256
    assert settings.admin_token_secret_arn is not None  # the settings model requires one of the two
    try:
        token = _provider().get(settings.admin_token_secret_arn, max_age=CACHE_SECONDS)
    except Exception as error:  # Powertools wraps every SDK failure in GetParameterError
        raise AdminTokenUnavailableError("the admin token's secret could not be read") from error
    if not isinstance(token, str) or not token.strip():
        raise AdminTokenUnavailableError("the admin token's secret is empty")
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()
