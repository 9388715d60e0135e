"""The Profile API's domain: how a lookup names an identifier, what a profile shows (who may call it:
shared/admin.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from pydantic import Field

from shared import clock
from shared.admin import BadRequestError
from shared.identity.identifiers import normalise_email, normalise_phone
from shared.identity.resolver import ConcurrentChangeError
from shared.identity.rules import IdentityRules
from shared.models.base import Model
from shared.models.events import DETAIL_IDENTIFIER_REMOVED, SOURCE_IDENTITY, BusEvent
from shared.models.profile import Identifier, MergeRecord, Profile, TimelineEntry

TIMELINE_LIMIT = 50  # the latest events shown with a profile
# Query parameter → identifier type: GET /v1/profiles?email=…
LOOKUP_PARAMETERS = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "email": "email",
    "phone": "phone",
    "deviceToken": "device_token",
    "deviceId": "device_id",
}


# Error messages name the field and the rule, never the value: it may be an address or a number, and
# error bodies end up in logs and traces.


def identifier_type_of(name: str, rules: IdentityRules) -> str:
    if name not in rules.types:
        raise BadRequestError(f"type: unknown identifier type; one of {', '.join(rules.types)}")
    return name


def normalised(
    identifier_type: str,
    value: str,
    rules: IdentityRules,
    max_bytes: Callable[[str], int],
    field: str = "value",
) -> Identifier:
    """An identifier as the identity function stores it (emails lower-cased, phones in E.164).
    `max_bytes(type)`: the longest value the profile store can key (longer ones are never stored)."""
    limit = max_bytes(identifier_type)
    if len(value.encode("utf-8")) > limit and len(value.strip().encode("utf-8")) > limit:
        raise BadRequestError(f"{field}: longer than {limit} bytes (UTF-8)")
    if identifier_type == "email":
        email = normalise_email(value)
        if email is None:
            raise BadRequestError(f"{field}: not an email address")
        return Identifier(type="email", value=email)
    if identifier_type == "phone":
        phone = normalise_phone(value, rules.phone_region)
        if phone is None:
            raise BadRequestError(f"{field}: not a phone number")
        return Identifier(type="phone", value=phone)
    if not value.strip():
        raise BadRequestError(f"{field}: empty")
    return Identifier(type=identifier_type, value=value.strip())


def identifier_from_query(
    parameters: dict[str, str], rules: IdentityRules, max_bytes: Callable[[str], int]
) -> Identifier:
    named = [(k, LOOKUP_PARAMETERS[k], v) for k, v in parameters.items() if k in LOOKUP_PARAMETERS]
    if len(named) != 1:
        raise BadRequestError(f"look a profile up by exactly one of: {', '.join(LOOKUP_PARAMETERS)}")
    field, identifier_type, value = named[0]
    return normalised(identifier_type, value, rules, max_bytes, field)


class MergeView(Model):
    mergedProfileId: str
    at: str


class TimelineView(Model):
    type: str
    name: str | None = None
    timestamp: str
    messageId: str
    data: dict[str, Any] = Field(default_factory=dict)


class ChannelConsent(Model):
    """One topic on one channel (shared/delivery/consent.py `effective_consent`)."""

    subscribed: bool = Field(description="whether a send of this topic on this channel passes consent")
    source: str | None = Field(
        description="who set the choice (identify, admin, one_click, ...); null: default"
    )
    at: str | None = Field(description="when Continuum received the choice; null: the default decides")
    default: Literal["opt_in", "opt_out"] = Field(description="the topic's default on this channel")
    changeable: bool = Field(description="false for transactional, which cannot be unsubscribed from")


class SuppressionView(Model):
    """One of the profile's addresses no message is sent to again (a hard bounce)."""

    channel: str
    address: str
    reason: str
    at: str
    source: str


class ProfileView(Model):
    """A profile as the Profile API shows it."""

    profileId: str
    identifiers: list[Identifier]
    traits: dict[str, Any]
    createdAt: str
    updatedAt: str
    mergedFrom: list[str] = Field(description="profile ids merged into this one; each still resolves here")
    merges: list[MergeView] = Field(description="merges into this profile that can be undone")
    timeline: list[TimelineView] = Field(
        description=f"the latest events, newest first (at most {TIMELINE_LIMIT})"
    )
    consent: dict[str, dict[str, ChannelConsent]] = Field(
        default_factory=dict,
        description="per subscription topic and channel, whether a send passes consent, and why",
    )
    suppressions: list[SuppressionView] = Field(
        default_factory=list, description="the profile's addresses no message is sent to again"
    )


def view(
    profile: Profile,
    merges: list[MergeRecord],
    timeline: list[TimelineEntry],
    consent: dict[str, dict[str, dict[str, Any]]] | None = None,
    suppressions: list[SuppressionView] | None = None,
) -> dict[str, Any]:
    return ProfileView(
        profileId=profile.profileId,
        identifiers=profile.identifiers,
        traits=profile.traits,
        createdAt=profile.createdAt,
        updatedAt=profile.updatedAt,
        mergedFrom=profile.mergedFrom,
        merges=[MergeView(mergedProfileId=m.merged.profileId, at=m.at) for m in merges],
        timeline=[TimelineView.model_validate(e.model_dump(exclude={"profileId"})) for e in timeline],
        consent=consent or {},
        suppressions=suppressions or [],
    ).model_dump(mode="json")


# -- removing an identifier (the Profile API's DELETE, and a push token SNS reports disabled) -------


class ProfileChange(Model):
    """The data of the Profile API's change events (`profile.unmerged`, `identifier.removed`, ...)."""

    profileId: str
    detail: dict[str, Any]


def change_event(name: str, profile_id: str, detail: dict[str, Any]) -> BusEvent:
    change = ProfileChange(profileId=profile_id, detail=detail)
    return BusEvent.publishing(SOURCE_IDENTITY, name, profile_id, clock.iso(clock.now()), change)


class IdentifierStore(Protocol):
    def owner_of(self, identifier: Identifier) -> Profile | None: ...

    def remove_identifier(self, profile: Profile, identifier: Identifier) -> None:
        """Conditional on the profile's version: `ConcurrentChangeError` if it changed meanwhile."""
        ...


class Publisher(Protocol):
    def publish(self, events: Sequence[BusEvent]) -> Any: ...


def remove_identifier(
    store: IdentifierStore, publisher: Publisher, profile: Profile, identifier: Identifier
) -> None:
    """Take the identifier off the profile, and say so on the bus: segments and ad audiences drop its
    hashes (only the type travels, never the value)."""
    store.remove_identifier(profile, identifier)
    publisher.publish([change_event(DETAIL_IDENTIFIER_REMOVED, profile.profileId, {"type": identifier.type})])


FORGET_ATTEMPTS = 5


def forget_identifier(store: IdentifierStore, publisher: Publisher, identifier: Identifier) -> str | None:
    """Remove an identifier from whichever live profile holds it (a push token SNS reports disabled):
    the profile's id, or None when no profile holds it (any more). A concurrent change of the profile
    is read again."""
    for _ in range(FORGET_ATTEMPTS):
        profile = store.owner_of(identifier)
        if profile is None or identifier not in profile.identifiers:
            return None
        try:
            remove_identifier(store, publisher, profile, identifier)
            return profile.profileId
        except ConcurrentChangeError:
            continue
    raise ConcurrentChangeError(f"the profile kept changing over {FORGET_ATTEMPTS} attempts")
