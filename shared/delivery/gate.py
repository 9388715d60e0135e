"""The send gate: decide, against the live profile at send time, whether a journey's send happens.

The journey router already stops a journey when its goal arrives; this re-check is the second,
independent guard, so a race between a purchase and a reminder can never leak the reminder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.delivery.templates import TemplateRenderError, render_content
from shared.models.message import SendRequest
from shared.models.profile import IdentifierType, Profile

# Where each channel finds its address on a profile.
ADDRESS: dict[str, IdentifierType] = {"email": "email", "push": "device_token"}


@dataclass(frozen=True)
class Drop:
    reason: str


@dataclass(frozen=True)
class Send:
    to: str
    content: dict[str, str]


def decide(
    request: SendRequest, profile: Profile | None, computed: Mapping[str, Any] | None = None
) -> Drop | Send:
    """`computed`: the profile's computed trait values, `{{ computed.<id> }}` in templates (None or
    empty: it has none)."""
    if profile is None:
        return Drop("profile_not_found")
    if request.goal:
        reached = profile.lastEvents.get(request.goal)
        if reached is not None and reached >= request.enteredAt:
            return Drop("goal_reached")
    if profile.traits.get("unsubscribed") is True:
        return Drop("unsubscribed")
    addresses = profile.values_of(ADDRESS[request.channel])
    if not addresses:
        return Drop(f"no_{request.channel}_address")
    context = {
        "profile": {"traits": profile.traits, "profileId": profile.profileId},
        "trigger": request.trigger,
        "computed": dict(computed or {}),
        # The email footer's links; None until the signed links are wired in (i10-links / i10-gate).
        "links": {"preferences": None, "unsubscribe": None},
    }
    # The newest address is the one the customer last used.
    try:
        content = render_content(request.content, context, layout=request.layout, partials=request.partials)
    except TemplateRenderError:
        # Strict templates: a variable this profile lacks (and no `| default`). Retrying cannot help.
        return Drop("render_failed")
    return Send(to=addresses[-1], content=content)
