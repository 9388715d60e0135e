"""Journey counters: one item per journey in the journey-stats table, numbers added atomically.

Counter names (see the admin API, functions/journeys): `entered`, `heldOut`, `exited#<reason>`,
`conversions`, `revenue`, `heldOutConversions`, `heldOutRevenue`, `step#<stepId>#sent`,
`step#<stepId>#dropped#<reason>`, `step#<stepId>#conversions`, `step#<stepId>#revenue`.
ADD is not idempotent: callers add only after the conditional write that changed state has won
(a run added, a run closed, a message first recorded, a conversion first recorded), so a retried
event never counts twice.
"""

from __future__ import annotations

from decimal import Decimal

from shared.store.aws import TableStore


class JourneyStats(TableStore):
    def add(self, journey_id: str, counters: dict[str, float]) -> None:
        if not counters:
            return
        names = {f"#c{i}": name for i, name in enumerate(counters)}
        values = {f":v{i}": {"N": str(Decimal(str(value)))} for i, value in enumerate(counters.values())}
        self._db.update_item(
            TableName=self._table,
            Key={"journeyId": {"S": journey_id}},
            UpdateExpression="ADD " + ", ".join(f"#c{i} :v{i}" for i in range(len(counters))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def get(self, journey_id: str) -> dict[str, float]:
        item = self._db.get_item(
            TableName=self._table, Key={"journeyId": {"S": journey_id}}, ConsistentRead=True
        ).get("Item", {})
        return {
            name: float(value["N"]) if "." in value["N"] else int(value["N"])
            for name, value in item.items()
            if "N" in value
        }
