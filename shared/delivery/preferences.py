"""The unsubscribe and preference pages behind the links of every email (shared/delivery/links.py).

The token in the path is the credential: a forged one is answered 403, an expired one 410, a profile
that no longer exists (erased) 404, each with a page saying so and nothing changed. GET never changes
anything (mail scanners follow links); POST /unsubscribe/{token} is RFC 8058's one-click unsubscribe
(any body), POST /preferences/{token} stores the form's boxes. Pages are plain HTML forms, no
JavaScript, and everything put in them is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared import clock
from shared.delivery.consent import effective_consent
from shared.delivery.links import ExpiredLinkError, ForgedLinkError, LinkClaims, LinkSigner, Purpose
from shared.models.policy import CHANNELS, TRANSACTIONAL, ConsentRecord, ConsentSource, Policy, consent_key
from shared.models.profile import Profile

# The hidden field every preference form carries: a POST without it (an empty body from a bot, a
# scanner) is refused rather than read as "untick everything".
SAVE_FIELD = "save"
CHANNEL_NAMES = {"email": "Email", "push": "Push notifications"}


class Profiles(Protocol):
    def profile(self, profile_id: str) -> Profile | None:
        """The live profile, following merges; None if there is none (never was, or erased)."""
        ...


class Consents(Protocol):
    def record(self, profile_id: str, changes: Mapping[str, ConsentRecord]) -> bool: ...

    def consent(self, profile: Profile) -> dict[str, ConsentRecord]: ...


@dataclass(frozen=True)
class Page:
    status: int
    title: str
    body: str  # HTML, already escaped
    outcome: str  # for metrics: unsubscribed, saved, shown, forged, expired, unknown_profile, bad_form


@dataclass(frozen=True)
class Pages:
    signer: LinkSigner
    policy: Policy
    profiles: Profiles
    consents: Consents

    def answer(self, method: str, kind: Purpose, token: str, form: Mapping[str, list[str]]) -> Page:
        now = clock.now()
        try:
            claims = self.signer.verify(token, kind, now)
        except ExpiredLinkError:
            return _message(410, "This link has expired", _EXPIRED, "expired")
        except ForgedLinkError:
            return _message(403, "This link is not valid", _FORGED, "forged")
        profile = self.profiles.profile(claims.profile_id)
        if profile is None:
            return _message(404, "We have no profile for this link", _UNKNOWN, "unknown_profile")
        match (kind, method):
            case ("unsubscribe", "GET"):
                return self._confirm_unsubscribe(claims)
            case ("unsubscribe", "POST"):
                return self._unsubscribe(claims, profile, now)
            case ("preferences", "GET"):
                return self._preferences(profile, saved=False)
            case ("preferences", "POST"):
                return self._save(profile, form, now)
        return _message(405, "Method not allowed", "<p>Use the link or the form.</p>", "bad_method")

    def _topic_name(self, topic: str | None) -> str:
        described = self.policy.topics.get(topic or "")
        return described.description if described is not None and described.description else (topic or "")

    def _confirm_unsubscribe(self, claims: LinkClaims) -> Page:
        what = _esc(self._topic_name(claims.topic))
        channel = _esc(CHANNEL_NAMES.get(claims.channel or "", claims.channel or ""))
        body = (
            f"<p>Stop receiving <strong>{what}</strong> ({channel})?</p>"
            '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        return Page(200, "Unsubscribe", body, "shown")

    def _unsubscribe(self, claims: LinkClaims, profile: Profile, now: datetime) -> Page:
        if claims.topic is None or claims.channel is None or claims.topic == TRANSACTIONAL:
            return _message(403, "This link is not valid", _FORGED, "forged")
        change = {consent_key(claims.topic, claims.channel): _choice(False, "one_click", now)}
        if not self.consents.record(profile.profileId, change):
            return _message(404, "We have no profile for this link", _UNKNOWN, "unknown_profile")
        what = _esc(self._topic_name(claims.topic))
        channel = _esc(CHANNEL_NAMES.get(claims.channel, claims.channel))
        return Page(
            200,
            "Unsubscribed",
            f"<p>You are unsubscribed from <strong>{what}</strong> ({channel}).</p>",
            "unsubscribed",
        )

    def _boxes(self) -> list[tuple[str, str]]:
        return [
            (topic, channel) for topic in self.policy.topics if topic != TRANSACTIONAL for channel in CHANNELS
        ]

    def _save(self, profile: Profile, form: Mapping[str, list[str]], now: datetime) -> Page:
        if SAVE_FIELD not in form:
            return _message(400, "Nothing to save", "<p>Use the form on the preference page.</p>", "bad_form")
        changes = {
            consent_key(topic, channel): _choice(consent_key(topic, channel) in form, "preferences", now)
            for topic, channel in self._boxes()
        }
        if not self.consents.record(profile.profileId, changes):
            return _message(404, "We have no profile for this link", _UNKNOWN, "unknown_profile")
        return self._preferences(profile, saved=True)

    def _preferences(self, profile: Profile, saved: bool) -> Page:
        effective = effective_consent(
            self.policy, self.consents.consent(profile), profile.traits, profile.traitTimes
        )
        rows = []
        for topic_id, topic in self.policy.topics.items():
            cells = []
            for channel in CHANNELS:
                key = consent_key(topic_id, channel)
                if topic_id == TRANSACTIONAL:
                    cells.append("<td>always sent</td>")
                    continue
                checked = " checked" if effective[topic_id][channel]["subscribed"] else ""
                label = f"{topic.description or topic_id}: {CHANNEL_NAMES.get(channel, channel)}"
                cells.append(
                    f'<td><input type="checkbox" id="{_esc(key)}" name="{_esc(key)}" value="on"{checked}'
                    f' aria-label="{_esc(label)}"></td>'
                )
            rows.append(
                f'<tr><th scope="row">{_esc(topic.description or topic_id)}'
                f" <small>({_esc(topic_id)})</small></th>{''.join(cells)}</tr>"
            )
        head = "".join(f'<th scope="col">{_esc(CHANNEL_NAMES.get(c, c))}</th>' for c in CHANNELS)
        notice = '<p role="status" id="saved"><strong>Saved</strong></p>' if saved else ""
        body = (
            f"{notice}<p>Choose what we may send you.</p>"
            f'<form method="post"><input type="hidden" name="{SAVE_FIELD}" value="1">'
            f"<table><thead><tr><th>Topic</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            '<button type="submit">Save</button></form>'
        )
        return Page(200, "Your email preferences", body, "saved" if saved else "shown")


def _choice(subscribed: bool, source: ConsentSource, now: datetime) -> ConsentRecord:
    return ConsentRecord(subscribed=subscribed, source=source, at=clock.iso(now))


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


_FORGED = "<p>This link was not issued by us, or it was changed on its way. Nothing was changed.</p>"
_EXPIRED = "<p>This link is too old to use. Nothing was changed: use the link in a more recent email.</p>"
_UNKNOWN = "<p>There is no longer a profile for this link (it may have been erased). Nothing was changed.</p>"


def _message(status: int, title: str, body: str, outcome: str) -> Page:
    return Page(status, title, body, outcome)


def render(page: Page) -> str:
    """The whole document: a small inline style, no script, no external resource."""
    title = _esc(page.title)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{title}</h1>{page.body}</main></body></html>"
    )


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}th,td{padding:.4rem .8rem;text-align:left}"
    "button{padding:.5rem 1.2rem;margin-top:1rem}"
)
