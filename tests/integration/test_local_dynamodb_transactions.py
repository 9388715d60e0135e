"""The local runtime's DynamoDB transactions (moto's, with an item-level rollback): a cancelled
transaction leaves every item as it was, and a committed one writes them all."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.local.engine import LocalEngine
from tests.integration.conftest import client

TABLE = "continuum-journey-runs"


def _key(profile: str, run: str) -> dict[str, Any]:
    return {"profileId": {"S": profile}, "runKey": {"S": run}}


def _get(key: dict[str, Any]) -> dict[str, Any] | None:
    item: dict[str, Any] | None = client("dynamodb").get_item(TableName=TABLE, Key=key).get("Item")
    return item


def test_a_cancelled_transaction_leaves_every_item_as_it_was(engine: LocalEngine) -> None:
    dynamodb = client("dynamodb")
    kept = _key("tx-p", "kept")
    dynamodb.put_item(TableName=TABLE, Item={**kept, "status": {"S": "before"}})

    with pytest.raises(ClientError, match="TransactionCanceled"):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {**_key("tx-p", "new"), "status": {"S": "x"}}}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": kept,
                        "UpdateExpression": "SET #s = :after",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":after": {"S": "after"}},
                    }
                },
                {
                    "Delete": {
                        "TableName": TABLE,
                        "Key": _key("tx-p", "missing"),
                        "ConditionExpression": "attribute_exists(runKey)",
                    }
                },
            ]
        )

    assert _get(_key("tx-p", "new")) is None
    assert _get(kept) == {**kept, "status": {"S": "before"}}


def test_a_committed_transaction_writes_every_item(engine: LocalEngine) -> None:
    dynamodb = client("dynamodb")
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {**_key("tx-q", "a"), "status": {"S": "1"}}}},
            {"Put": {"TableName": TABLE, "Item": {**_key("tx-q", "b"), "status": {"S": "2"}}}},
        ]
    )
    assert _get(_key("tx-q", "a")) is not None and _get(_key("tx-q", "b")) is not None
