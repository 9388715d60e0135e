"""A profile's emails and phones, normalised and SHA-256 hashed as each ad platform documents.

Emails: trimmed and lower-cased, then SHA-256 (hex, lower case), for both platforms.
Phones: identity keeps them in E.164 (shared/identity/identifiers.py `normalise_phone`, e.g.
`+14155552671`).
- Meta Custom Audiences (`PHONE` / `PHONE_SHA256`, https://developers.facebook.com/docs/marketing-api/
  custom-audience-api → "Hashing and Normalizing Data"): remove symbols, letters and any leading
  zeroes; prefix the country code: digits only, so `+14155552671` is hashed as `14155552671` (a
  leading `+` gets no match).
- Google Ads Customer Match (`UserIdentifier.hashed_email` / `hashed_phone_number`,
  https://developers.google.com/google-ads/api/reference/rpc/latest/UserIdentifier): trim and
  lower-case emails; phones in E.164 format, `+` included (`+16502531234`), before hashing.
Nothing here logs: these are personal data.
"""

from __future__ import annotations

import hashlib

from shared.models.profile import Profile
from shared.models.segments import HashedIdentifier, Platform


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalised_email(value: str) -> str:
    return value.strip().lower()


def normalised_phone(e164: str, platform: Platform) -> str:
    """The E.164 phone as `platform` hashes it: Google keeps the `+`, Meta takes digits only."""
    digits = "".join(c for c in e164 if c.isdigit())
    return f"+{digits}" if platform == "google" else digits


def hashes_by_kind(profile: Profile, platform: Platform) -> dict[str, list[str]]:
    """{"email": [sha256...], "phone": [sha256...]} for `platform`, each sorted, empty kinds left out."""
    emails = sorted({_sha256(normalised_email(v)) for v in profile.values_of("email") if v.strip()})
    phones = sorted(
        {
            _sha256(normalised_phone(v, platform))
            for v in profile.values_of("phone")
            if any(c.isdigit() for c in v)
        }
    )
    return {kind: values for kind, values in (("email", emails), ("phone", phones)) if values}


def hashed_identifiers(profile: Profile, platform: Platform) -> list[HashedIdentifier]:
    """Every email and phone of the profile, hashed for `platform`: emails first, each sorted, no repeats."""
    return [
        HashedIdentifier(kind=kind, sha256=h)  # type: ignore[arg-type]
        for kind, values in hashes_by_kind(profile, platform).items()
        for h in values
    ]
