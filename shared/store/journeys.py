"""Journey executions: Step Functions calls, and the journey-runs table that finds a profile's runs."""

from __future__ import annotations

import json
from typing import Any

from shared.journeys.router import ExecutionState, Slot
from shared.store.aws import TableStore, client, error_code
from shared.store.task_tokens import TaskTokens


def _run(item: dict[str, Any]) -> dict[str, str]:
    """A run item as the domain reads it: its string attributes."""
    return {name: value["S"] for name, value in item.items() if "S" in value}


_SLOT = "#slot#"


def _slot_key(journey_id: str) -> str:
    # Journey ids start with a letter (shared/models/journey.py), so no run key begins with "#":
    # `active`'s `begins_with(runKey, "<journeyId>#")` never sees a slot.
    return f"{_SLOT}{journey_id}"


class JourneyRunStore(TableStore):
    """One item per run under its profile: `runKey` = `<journeyId>#<executionName>`; and one slot per
    journey the profile is in: `runKey` = `#slot#<journeyId>`, naming the execution holding it. Runs
    are found by execution too (index `byExecution`; a held-out run has no execution)."""

    def active(self, profile_id: str, journey_id: str) -> list[dict[str, str]]:
        return [run for run in self.runs(profile_id, journey_id) if run["status"] == "active"]

    def runs(self, profile_id: str, journey_id: str) -> list[dict[str, str]]:
        return [
            _run(item)
            for item in self._items(
                "query",
                KeyConditionExpression="profileId = :p AND begins_with(runKey, :j)",
                ExpressionAttributeValues={":p": {"S": profile_id}, ":j": {"S": f"{journey_id}#"}},
                ConsistentRead=True,
            )
        ]

    def by_execution(self, execution_arn: str) -> list[dict[str, str]]:
        # A global index reads eventually consistently: the run is written before its execution
        # starts, so by the time the execution has ended it is there. The slot the execution holds
        # names it too: it is not a run.
        return [
            _run(item)
            for item in self._items(
                "query",
                IndexName="byExecution",
                KeyConditionExpression="executionArn = :arn",
                ExpressionAttributeValues={":arn": {"S": execution_arn}},
            )
            if not item["runKey"]["S"].startswith(_SLOT)
        ]

    def add(
        self,
        profile_id: str,
        journey_id: str,
        name: str,
        execution_arn: str | None,
        entered_at: str,
        trigger: str = "{}",
        status: str = "active",
    ) -> bool:
        item = {
            "profileId": {"S": profile_id},
            "runKey": {"S": f"{journey_id}#{name}"},
            "status": {"S": status},
            "enteredAt": {"S": entered_at},
            "trigger": {"S": trigger},
            "heldOut": {"BOOL": status == "held_out"},
        }
        if execution_arn is not None:
            item["executionArn"] = {"S": execution_arn}
        return self._conditional("put_item", Item=item, ConditionExpression="attribute_not_exists(runKey)")

    def close(self, profile_id: str, run_key: str, status: str, at: str, reason: str | None = None) -> bool:
        return self._conditional(
            "update_item",
            Key={"profileId": {"S": profile_id}, "runKey": {"S": run_key}},
            UpdateExpression="SET #s = :s, closedAt = :at, closedReason = :reason",
            ConditionExpression="#s = :active",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":s": {"S": status},
                ":at": {"S": at},
                ":reason": {"S": reason or status},
                ":active": {"S": "active"},
            },
        )

    def convert(self, profile_id: str, run_key: str, at: str) -> bool:
        return self._conditional(
            "update_item",
            Key={"profileId": {"S": profile_id}, "runKey": {"S": run_key}},
            UpdateExpression="SET convertedAt = :at",
            ConditionExpression="attribute_exists(runKey) AND attribute_not_exists(convertedAt)",
            ExpressionAttributeValues={":at": {"S": at}},
        )

    def _conditional(self, operation: str, **request: Any) -> bool:
        """A conditional write: True when it was applied, False when its condition did not hold."""
        try:
            getattr(self._db, operation)(TableName=self._table, **request)
        except Exception as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

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

    def active_runs(self, profile_id: str) -> list[dict[str, str]]:
        """A profile's runs still marked active, in every journey (erasure stops them)."""
        return [
            _run(item)
            for item in self._items(
                "query",
                KeyConditionExpression="profileId = :p",
                FilterExpression="#s = :active",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":p": {"S": profile_id}, ":active": {"S": "active"}},
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

    def stop(self, execution_arn: str, cause: str, error_name: str = "Continuum.JourneyExited") -> None:
        try:
            self._sfn.stop_execution(executionArn=execution_arn, error=error_name, cause=cause)
        except Exception as error:
            if error_code(error) != "ExecutionDoesNotExist":
                raise

    def resume(self, token: str, output: dict[str, Any]) -> bool:
        """SendTaskSuccess; True when this call resumed it. The token may be spent already (the
        journey-steps function found the event first, another router did, or the wait timed out):
        that is no error, False."""
        return TaskTokens(self._client).resume(token, output)
