"""The signed, expiring links every email carries: one-click unsubscribe (RFC 8058) and the
preference page. The token is the credential (no login), so it is signed and it expires.

Token: `base64url(JSON claims) "." base64url(HMAC-SHA256(key, first part))`, unpadded. Written by
hand with hmac + base64 (about twenty lines): itsdangerous would do the signing, but its timestamps
come from time.time(), and a link's expiry must follow `shared.clock` (the local runtime's virtual
clock, so that "expired after 90 days" is testable in milliseconds).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError

from shared import clock
from shared.models.base import Model
from shared.models.policy import TRANSACTIONAL, Policy

Purpose = Literal["unsubscribe", "preferences"]
# Far above any token this module signs (~200 characters), far below what would cost anything to
# check: a longer one is refused before it is decoded.
MAX_TOKEN_CHARS = 1024
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,900}\.[A-Za-z0-9_-]{43}$")  # 43: a SHA-256 MAC, unpadded
ONE_CLICK = "List-Unsubscribe=One-Click"


class LinkError(Exception):
    """A link that must not be acted on; nothing is changed."""


class ForgedLinkError(LinkError):
    """Not a token this deployment signed (or signed for another purpose): 403."""


class ExpiredLinkError(LinkError):
    """A genuine token past its expiry: 410."""


class LinkClaims(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    purpose: Purpose = Field(alias="p")
    profile_id: str = Field(alias="pid", min_length=1, max_length=200)
    topic: str | None = Field(alias="t", default=None, max_length=40)
    channel: str | None = Field(alias="c", default=None, max_length=20)
    expires: int = Field(alias="exp", ge=0)  # unix seconds


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, key: bytes):
        if len(key) < 32:
            raise ValueError("a link signing key has at least 32 bytes")
        self._key = key

    def _mac(self, payload: str) -> str:
        return _b64encode(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def sign(self, claims: LinkClaims) -> str:
        payload = _b64encode(claims.model_dump_json(by_alias=True).encode("utf-8"))
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, purpose: Purpose, now: datetime | None = None) -> LinkClaims:
        """The claims of a genuine, unexpired token for `purpose`; else ForgedLinkError or
        ExpiredLinkError. The MAC is checked before anything in the token is decoded; `now` defaults
        to `shared.clock` (virtual locally). Valid while now < exp."""
        if len(token) > MAX_TOKEN_CHARS or not _TOKEN.match(token):
            raise ForgedLinkError("this link is not one we sent")
        payload, mac = token.split(".")
        if not hmac.compare_digest(self._mac(payload), mac):
            raise ForgedLinkError("this link is not one we sent")
        try:
            claims = LinkClaims.model_validate_json(_b64decode(payload))
        except (ValidationError, binascii.Error, ValueError) as error:
            # Signed with our key yet not our claims: treated as forged (a leaked key, or an old format).
            raise ForgedLinkError("this link is not one we sent") from error
        if claims.purpose != purpose:
            raise ForgedLinkError(f"this link is not an {purpose} link")
        if (now or clock.now()).timestamp() >= claims.expires:
            raise ExpiredLinkError("this link has expired")
        return claims


class EmailLinks(Model):
    model_config = ConfigDict(frozen=True)

    unsubscribe_url: str | None  # None for transactional email: nothing to unsubscribe from
    preferences_url: str
    headers: dict[str, str]  # RFC 8058 List-Unsubscribe + List-Unsubscribe-Post; empty for transactional


def email_links(
    signer: LinkSigner,
    base_url: str,
    profile_id: str,
    topic: str,
    channel: str,
    policy: Policy,
    now: datetime,
) -> EmailLinks:
    """The links of one message: what the gate puts in the email's headers and its template's
    `links` (`links.unsubscribe`, `links.preferences`)."""
    base = base_url.rstrip("/")
    at = int(now.timestamp())
    preferences = signer.sign(
        LinkClaims(
            purpose="preferences", profile_id=profile_id, expires=at + policy.links.preferences_expires
        )
    )
    preferences_url = f"{base}/preferences/{preferences}"
    if topic == TRANSACTIONAL:
        return EmailLinks(unsubscribe_url=None, preferences_url=preferences_url, headers={})
    unsubscribe = signer.sign(
        LinkClaims(
            purpose="unsubscribe",
            profile_id=profile_id,
            topic=topic,
            channel=channel,
            expires=at + policy.links.unsubscribe_expires,
        )
    )
    unsubscribe_url = f"{base}/unsubscribe/{unsubscribe}"
    return EmailLinks(
        unsubscribe_url=unsubscribe_url,
        preferences_url=preferences_url,
        headers={"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": ONE_CLICK},
    )
