"""Identifiers hashed as each ad platform documents (contract first; body follows)."""

from __future__ import annotations

from shared.models.profile import Profile
from shared.models.segments import HashedIdentifier, Platform


def hashed_identifiers(profile: Profile, platform: Platform) -> list[HashedIdentifier]:
    raise NotImplementedError
