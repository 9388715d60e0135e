"""Journey executions: Step Functions calls, and the journey-runs table that finds a profile's runs."""

from __future__ import annotations

import json
from typing import Any

from shared.store.aws import TableStore, client, error_code


class JourneyRunStore(TableStore):
    """One item per execution under its profile: `runKey` = `<journeyId>#<executionName>`."""

    def active(self, profile_id: str, journey_id: str) -> list[dict[str, str]]:
        response = self._db.query(
            TableName=self._table,
            KeyConditionExpression="profileId = :p AND begins_with(runKey, :j)",
            FilterExpression="#s = :active",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":p": {"S": profile_id},
                ":j": {"S": f"{journey_id}#"},
                ":active": {"S": "active"},
            },
            ConsistentRead=True,
        )
        return [{name: value["S"] for name, value in item.items()} for item in response["Items"]]

    def add(self, profile_id: str, journey_id: str, name: str, execution_arn: str, entered_at: str) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                "profileId": {"S": profile_id},
                "runKey": {"S": f"{journey_id}#{name}"},
                "executionArn": {"S": execution_arn},
                "status": {"S": "active"},
                "enteredAt": {"S": entered_at},
            },
        )

    def active_executions(self, profile_id: str) -> list[str]:
        """The execution ARNs of a profile's runs still marked active (erasure stops them)."""
        return [
            item["executionArn"]["S"]
            for item in self._items(
                "query",
                KeyConditionExpression="profileId = :p",
                FilterExpression="#s = :active",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":p": {"S": profile_id}, ":active": {"S": "active"}},
                ProjectionExpression="executionArn",
                ConsistentRead=True,
            )
        ]

    def delete_for_profile(self, profile_id: str) -> None:
        """Forget a profile's runs (erasure)."""
        for item in self._items(
            "query",
            KeyConditionExpression="profileId = :p",
            ExpressionAttributeValues={":p": {"S": profile_id}},
            ProjectionExpression="profileId, runKey",
        ):
            self._db.delete_item(TableName=self._table, Key=item)

    def close(self, profile_id: str, run_key: str, status: str, at: str) -> None:
        self._db.update_item(
            TableName=self._table,
            Key={"profileId": {"S": profile_id}, "runKey": {"S": run_key}},
            UpdateExpression="SET #s = :s, closedAt = :at",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status}, ":at": {"S": at}},
        )


class JourneyExecutions:
    def __init__(self, sfn: Any = None):
        self._client = sfn

    @property
    def _sfn(self) -> Any:
        return self._client or client("stepfunctions")

    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str | None:
        """Start it; None when an execution of that name already exists (the event was seen before)."""
        try:
            response = self._sfn.start_execution(
                stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload, sort_keys=True)
            )
        except Exception as error:
            if error_code(error) == "ExecutionAlreadyExists":
                return None
            raise
        arn: str = response["executionArn"]
        return arn

    def is_running(self, execution_arn: str) -> bool:
        status = self._sfn.describe_execution(executionArn=execution_arn)["status"]
        return bool(status in ("RUNNING", "PENDING_REDRIVE"))

    def stop(self, execution_arn: str, cause: str, error_name: str = "Continuum.GoalReached") -> None:
        try:
            self._sfn.stop_execution(executionArn=execution_arn, error=error_name, cause=cause)
        except Exception as error:
            if error_code(error) != "ExecutionDoesNotExist":
                raise
