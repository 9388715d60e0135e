"""Identifier builders shared by the identity tests: `user("u-1")` reads better than the model."""

from __future__ import annotations

from shared.models.profile import Identifier


def user(value: str) -> Identifier:
    return Identifier(type="user_id", value=value)


def anon(value: str) -> Identifier:
    return Identifier(type="anonymous_id", value=value)


def email(value: str) -> Identifier:
    return Identifier(type="email", value=value)


def phone(value: str) -> Identifier:
    return Identifier(type="phone", value=value)


def token(value: str) -> Identifier:
    return Identifier(type="device_token", value=value)
