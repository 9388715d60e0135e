"""The unified profile, the identifiers that resolve to it, and what is kept about its history."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field

from shared.models.base import Model
from shared.models.types import ProfileId

# Built-in types: user_id, anonymous_id, email, phone, device_token, device_id; more are declared in
# the identity rules (shared/identity/rules.py), e.g. loyalty_id.
IdentifierType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")]


class Identifier(Model):
    model_config = ConfigDict(frozen=True)

    type: IdentifierType
    # No length limit here: the profile store leaves out a value too long for its keys (a warning,
    # never an error), and ingest refuses one it can never store.
    value: str = Field(min_length=1)


class Profile(Model):
    profileId: ProfileId
    identifiers: list[Identifier] = Field(default_factory=list)
    traits: dict[str, Any] = Field(default_factory=dict)
    # When each trait was last set (event time): on a merge, the more recent value of a trait wins.
    traitTimes: dict[str, str] = Field(default_factory=dict)
    # Latest time (ISO, UTC) each track event was seen: the send gate checks goals against it.
    lastEvents: dict[str, str] = Field(default_factory=dict)
    latestEventAt: str | None = None
    # The IANA time zone (`context.timezone`) of the latest event that named a valid one: journeys'
    # local-time waits use it when the profile has no `timezone` trait.
    timezone: str | None = None
    mergedInto: ProfileId | None = None
    mergedFrom: list[ProfileId] = Field(default_factory=list)
    createdAt: str
    updatedAt: str
    version: int = 0

    def values_of(self, identifier_type: str) -> list[str]:
        return [i.value for i in self.identifiers if i.type == identifier_type]

    @property
    def user_id(self) -> str | None:
        values = self.values_of("user_id")
        return values[0] if values else None


class TimelineEntry(Model):
    """One event in a profile's timeline (what the Profile API shows, newest first)."""

    profileId: ProfileId
    type: str
    name: str | None = None  # the track event's name, or the page / screen name
    timestamp: str
    messageId: str
    data: dict[str, Any] = Field(default_factory=dict)  # properties, or traits


class MergeRecord(Model):
    """One merge, kept so that it can be undone: what the merged profile was when it was merged."""

    survivor: ProfileId
    merged: Profile
    at: str
