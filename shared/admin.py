"""The admin APIs' shared ground (Profile API, Journeys API): who may call them, and their errors.

Errors are types; each handler maps them to an HTTP status in one place."""

from __future__ import annotations

import hashlib
import hmac


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


def authorize(authorization: str | None, token_sha256: str, api: str = "the Profile API") -> None:
    """The admin credential: `Authorization: Bearer <token>`. A write key never opens an admin API."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError(f"{api} needs the admin token: Authorization: Bearer <token>")
    digest = hashlib.sha256(token.strip().encode("utf-8")).hexdigest()
    if not hmac.compare_digest(digest, token_sha256.strip().lower()):
        raise UnauthorizedError("wrong admin token")
