"""Executions parked in a wait_for step (the journey-waits table), and resuming them.

One item per execution (`executionArn`): a run waits in at most one wait_for step at a time, and a
later wait_for of the run replaces the item. The journey-steps function puts it; whoever sees the
awaited event first (journey-steps itself, or the router) resumes the execution and deletes it.
"""

from __future__ import annotations

import json

from shared.journeys.steps import JourneyWait
from shared.store.aws import TableStore, error_code

# Resuming a wait: TaskTokens lives with the send steps' answers (deliver answers every send's token).
from shared.store.task_tokens import SPENT_TOKEN_ERRORS, TaskTokens

__all__ = ["SPENT_TOKEN_ERRORS", "JourneyWaitStore", "TaskTokens"]


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
        if item is None:
            return None
        return JourneyWait(
            executionArn=item["executionArn"]["S"],
            journey=item["journey"]["S"],
            step=item["step"]["S"],
            token=item["token"]["S"],
            event=item["event"]["S"],
            where=json.loads(item["where"]["S"]),
            since=item["since"]["S"],
        )

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
