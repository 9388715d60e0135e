"""boto3 clients, created once per process on first use (not at import: cold start)."""

from __future__ import annotations

from collections.abc import Iterator
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
    def table(self) -> str:
        return self._table

    @property
    def _db(self) -> Any:
        return self._client or client("dynamodb")

    def _items(self, operation: str, **request: Any) -> Iterator[dict[str, Any]]:
        """Every item a Query or Scan returns, page after page (the table name is added)."""
        request = {"TableName": self._table, **request}
        while True:
            response = getattr(self._db, operation)(**request)
            yield from response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
