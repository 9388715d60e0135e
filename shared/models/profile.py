"""The unified profile and the identifiers that resolve to it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from shared.models.base import Model
from shared.models.types import ProfileId

IdentifierType = Literal["user_id", "anonymous_id", "email", "device_token"]


class Identifier(Model):
    model_config = ConfigDict(frozen=True)

    type: IdentifierType
    value: str = Field(min_length=1)


class Profile(Model):
    profileId: ProfileId
    identifiers: list[Identifier] = Field(default_factory=list)
    traits: dict[str, Any] = Field(default_factory=dict)
    # Latest time (ISO, UTC) each track event was seen: the send gate checks goals against it.
    lastEvents: dict[str, str] = Field(default_factory=dict)
    mergedInto: ProfileId | None = None
    mergedFrom: list[ProfileId] = Field(default_factory=list)
    createdAt: str
    updatedAt: str
    version: int = 0

    def values_of(self, identifier_type: IdentifierType) -> list[str]:
        return [i.value for i in self.identifiers if i.type == identifier_type]

    @property
    def user_id(self) -> str | None:
        values = self.values_of("user_id")
        return values[0] if values else None
