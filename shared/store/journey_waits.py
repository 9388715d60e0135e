"""Executions parked in a wait_for step (the journey-waits table), and resuming them.

One item per execution (`executionArn`): a run waits in at most one wait_for step at a time, and a
later wait_for of the run replaces the item. The journey-steps function puts it; whoever sees the
awaited event first (journey-steps itself, or the router) resumes the execution and deletes it.

The router reads the waits of the profile's active runs by their executions (`waits_of`: one
BatchGetItem, strongly consistent), whatever the journeys in the catalogue are and whatever they await
now (a run keeps the definition it started with).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from shared.journeys.steps import JourneyWait
from shared.store.aws import TableStore, error_code
from shared.store.profiles import batch_get


class JourneyWaitStore(TableStore):
    def put(self, wait: JourneyWait) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                "executionArn": {"S": wait.executionArn},
                "journey": {"S": wait.journey},
                "step": {"S": wait.step},
                "token": {"S": wait.token},
                "event": {"S": wait.event},
                "where": {"S": json.dumps(wait.where, sort_keys=True, separators=(",", ":"))},
                "since": {"S": wait.since},
            },
        )

    def get(self, execution_arn: str) -> JourneyWait | None:
        item = self._db.get_item(
            TableName=self._table, Key={"executionArn": {"S": execution_arn}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else _wait(item)

    def waits_of(self, execution_arns: Iterable[str]) -> list[JourneyWait]:
        """The waits of these executions that exist: BatchGetItem, read strongly consistent (the router
        relies on it, see `shared.journeys.router`), 100 keys a request, unprocessed keys asked again."""
        keys = [{"executionArn": {"S": arn}} for arn in dict.fromkeys(execution_arns)]
        return [_wait(item) for item in batch_get(self._db, self._table, keys)] if keys else []

    def delete(self, execution_arn: str, token: str) -> None:
        """Delete the wait if it still holds `token`: a later wait_for of the run keeps its own."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"executionArn": {"S": execution_arn}},
                ConditionExpression="#t = :t",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={":t": {"S": token}},
            )
        except Exception as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise


def _wait(item: dict[str, Any]) -> JourneyWait:
    return JourneyWait(
        executionArn=item["executionArn"]["S"],
        journey=item["journey"]["S"],
        step=item["step"]["S"],
        token=item["token"]["S"],
        event=item["event"]["S"],
        where=json.loads(item["where"]["S"]),
        since=item["since"]["S"],
    )
