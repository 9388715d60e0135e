"""Executions parked in a wait_for step (the journey-waits table), and resuming them.

One item per execution (`executionArn`): a run waits in at most one wait_for step at a time, and a
later wait_for of the run replaces the item. The journey-steps function puts it; whoever sees the
awaited event first (journey-steps itself, or the router) resumes the execution and deletes it.

The router finds the waits an event resumes by the profile and the event's name (index
`byProfileEvent`, `WAITS_BY_PROFILE_EVENT`): one Query per track event, whatever the journeys in the
catalogue are and whatever they await now (a run keeps the definition it started with).
"""

from __future__ import annotations

import json
from typing import Any

from shared.journeys.steps import JourneyWait
from shared.store.aws import TableStore, error_code

# Resuming a wait: TaskTokens lives with the send steps' answers (deliver answers every send's token).
from shared.store.task_tokens import SPENT_TOKEN_ERRORS, TaskTokens

# The global index of journey-waits by (profileId, event) (infra/topology.py declares it).
WAITS_BY_PROFILE_EVENT = "byProfileEvent"

__all__ = ["SPENT_TOKEN_ERRORS", "JourneyWaitStore", "TaskTokens"]


class JourneyWaitStore(TableStore):
    def put(self, wait: JourneyWait) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                "executionArn": {"S": wait.executionArn},
                "profileId": {"S": wait.profileId},
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

    def awaiting(self, profile_id: str, event: str) -> list[JourneyWait]:
        """The waits filed under the profile for this event. A global index reads eventually
        consistently: see `shared.journeys.router` for why the router may rely on it."""
        return [
            _wait(item)
            for item in self._items(
                "query",
                IndexName=WAITS_BY_PROFILE_EVENT,
                KeyConditionExpression="profileId = :p AND #e = :e",
                ExpressionAttributeNames={"#e": "event"},
                ExpressionAttributeValues={":p": {"S": profile_id}, ":e": {"S": event}},
            )
        ]

    def parked(self, profile_id: str) -> list[JourneyWait]:
        """Every wait filed under the profile, whatever it awaits (a merge moves them)."""
        return [
            _wait(item)
            for item in self._items(
                "query",
                IndexName=WAITS_BY_PROFILE_EVENT,
                KeyConditionExpression="profileId = :p",
                ExpressionAttributeValues={":p": {"S": profile_id}},
            )
        ]

    def move(self, execution_arn: str, token: str, profile_id: str) -> None:
        """File the wait under `profile_id` if it still holds `token` (resumed or replaced: nothing)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"executionArn": {"S": execution_arn}},
                UpdateExpression="SET profileId = :p",
                ConditionExpression="#t = :t",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={":t": {"S": token}, ":p": {"S": profile_id}},
            )
        except Exception as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise

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
        profileId=item["profileId"]["S"],
        journey=item["journey"]["S"],
        step=item["step"]["S"],
        token=item["token"]["S"],
        event=item["event"]["S"],
        where=json.loads(item["where"]["S"]),
        since=item["since"]["S"],
    )
