"""One-click unsubscribe and the preference page over HTTP on the local runtime (`python -m infra.local`),
and the preference page in headless Chromium (selenium, /usr/bin/chromium + /usr/bin/chromedriver).

The runtime is started with a known link signing key (CONTINUUM_LINK_SIGNING_KEY), so these tests
sign their links the way the send gate does (`email_links`), with expiries on the runtime's virtual
clock; one test reads the links from an email the send gate really sent.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared import clock
from shared.delivery.links import LinkClaims, LinkSigner, email_links
from shared.models.policy import Policy
from tests.e2e.conftest import ROOT, LocalRuntime, running

ADMIN = {"Authorization": "Bearer dev-admin-token"}
KEY = secrets.token_hex(32)
SIGNER = LinkSigner(bytes.fromhex(KEY))
POLICY = Policy.model_validate(yaml.safe_load((ROOT / "policy.yaml").read_text(encoding="utf-8")))
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def local() -> Iterator[LocalRuntime]:
    yield from running(env={"CONTINUUM_LINK_SIGNING_KEY": KEY})


# ------------------------------------------------------------------ helpers


def _now(local: LocalRuntime) -> datetime:
    status, body = local.request("GET", "/_local/clock")
    assert status == 200
    return clock.parse(str(body["now"]))


def _person(local: LocalRuntime) -> str:
    """A new profile (identified by a user id only: no email, so no journey mails it); its id."""
    user = f"links-{uuid.uuid4().hex[:10]}"
    assert local.send("identify", {"userId": user, "traits": {"plan": "free"}})[0] == 200
    local.advance(0)
    status, profile = local.request("GET", f"/v1/profiles?userId={user}", headers=ADMIN)
    assert status == 200, profile
    return str(profile["profileId"])


def _links(local: LocalRuntime, profile_id: str, topic: str = "marketing") -> tuple[str, str]:
    """The unsubscribe and preference paths of an email sent now, as the gate makes them."""
    links = email_links(SIGNER, local.url, profile_id, topic, "email", POLICY, _now(local))
    assert links.unsubscribe_url is not None
    return urlsplit(links.unsubscribe_url).path, urlsplit(links.preferences_url).path


def _token(purpose: str, profile_id: str, expires: datetime, **claims: Any) -> str:
    fields = {"p": purpose, "pid": profile_id, "exp": int(expires.timestamp()), **claims}
    return SIGNER.sign(LinkClaims.model_validate(fields))


def _page(
    local: LocalRuntime, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, str]:
    status, answered, raw = local.raw(method, path, body, headers)
    if status != 404 or "text/html" in answered.get("Content-Type", ""):
        assert answered.get("Content-Type") == "text/html; charset=utf-8", answered
        assert answered.get("Cache-Control") == "no-store"
    return status, raw.decode("utf-8")


def _ticked(local: LocalRuntime, preferences: str, box: str) -> bool:
    """Whether the preference page shows `box` ticked (a GET: it changes nothing)."""
    status, html = _page(local, "GET", preferences)
    assert status == 200, html
    marker = f'name="{box}" value="on"'
    assert marker in html
    return f"{marker} checked" in html


# ------------------------------------------------------------------ one click


def test_a_one_click_post_unsubscribes_with_no_page_and_no_login(local: LocalRuntime) -> None:
    profile = _person(local)
    unsubscribe, preferences = _links(local, profile)
    assert _ticked(local, preferences, "marketing/email")

    status, html = _page(
        local, "POST", unsubscribe, b"List-Unsubscribe=One-Click", **FORM
    )  # what a mailbox provider sends (RFC 8058)

    assert status == 200 and "unsubscribed" in html
    assert not _ticked(local, preferences, "marketing/email")
    assert _ticked(local, preferences, "marketing/push")  # only the link's topic and channel


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (None, {}),
        (b"", FORM),
        (b'{"anything": true}', {"Content-Type": "application/json"}),
        (bytes(range(256)), {"Content-Type": "application/octet-stream"}),
        (b"List-Unsubscribe=Something-Else&x=%FF", FORM),
    ],
    ids=["no-body", "empty", "json", "binary", "other-form"],
)
def test_a_one_click_post_with_any_body_unsubscribes(
    local: LocalRuntime, body: bytes | None, headers: dict[str, str]
) -> None:
    profile = _person(local)
    unsubscribe, preferences = _links(local, profile)
    assert _page(local, "POST", unsubscribe, body, **headers)[0] == 200
    assert not _ticked(local, preferences, "marketing/email")


def test_get_on_the_unsubscribe_link_never_unsubscribes(local: LocalRuntime) -> None:
    # Given a link scanner following the link, twice
    profile = _person(local)
    unsubscribe, preferences = _links(local, profile)
    for _ in range(2):
        status, html = _page(local, "GET", unsubscribe)
        assert status == 200 and '<form method="post">' in html
    # Then nothing changed
    assert _ticked(local, preferences, "marketing/email")


# ------------------------------------------------------------------ refusals


def test_a_forged_signature_is_403_and_changes_nothing(local: LocalRuntime) -> None:
    profile = _person(local)
    unsubscribe, preferences = _links(local, profile)
    forged = unsubscribe[:-4] + ("AAAA" if not unsubscribe.endswith("AAAA") else "BBBB")
    status, html = _page(local, "POST", forged)
    assert status == 403 and "not valid" in html
    assert _ticked(local, preferences, "marketing/email")


def test_a_token_signed_with_another_key_is_403(local: LocalRuntime) -> None:
    profile = _person(local)
    other = LinkSigner(secrets.token_bytes(32))
    token = other.sign(
        LinkClaims.model_validate(
            {"p": "unsubscribe", "pid": profile, "t": "marketing", "c": "email", "exp": 4102444800}
        )
    )
    assert _page(local, "POST", f"/unsubscribe/{token}")[0] == 403


def test_a_truncated_token_is_403(local: LocalRuntime) -> None:
    profile = _person(local)
    unsubscribe, preferences = _links(local, profile)
    for cut in (1, 20, 50):
        assert _page(local, "POST", unsubscribe[:-cut])[0] == 403, cut
    assert _ticked(local, preferences, "marketing/email")


def test_a_preferences_token_on_the_unsubscribe_route_is_403(local: LocalRuntime) -> None:
    profile = _person(local)
    _, preferences = _links(local, profile)
    token = preferences.rsplit("/", 1)[1]
    assert _page(local, "POST", f"/unsubscribe/{token}")[0] == 403
    assert _ticked(local, preferences, "marketing/email")


def test_a_token_expired_by_one_second_on_the_virtual_clock_is_410(local: LocalRuntime) -> None:
    profile = _person(local)
    now = _now(local)
    expires = now.replace(microsecond=0) + timedelta(seconds=60)
    token = _token("unsubscribe", profile, expires, t="marketing", c="email")
    preferences = f"/preferences/{_token('preferences', profile, now + timedelta(days=30))}"
    # One second before its expiry (virtual time) it is valid: GET shows the button
    local.advance((expires - _now(local)).total_seconds() - 1)
    assert _page(local, "GET", f"/unsubscribe/{token}")[0] == 200
    # At its expiry, and a second after, it is gone
    local.advance(1)
    status, html = _page(local, "POST", f"/unsubscribe/{token}")
    assert status == 410 and "expired" in html
    local.advance(1)
    assert _page(local, "POST", f"/unsubscribe/{token}")[0] == 410
    assert _ticked(local, preferences, "marketing/email")


def test_a_token_for_an_erased_profile_is_404(local: LocalRuntime) -> None:
    profile = _person(local)
    unsubscribe, preferences = _links(local, profile)
    status, _ = local.request("DELETE", f"/v1/profiles/{profile}", headers=ADMIN)
    assert status in (200, 202, 204)
    local.advance(0)
    assert _page(local, "POST", unsubscribe)[0] == 404
    assert _page(local, "GET", preferences)[0] == 404
    assert _page(local, "POST", preferences, b"save=1&marketing%2Femail=on", **FORM)[0] == 404


def test_a_huge_token_is_403(local: LocalRuntime) -> None:
    assert _page(local, "POST", "/unsubscribe/" + "A" * 5000 + "." + "B" * 43)[0] == 403
    assert _page(local, "GET", "/preferences/" + "A" * 8000)[0] == 403


@pytest.mark.parametrize(
    "token",
    ["%FF%FE.%00", "not-base64!!", "e30.e30", "..", "%C3%A9%C3%A9.x", "%2e%2e%2f"],
    ids=["non-utf8", "bad-base64", "empty-claims", "dots", "non-ascii", "encoded-traversal"],
)
def test_a_malformed_token_is_403(local: LocalRuntime, token: str) -> None:
    assert _page(local, "POST", f"/unsubscribe/{token}")[0] == 403
    assert _page(local, "GET", f"/preferences/{token}")[0] == 403


def test_raw_non_utf8_bytes_in_the_path_are_refused_not_crashed_on(local: LocalRuntime) -> None:
    """urllib cannot send them: a raw request line with bytes that are not UTF-8."""
    address = urlsplit(local.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        connection.sendall(b"POST /unsubscribe/\xff\xfe.abc HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        answer = connection.recv(4096)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:200]
    assert local.request("GET", "/_local/health")[0] == 200


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_on_the_link_routes_are_not_found(local: LocalRuntime, method: str) -> None:
    """As API Gateway answers a method no route declares (the other APIs' behaviour too)."""
    profile = _person(local)
    unsubscribe, preferences = _links(local, profile)
    assert local.raw(method, unsubscribe)[0] == 404
    assert local.raw(method, preferences)[0] == 404
    assert _ticked(local, preferences, "marketing/email")


def test_a_preferences_post_without_the_form_changes_nothing(local: LocalRuntime) -> None:
    profile = _person(local)
    _, preferences = _links(local, profile)
    assert _page(local, "POST", preferences, b"", **FORM)[0] == 400
    assert _ticked(local, preferences, "marketing/email")


def test_the_pages_forbid_framing_referrers_and_scripts(local: LocalRuntime) -> None:
    profile = _person(local)
    _, preferences = _links(local, profile)
    status, headers, raw = local.raw("GET", preferences)
    assert status == 200
    assert headers["Referrer-Policy"] == "no-referrer"  # the token must not leak to another site
    assert headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert b"<script" not in raw


# ------------------------------------------------------------------ the gate's emails (after merge)


def test_one_click_on_a_sent_email_stops_marketing_but_not_transactional_mail(local: LocalRuntime) -> None:
    # Given a customer who signs up: the shipped welcome journey emails them at once (marketing)
    email = f"links-{uuid.uuid4().hex[:8]}@example.com"
    user = f"mail-{uuid.uuid4().hex[:8]}"
    assert local.send("identify", {"userId": user, "traits": {"email": email, "first_name": "Ada"}})[0] == 200
    assert local.send("track", {"userId": user, "event": "Signed Up"})[0] == 200
    local.advance(0)
    sent = [m for m in local.messages() if m.get("to") == email and m.get("channel") == "email"]
    assert sent, "the welcome journey mails a customer who signed up"
    headers = sent[0]["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = headers["List-Unsubscribe"].strip("<>")
    assert url.startswith(local.url + "/unsubscribe/")
    assert _page(local, "POST", urlsplit(url).path)[0] == 200
    status, profile = local.request("GET", f"/v1/profiles?userId={user}", headers=ADMIN)
    assert profile["consent"]["marketing"]["email"]["subscribed"] is False

    # Then the next marketing email (the cart reminder, an hour after adding to cart) is dropped as
    # unsubscribed, while a transactional one (the password reset) is still sent.
    assert (
        local.send("track", {"userId": user, "event": "Product Added", "properties": {"cart_id": "c"}})[0]
        == 200
    )
    local.advance(3601)
    [reminder] = local.message_log(journey="cart_abandonment", profileId=profile["profileId"])
    assert (reminder["channel"], reminder["status"], reminder["reason"]) == (
        "email",
        "dropped",
        "unsubscribed",
    )
    reset = {"reset_url": "https://shop.example/reset/abc", "expires_at": "2030-01-07T15:00:00Z"}
    assert (
        local.send("track", {"userId": user, "event": "Password Reset Requested", "properties": reset})[0]
        == 200
    )
    local.advance(0)
    [password] = [m for m in local.messages(journey="password_reset") if m.get("to") == email]
    assert password["topic"] == "transactional"
    assert "List-Unsubscribe" not in (password.get("headers") or {})  # nothing to unsubscribe from


# ------------------------------------------------------------------ the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in (CHROMIUM, CHROMEDRIVER):
        assert Path(binary).is_file(), (
            f"{binary} is missing: `make install` installs chromium and chromium-driver"
        )
    profile_dir = tempfile.mkdtemp(prefix="continuum-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile_dir, ignore_errors=True)


def _loaded(browser: Any, condition: Any) -> Any:
    """What `condition` (selenium's expected_conditions) waits for, once the page the browser goes to
    shows it: a click on submit may return before the answer to the form's POST is loaded."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 30).until(condition)


def test_the_preference_page_in_a_headless_browser(local: LocalRuntime, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import presence_of_element_located

    # Given the preference link of an email (JavaScript plays no part: the page has none)
    profile = _person(local)
    _, preferences = _links(local, profile)
    browser.get(local.url + preferences)
    assert browser.title == "Your email preferences"
    marketing = browser.find_element(By.NAME, "marketing/email")
    updates = browser.find_element(By.NAME, "product_updates/email")
    assert marketing.is_selected() and not updates.is_selected()  # opt_out / opt_in defaults

    # When the person unticks marketing, ticks product updates, and saves
    marketing.click()
    updates.click()
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    # Then the answer (once the browser has loaded it) says Saved and shows the new state
    assert _loaded(browser, presence_of_element_located((By.ID, "saved"))).text == "Saved"
    assert not browser.find_element(By.NAME, "marketing/email").is_selected()
    assert browser.find_element(By.NAME, "product_updates/email").is_selected()
    # And it is stored: a fresh load of the page (a new GET) shows it
    browser.get(local.url + preferences)
    assert not browser.find_element(By.NAME, "marketing/email").is_selected()
    assert browser.find_element(By.NAME, "product_updates/email").is_selected()
    assert browser.find_element(By.NAME, "marketing/push").is_selected()  # untouched


def test_the_unsubscribe_button_in_a_headless_browser(local: LocalRuntime, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import title_is

    profile = _person(local)
    unsubscribe, preferences = _links(local, profile)
    browser.get(local.url + unsubscribe)
    assert _ticked(local, preferences, "marketing/email")  # loading the page changed nothing
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    assert _loaded(browser, title_is("Unsubscribed"))
    assert not _ticked(local, preferences, "marketing/email")
