"""The key that signs the unsubscribe and preference links (shared/delivery/links.py).

In the cloud it is a Secrets Manager secret generated at deploy: a function's environment carries only
the secret's ARN (LINK_SIGNING_SECRET_ARN), and the key is fetched at run time and cached by
Powertools' parameters utility (a rotated key is honoured within CACHE_SECONDS; links signed with the
old one then answer 403, so rotate rarely). The local runtime generates a key at start and hands it
over as hex (LINK_SIGNING_KEY). The key is never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from shared.delivery.links import EmailLinks, LinkSigner, email_links
from shared.store.aws import client

if TYPE_CHECKING:
    from shared.config import LinkSettings, LinkSigningKey
    from shared.models.policy import Policy

CACHE_SECONDS = 300


class LinkKeyUnavailableError(Exception):
    """The signing key's secret could not be read (missing, empty, or access denied)."""


@cache
def _provider() -> Any:
    # Imported here: only the cloud path needs it.
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=client("secretsmanager"))


def reset() -> None:
    """Forget the provider and its cache (tests swap the AWS backend underneath)."""
    _provider.cache_clear()


def link_signer(settings: LinkSigningKey) -> LinkSigner:
    if settings.link_signing_key is not None:
        return LinkSigner(bytes.fromhex(settings.link_signing_key))
    assert settings.link_signing_secret_arn is not None  # the settings model requires one of the two
    try:
        secret = _provider().get(settings.link_signing_secret_arn, max_age=CACHE_SECONDS)
    except Exception as error:  # Powertools wraps every SDK failure in GetParameterError
        raise LinkKeyUnavailableError("the link signing key's secret could not be read") from error
    if not isinstance(secret, str) or len(secret.strip()) < 32:
        raise LinkKeyUnavailableError("the link signing key's secret is empty or too short")
    return LinkSigner(secret.strip().encode("utf-8"))


def link_maker(settings: LinkSettings, policy: Policy) -> Callable[[str, str, str, datetime], EmailLinks]:
    """(profile id, topic, channel, now) → an email's links: what the send gate is handed (its
    `links=`), signed with the deployment's key and pointing at PUBLIC_BASE_URL."""
    signer = link_signer(settings)

    def make(profile_id: str, topic: str, channel: str, now: datetime) -> EmailLinks:
        return email_links(signer, settings.public_base_url, profile_id, topic, channel, policy, now)

    return make
