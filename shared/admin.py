"""The admin APIs' shared ground (Profile, Journeys and Segments APIs): who may call them, how a call
opens, and their errors.

Errors are types; each handler maps them to an HTTP status in one place."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, NamedTuple
from urllib.parse import unquote


class ApiError(Exception):
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequestError(ApiError):
    status = 400


class UnauthorizedError(ApiError):
    status = 401


class NotFoundError(ApiError):
    status = 404


class ConflictError(ApiError):
    status = 409


def authorize(authorization: str | None, token_sha256: str, api: str) -> None:
    """The admin credential: `Authorization: Bearer <token>`. A write key never opens an admin API."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError(f"{api} needs the admin token: Authorization: Bearer <token>")
    digest = hashlib.sha256(token.strip().encode("utf-8")).hexdigest()
    if not hmac.compare_digest(digest, token_sha256.strip().lower()):
        raise UnauthorizedError("wrong admin token")


class AdminCall(NamedTuple):
    """An authorized admin call: its method, and its path's parts after `/v1/<api>`, decoded
    (`GET /v1/profiles/p-1/consent` is `("GET", ["p-1", "consent"])`)."""

    method: str
    parts: list[str]


def admin_call(event: dict[str, Any], token_sha256: str, api: str) -> AdminCall:
    """Open an API Gateway (HTTP API) call to an admin API: authorize it (UnauthorizedError), then
    say what it asks."""
    authorize((event.get("headers") or {}).get("authorization"), token_sha256, api)
    method = event.get("requestContext", {}).get("http", {}).get("method", "")
    parts = [unquote(p) for p in event.get("rawPath", "").strip("/").split("/")]
    return AdminCall(method, parts[2:])


def no_route(method: str) -> dict[str, Any]:
    """The answer for a method and path the API has no route for (the path may hold an address, so
    it is not repeated)."""
    return json_response(404, {"error": f"no such route for {method}"})


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway proxy answer with a JSON body."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
    }


def error_response(error: ApiError, realm: str) -> dict[str, Any]:
    """The answer for an API error; a 401 names the realm whose credential is wanted."""
    headers = {"WWW-Authenticate": f'Bearer realm="{realm}"'} if error.status == 401 else {}
    return json_response(error.status, {"error": error.message}, headers)
