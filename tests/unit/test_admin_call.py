"""How an admin API call opens (shared/admin.py): authorized first, then its method and path parts."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from shared.admin import AdminCall, UnauthorizedError, admin_call

TOKEN = "s3cret-token"
TOKEN_SHA256 = hashlib.sha256(TOKEN.encode()).hexdigest()


def _event(method: str, raw_path: str, authorization: str | None) -> dict[str, Any]:
    headers = {"authorization": authorization} if authorization is not None else {}
    return {"rawPath": raw_path, "headers": headers, "requestContext": {"http": {"method": method}}}


def test_an_authorized_call_gives_its_method_and_decoded_path_parts_after_the_api() -> None:
    call = admin_call(
        _event("DELETE", "/v1/profiles/p-1/identifiers/email/a%40b.c", f"Bearer {TOKEN}"), TOKEN_SHA256, "x"
    )

    assert call == AdminCall("DELETE", ["p-1", "identifiers", "email", "a@b.c"])


def test_the_api_root_has_no_parts() -> None:
    assert admin_call(_event("GET", "/v1/journeys/", f"Bearer {TOKEN}"), TOKEN_SHA256, "x").parts == []


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic czNjcmV0LXRva2Vu", "Bearer wrong"])
def test_a_call_without_the_admin_token_is_refused_before_anything_is_read(authorization: str | None) -> None:
    with pytest.raises(UnauthorizedError) as refused:
        admin_call(_event("GET", "/v1/segments/vip", authorization), TOKEN_SHA256, "the Segments API")

    assert "admin token" in refused.value.message
