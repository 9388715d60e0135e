"""Identity resolution rules: configuration, validated, with the defaults documented in the README.

Set them with the `IDENTITY_RULES` environment variable (JSON; `continuum:IDENTITY_RULES` in cdk.json,
`CONTINUUM_IDENTITY_RULES` for the local runtime). Anything left out keeps its default.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache

from pydantic import ConfigDict, Field, field_validator, model_validator

from shared.models.base import Model

BUILT_IN_TYPES = ("user_id", "anonymous_id", "email", "phone", "device_token", "device_id")
DEFAULT_BLOCKED = ("", "null", "undefined", "none", "nil", "nan", "anonymous", "unknown", "n/a", "-")
_ALL_ZERO = re.compile(r"^[0\-\s]+$")  # 0, 000000, 00000000-0000-0000-0000-000000000000


class CustomIdentifier(Model):
    """An identifier type of your own, read from a trait or from `context.externalIds`."""

    model_config = ConfigDict(extra="forbid")  # a misspelt rule fails loudly

    type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    trait: str | None = Field(default=None, description="trait name holding it, e.g. loyaltyId")
    external_id_type: str | None = Field(default=None, description="its `type` in context.externalIds")

    @model_validator(mode="after")
    def _has_a_source(self) -> CustomIdentifier:
        if not (self.trait or self.external_id_type):
            raise ValueError(f"custom identifier {self.type!r} needs a trait or an external_id_type")
        if self.type in BUILT_IN_TYPES:
            raise ValueError(f"{self.type!r} is a built-in identifier type")
        return self


class IdentityRules(Model):
    model_config = ConfigDict(extra="forbid")  # a misspelt rule fails loudly

    limits: dict[str, int] = Field(
        default_factory=lambda: {"user_id": 1}, description="most identifiers of a type on one profile"
    )
    default_limit: int = Field(default=5, ge=1, description="the limit of a type not named in limits")
    priority: list[str] = Field(
        default_factory=lambda: ["user_id", "email", "phone"],
        description="which identifier decides when identifiers lead to profiles that cannot merge; "
        "types not named follow, in the order: device_token, device_id, custom types, anonymous_id",
    )
    blocked: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BLOCKED),
        description="values never used for matching (compared case-insensitively); all-zero ids too",
    )
    custom: list[CustomIdentifier] = Field(default_factory=list)
    phone_region: str = Field(default="US", pattern=r"^[A-Z]{2}$", description="region of phones without +")

    @field_validator("limits")
    @classmethod
    def _one_user_id(cls, limits: dict[str, int]) -> dict[str, int]:
        if limits.get("user_id", 1) != 1:
            raise ValueError("a profile has at most one user_id: two users are never merged")
        if any(limit < 1 for limit in limits.values()):
            raise ValueError("limits are at least 1")
        return {**limits, "user_id": 1}

    @property
    def types(self) -> list[str]:
        return [*BUILT_IN_TYPES, *(c.type for c in self.custom)]

    def limit(self, identifier_type: str) -> int:
        return self.limits.get(identifier_type, self.default_limit)

    def rank(self, identifier_type: str) -> int:
        """Lower is stronger."""
        # Types the priority leaves out keep their default order after it.
        default = [
            "user_id",
            "email",
            "phone",
            "device_token",
            "device_id",
            *(c.type for c in self.custom),
            "anonymous_id",
        ]
        order = [*self.priority, *(t for t in default if t not in self.priority)]
        return order.index(identifier_type) if identifier_type in order else len(order)

    def is_blocked(self, value: str) -> bool:
        lowered = value.strip().lower()
        return lowered in self._blocked_set or bool(_ALL_ZERO.match(lowered))

    @property
    def _blocked_set(self) -> frozenset[str]:
        return frozenset(v.strip().lower() for v in self.blocked)


@cache
def load_rules() -> IdentityRules:
    raw = os.environ.get("IDENTITY_RULES", "").strip()
    return IdentityRules.model_validate(json.loads(raw)) if raw else IdentityRules()
