"""Journey executions: Step Functions calls, and the journey-runs table that finds a profile's runs."""

from __future__ import annotations

import json
from typing import Any

from shared.journeys.router import ExecutionState, Slot
from shared.store.aws import TableStore, client, error_code


def _slot_key(journey_id: str) -> str:
    # Journey ids start with a letter (shared/models/journey.py), so no run key begins with "#":
    # `active`'s `begins_with(runKey, "<journeyId>#")` never sees a slot.
    return f"#slot#{journey_id}"


class JourneyRunStore(TableStore):
    """One item per execution under its profile: `runKey` = `<journeyId>#<executionName>`; and one
    slot per journey the profile is in: `runKey` = `#slot#<journeyId>`, naming the execution holding it."""

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

    def claim(
        self, profile_id: str, journey_id: str, execution_arn: str, at: str, replacing: str | None = None
    ) -> bool:
        """Take the slot if it is free, held by this execution already, or held by `replacing`."""
        condition = "attribute_not_exists(runKey) OR executionArn = :arn"
        values = {":arn": {"S": execution_arn}}
        if replacing is not None:
            condition += " OR executionArn = :replacing"
            values[":replacing"] = {"S": replacing}
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "profileId": {"S": profile_id},
                    "runKey": {"S": _slot_key(journey_id)},
                    "executionArn": {"S": execution_arn},
                    "claimedAt": {"S": at},
                },
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except Exception as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def slot(self, profile_id: str, journey_id: str) -> Slot | None:
        item = self._db.get_item(
            TableName=self._table,
            Key={"profileId": {"S": profile_id}, "runKey": {"S": _slot_key(journey_id)}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        return Slot(execution_arn=item["executionArn"]["S"], claimed_at=item["claimedAt"]["S"])

    def release(self, profile_id: str, journey_id: str, execution_arn: str) -> None:
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"profileId": {"S": profile_id}, "runKey": {"S": _slot_key(journey_id)}},
                ConditionExpression="executionArn = :arn",
                ExpressionAttributeValues={":arn": {"S": execution_arn}},
            )
        except Exception as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise

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

    def state(self, execution_arn: str) -> ExecutionState:
        try:
            status = self._sfn.describe_execution(executionArn=execution_arn)["status"]
        except Exception as error:
            if error_code(error) == "ExecutionDoesNotExist":
                return "missing"
            raise
        return "running" if status in ("RUNNING", "PENDING_REDRIVE") else "ended"

    def is_running(self, execution_arn: str) -> bool:
        return self.state(execution_arn) == "running"

    def stop(self, execution_arn: str, cause: str, error_name: str = "Continuum.GoalReached") -> None:
        try:
            self._sfn.stop_execution(executionArn=execution_arn, error=error_name, cause=cause)
        except Exception as error:
            if error_code(error) != "ExecutionDoesNotExist":
                raise
