"""boto3 clients, created once per process on first use (not at import: cold start)."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def client(service: str) -> Any:
    import boto3

    return boto3.client(service)


def reset() -> None:
    """Forget clients (the local runtime and tests swap the AWS backend underneath)."""
    client.cache_clear()


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    code: str = response.get("Error", {}).get("Code", "")
    return code


class TableStore:
    """Base of the stores over one DynamoDB table: the table name, and a client (given, or the shared one)."""

    def __init__(self, table: str, dynamodb: Any = None):
        self._table = table
        self._client = dynamodb

    @property
    def _db(self) -> Any:
        return self._client or client("dynamodb")
