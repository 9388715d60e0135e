"""The send gate: decide, against the live profile at send time, whether a journey's send happens.

One order for every message (README, "The send gate"), the first check that stops it gives the
reason recorded in the message log:

1. profile exists                    `profile_not_found`
2. journey exit / goal reached       `goal_reached`
3. consent                           `unsubscribed`, `not_opted_in`
4. suppression                       `suppressed_bounce` (every address of the channel suppressed)
5. frequency caps                    `capped` (dropped) or deferred `deferred_capped`
6. quiet hours                       deferred `deferred_quiet_hours`
7. an address for the channel        `no_<channel>_address`
8. render                            `render_failed` (the detail names field / line / variable)
9. enqueue                           `queued`

The `transactional` topic skips consent opt-outs, caps and quiet hours, never a suppression.

The journey router already stops a journey when its goal arrives; the goal re-check here is the
second, independent guard, so a race between a purchase and a reminder can never leak the reminder.
Everything here is pure: the facts are read before (shared/store/caps.py), the outcome committed after
(shared/store/messages.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.delivery.caps import Allowed, CapCheck, CapWrite, check_caps
from shared.delivery.consent import consent_reason
from shared.delivery.quiet_hours import effective_quiet_hours, quiet_until, recipient_zone
from shared.delivery.templates import TemplateRenderError, render_content
from shared.models.message import SendRequest
from shared.models.policy import TRANSACTIONAL, ConsentRecord, Policy
from shared.models.profile import IdentifierType, Profile

# Where each channel finds its address on a profile.
ADDRESS: dict[str, IdentifierType] = {"email": "email", "push": "device_token"}


@dataclass(frozen=True)
class Drop:
    reason: str
    detail: str | None = None  # render_failed: where (field, line, variable), never a value


@dataclass(frozen=True)
class Defer:
    reason: str  # deferred_quiet_hours | deferred_capped
    until: datetime


@dataclass(frozen=True)
class Send:
    to: str
    content: dict[str, str]
    headers: dict[str, str] | None = None
    cap_writes: tuple[CapWrite, ...] = ()


Decision = Drop | Defer | Send


@dataclass(frozen=True)
class GateFacts:
    """What the gate reads besides the profile, in one batched read (shared/store/caps.py)."""

    consent: Mapping[str, ConsentRecord] = field(default_factory=dict)  # consent_key → newest record
    suppressed: frozenset[str] = frozenset()  # the channel's addresses that are suppressed
    caps: Sequence[CapCheck] = ()


class EmailLinks(Protocol):
    """An email's signed links and its one-click headers (shared/delivery/links.py, i10-links)."""

    @property
    def unsubscribe_url(self) -> str | None: ...

    @property
    def preferences_url(self) -> str: ...

    @property
    def headers(self) -> dict[str, str]: ...


# (profile id, topic, channel, now) → the email's links; None: links are not configured.
LinkMaker = Callable[[str, str, str, datetime], EmailLinks]


class Renderer(Protocol):
    """shared/delivery/templates.py `render_content`."""

    def __call__(
        self,
        content: dict[str, str],
        context: dict[str, Any],
        *,
        layout: dict[str, str] | None = None,
        partials: dict[str, str] | None = None,
    ) -> dict[str, str]: ...


# (policy, topic, channel, records, traits) → the reason the person's consent stops the send, or None.
ConsentRule = Callable[..., "str | None"]


def topic_of(request: SendRequest, policy: Policy) -> str:
    return request.topic or policy.default_topic


def decide(
    request: SendRequest,
    profile: Profile | None,
    facts: GateFacts,
    policy: Policy,
    now: datetime,
    *,
    first_deferred_at: datetime | None = None,
    computed: Mapping[str, Any] | None = None,
    links: LinkMaker | None = None,
    consent: ConsentRule = consent_reason,
    render: Renderer = render_content,
) -> Decision:
    """`computed`: the profile's computed trait values, `{{ computed.<id> }}` in templates (None or
    empty: it has none). `first_deferred_at`: when this message was first deferred (a re-run)."""
    if profile is None:
        return Drop("profile_not_found")
    if request.goal:
        reached = profile.lastEvents.get(request.goal)
        if reached is not None and reached >= request.enteredAt:
            return Drop("goal_reached")
    topic = topic_of(request, policy)
    if topic not in policy.topics:
        return Drop("unknown_topic")  # the policy changed under a running journey: no rules to apply
    reason = consent(policy, topic, request.channel, facts.consent, profile.traits, profile.traitTimes)
    if reason is not None:
        return Drop(reason)
    addresses = profile.values_of(ADDRESS[request.channel])
    usable = [address for address in addresses if address not in facts.suppressed]
    if addresses and not usable:
        return Drop("suppressed_bounce")
    transactional = topic == TRANSACTIONAL
    zone = recipient_zone(profile, policy)
    writes: tuple[CapWrite, ...] = ()
    if not transactional and facts.caps:
        verdict = check_caps(facts.caps, request.message_key, now, zone, first_deferred_at)
        if not isinstance(verdict, Allowed):
            return Drop("capped") if verdict.drop else Defer("deferred_capped", verdict.until)
        writes = verdict.writes
    if not transactional:
        until = quiet_until(now, zone, effective_quiet_hours(policy, request.quietHours))
        if until is not None:
            return Defer("deferred_quiet_hours", until)
    if not usable:
        return Drop(f"no_{request.channel}_address")
    email_links = (
        links(profile.profileId, topic, request.channel, now)
        if links and request.channel == "email"
        else None
    )
    context = {
        "profile": {"traits": profile.traits, "profileId": profile.profileId},
        "trigger": request.trigger,
        "computed": dict(computed or {}),
        "links": {
            "unsubscribe": email_links.unsubscribe_url if email_links else None,
            "preferences": email_links.preferences_url if email_links else None,
        },
    }
    try:
        content = render(request.content, context, layout=request.layout, partials=request.partials)
    except TemplateRenderError as error:
        # Strict templates: a variable this profile lacks (and no `| default`). Retrying cannot help.
        return Drop("render_failed", _render_detail(error))
    # The newest address is the one the customer last used.
    return Send(
        to=usable[-1],
        content=content,
        headers=dict(email_links.headers) if email_links and email_links.headers else None,
        cap_writes=writes,
    )


def _render_detail(error: Exception) -> str:
    """Where a template failed (field, line, variable): the renderer's error carries no values."""
    parts = [
        f"{name}={getattr(error, name)}"
        for name in ("field", "line", "variable")
        if getattr(error, name, None)
    ]
    return ", ".join(parts) or type(error).__name__
