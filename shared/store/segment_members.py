"""The `segment-members` table: one item per (segment, profile) while the profile is a member.

Items: `segment` (partition key), `profileId` (sort key), `since` (ISO UTC, the virtual time it
entered). Written by the audiences function from the FIFO queue (per-profile order), so a put and a
delete of one item never race; both are idempotent, so a redelivered message does no harm.
"""

from __future__ import annotations

from shared.store.aws import TableStore


class SegmentMembers(TableStore):
    def enter(self, segment: str, profile_id: str, at: str) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={"segment": {"S": segment}, "profileId": {"S": profile_id}, "since": {"S": at}},
        )

    def leave(self, segment: str, profile_id: str) -> None:
        self._db.delete_item(
            TableName=self._table, Key={"segment": {"S": segment}, "profileId": {"S": profile_id}}
        )

    def size(self, segment: str) -> int:
        """How many profiles are members: a Query with Select COUNT, page after page (a page counts
        at most 1 MB of items)."""
        request = {
            "TableName": self._table,
            "KeyConditionExpression": "#segment = :segment",
            "ExpressionAttributeNames": {"#segment": "segment"},
            "ExpressionAttributeValues": {":segment": {"S": segment}},
            "Select": "COUNT",
        }
        total = 0
        while True:
            response = self._db.query(**request)
            total += int(response["Count"])
            if "LastEvaluatedKey" not in response:
                return total
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
