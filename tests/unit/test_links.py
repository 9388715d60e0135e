"""Signed, expiring links (shared/delivery/links.py): what verifies, and every way a token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from shared.delivery.links import (
    ExpiredLinkError,
    ForgedLinkError,
    LinkClaims,
    LinkError,
    LinkSigner,
    email_links,
)
from shared.models.policy import Policy
from tests.unit.conftest import FIXED_NOW

KEY = bytes(range(32))
SIGNER = LinkSigner(KEY)
POLICY = Policy.model_validate(yaml.safe_load(Path("policy.yaml").read_text(encoding="utf-8")))
EXPIRES = int(FIXED_NOW.timestamp()) + 3600


def _token(purpose: str = "unsubscribe", **claims: object) -> str:
    fields = {"p": purpose, "pid": "prof-1", "t": "marketing", "c": "email", "exp": EXPIRES, **claims}
    return SIGNER.sign(LinkClaims.model_validate(fields))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_signed_token_verifies_to_its_claims() -> None:
    claims = SIGNER.verify(_token(), "unsubscribe", FIXED_NOW)
    assert (claims.profile_id, claims.topic, claims.channel, claims.expires) == (
        "prof-1",
        "marketing",
        "email",
        EXPIRES,
    )


def test_a_changed_signature_is_forged() -> None:
    payload, mac = _token().split(".")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    with pytest.raises(ForgedLinkError):
        SIGNER.verify(f"{payload}.{flipped}", "unsubscribe", FIXED_NOW)


def test_changed_claims_are_forged() -> None:
    # Given a genuine token whose claims are swapped for another profile's, signature kept
    _, mac = _token().split(".")
    other = _b64(b'{"p":"unsubscribe","pid":"prof-2","t":"marketing","c":"email","exp":9999999999}')
    with pytest.raises(ForgedLinkError):
        SIGNER.verify(f"{other}.{mac}", "unsubscribe", FIXED_NOW)


@pytest.mark.parametrize("cut", [1, 10, 44, 60])
def test_a_truncated_token_is_forged(cut: int) -> None:
    with pytest.raises(ForgedLinkError):
        SIGNER.verify(_token()[:-cut], "unsubscribe", FIXED_NOW)


def test_a_token_signed_with_another_key_is_forged() -> None:
    with pytest.raises(ForgedLinkError):
        LinkSigner(bytes(32)).verify(_token(), "unsubscribe", FIXED_NOW)


def test_a_preferences_token_does_not_unsubscribe() -> None:
    token = _token("preferences", t=None, c=None)
    assert SIGNER.verify(token, "preferences", FIXED_NOW).profile_id == "prof-1"
    with pytest.raises(ForgedLinkError):
        SIGNER.verify(token, "unsubscribe", FIXED_NOW)


def test_a_token_is_valid_until_its_expiry_and_not_one_second_later() -> None:
    token = _token()
    expiry = datetime.fromtimestamp(EXPIRES, UTC)
    assert SIGNER.verify(token, "unsubscribe", expiry - timedelta(seconds=1))
    with pytest.raises(ExpiredLinkError):
        SIGNER.verify(token, "unsubscribe", expiry)
    with pytest.raises(ExpiredLinkError):
        SIGNER.verify(token, "unsubscribe", expiry + timedelta(seconds=1))


def test_expiry_follows_shared_clock(fixed_clock: datetime) -> None:
    # Given the clock at FIXED_NOW (the local runtime installs its virtual clock the same way)
    assert SIGNER.verify(_token(exp=int(fixed_clock.timestamp()) + 1), "unsubscribe").profile_id == "prof-1"
    with pytest.raises(ExpiredLinkError):
        SIGNER.verify(_token(exp=int(fixed_clock.timestamp())), "unsubscribe")


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "a" * 100_000,  # huge: refused before any decoding
        _token() + "." + "x" * 43,
        "ab%FF.cd",
        "é" * 10 + "." + "é" * 43,
        "not base64!!.AAAA",
        "\x00." + "A" * 43,
    ],
    ids=["empty", "dot", "huge", "three-parts", "percent", "non-ascii", "bad-base64", "nul"],
)
def test_malformed_tokens_are_forged(token: str) -> None:
    with pytest.raises(ForgedLinkError):
        SIGNER.verify(token, "unsubscribe", FIXED_NOW)


def test_a_correctly_signed_payload_that_is_not_claims_is_refused() -> None:
    # Given a payload of non-UTF-8 bytes carrying a valid MAC (only a key holder could make it)
    payload = _b64(b"\xff\xfe\x00garbage")
    mac = _b64(hmac.new(KEY, payload.encode(), hashlib.sha256).digest())
    with pytest.raises(ForgedLinkError):
        SIGNER.verify(f"{payload}.{mac}", "unsubscribe", FIXED_NOW)


def test_both_refusals_are_link_errors() -> None:
    assert issubclass(ForgedLinkError, LinkError) and issubclass(ExpiredLinkError, LinkError)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        LinkSigner(b"short")


def test_a_marketing_email_carries_the_rfc_8058_headers() -> None:
    links = email_links(SIGNER, "https://api.example.com/", "prof-1", "marketing", "email", POLICY, FIXED_NOW)
    assert links.unsubscribe_url is not None
    assert links.unsubscribe_url.startswith("https://api.example.com/unsubscribe/")
    assert links.headers == {
        "List-Unsubscribe": f"<{links.unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    claims = SIGNER.verify(links.unsubscribe_url.rsplit("/", 1)[1], "unsubscribe", FIXED_NOW)
    assert (claims.topic, claims.channel) == ("marketing", "email")
    assert claims.expires == int(FIXED_NOW.timestamp()) + POLICY.links.unsubscribe_expires
    preferences = SIGNER.verify(links.preferences_url.rsplit("/", 1)[1], "preferences", FIXED_NOW)
    assert preferences.profile_id == "prof-1"
    assert links.preferences_url.startswith("https://api.example.com/preferences/")


def test_a_transactional_email_has_a_preference_link_but_no_unsubscribe() -> None:
    base = "http://127.0.0.1:8000"
    links = email_links(SIGNER, base, "prof-1", "transactional", "email", POLICY, FIXED_NOW)
    assert links.unsubscribe_url is None and links.headers == {}
    assert links.preferences_url.startswith("http://127.0.0.1:8000/preferences/")


def test_a_token_fits_in_a_url_path_segment() -> None:
    links = email_links(SIGNER, "https://x", "p" * 36, "product_updates", "email", POLICY, FIXED_NOW)
    assert links.unsubscribe_url is not None
    token = links.unsubscribe_url.rsplit("/", 1)[1]
    assert len(token) < 300 and "/" not in token and "=" not in token
