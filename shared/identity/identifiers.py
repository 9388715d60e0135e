"""Which identifiers a Segment call names, normalised so that one person matches one value."""

from __future__ import annotations

from typing import Any

from shared.models.profile import Identifier


def normalise_email(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    return email if local and at and "." in domain and " " not in email else None


def user_traits(call: dict[str, Any]) -> dict[str, Any]:
    """The traits a call states about the user: an identify's `traits` (a group's are the group's)."""
    traits = call.get("traits") if call.get("type") == "identify" else None
    return traits if isinstance(traits, dict) else {}


def identifiers_of(call: dict[str, Any]) -> list[Identifier]:
    """userId, anonymousId, email (traits or context.traits) and device push token, deduplicated."""
    found: list[Identifier] = []
    context = call.get("context") or {}
    if call.get("userId"):
        found.append(Identifier(type="user_id", value=str(call["userId"])))
    if call.get("anonymousId"):
        found.append(Identifier(type="anonymous_id", value=str(call["anonymousId"])))
    if call.get("type") == "alias" and call.get("previousId"):
        # Alias links the id a user had before (typically the anonymous id before sign-up) to userId.
        found.append(Identifier(type="anonymous_id", value=str(call["previousId"])))
    for traits in (user_traits(call), context.get("traits")):
        email = normalise_email((traits or {}).get("email"))
        if email:
            found.append(Identifier(type="email", value=email))
    token = (context.get("device") or {}).get("token")
    if isinstance(token, str) and token.strip():
        found.append(Identifier(type="device_token", value=token.strip()))
    return list(dict.fromkeys(found))
