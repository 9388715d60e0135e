"""Which identifiers a Segment call names, normalised so that one person matches one value.

A value that cannot be normalised (an email without a domain, a phone that is not a number) or that
is blocked (`null`, `anonymous`, all zeros, …) is left out of matching with a warning, never an error.
Warnings name the identifier's type and the reason, never its value: they are logged.
"""

from __future__ import annotations

from typing import Any

from shared.identity.rules import IdentityRules
from shared.models.profile import Identifier


def normalise_email(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    ok = local and at and "." in domain.strip(".") and " " not in email and "@" not in domain
    return email if ok else None


def normalise_phone(value: object, region: str) -> str | None:
    """E.164 (+14155552671), or None when it is not a valid phone number."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    import phonenumbers  # imported on first use: most events carry no phone

    try:
        number = phonenumbers.parse(str(value), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def user_traits(call: dict[str, Any]) -> dict[str, Any]:
    """The traits a call states about the user: `context.traits`, and an identify's `traits` (a
    group's traits are the group's)."""
    own = _mapping(call.get("traits")) if call.get("type") == "identify" else {}
    return {**_mapping(_mapping(call.get("context")).get("traits")), **own}


def _plain(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        text = str(value).strip()
        return text or None
    return None


def identifiers_of(call: dict[str, Any], rules: IdentityRules) -> tuple[list[Identifier], list[str]]:
    """The call's identifiers, normalised and deduplicated, and a warning for each value left out."""
    found: list[Identifier] = []
    warnings: list[str] = []
    context = _mapping(call.get("context"))
    traits = user_traits(call)
    device = _mapping(context.get("device"))

    def add(identifier_type: str, raw: object, normalised: str | None) -> None:
        if raw is None or raw == "":
            return
        if normalised is None:
            warnings.append(f"{identifier_type} left out of matching: not a valid {identifier_type}")
            return
        if rules.is_blocked(normalised):
            warnings.append(f"{identifier_type} left out of matching: a blocked placeholder value")
            return
        found.append(Identifier(type=identifier_type, value=normalised))

    add("user_id", call.get("userId"), _plain(call.get("userId")))
    add("anonymous_id", call.get("anonymousId"), _plain(call.get("anonymousId")))
    if call.get("type") == "alias":
        # Alias links the id a user had before (typically the anonymous id before sign-up) to userId.
        add("anonymous_id", call.get("previousId"), _plain(call.get("previousId")))
    add("email", traits.get("email"), normalise_email(traits.get("email")))
    if traits.get("phone") not in (None, ""):
        add("phone", traits.get("phone"), normalise_phone(traits.get("phone"), rules.phone_region))
    add("device_token", device.get("token"), _plain(device.get("token")))
    add("device_id", device.get("id"), _plain(device.get("id")))
    external = context.get("externalIds") if isinstance(context.get("externalIds"), list) else []
    assert isinstance(external, list)
    for custom in rules.custom:
        if custom.trait:
            add(custom.type, traits.get(custom.trait), _plain(traits.get(custom.trait)))
        if custom.external_id_type:
            for entry in external:
                if isinstance(entry, dict) and entry.get("type") == custom.external_id_type:
                    add(custom.type, entry.get("id"), _plain(entry.get("id")))
    return list(dict.fromkeys(found)), warnings
