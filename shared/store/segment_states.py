"""Reading a profile's segment state for journeys: a branch on segments or computed traits, and the
`computed` values a template renders.

The item is the one the segments function keeps beside the profile item (DESIGN9 §2): `pk =
profile#<profileId>`, `sk = segments`, `state` (S, the SegmentState's JSON) and `version` (N, the
truth: the JSON is written with it in the same Put). Only read here; the segments function's store
writes it (shared/store/segments.py). Kept apart from that store so that journeys need only this one
GetItem, and only when a case or a template asks for it.
"""

from __future__ import annotations

from shared.models.segments import SegmentState
from shared.store.aws import TableStore

STATE_SORT_KEY = "segments"


class SegmentStateReader(TableStore):
    def segment_state(self, profile_id: str) -> SegmentState | None:
        """The profile's segment state, read strongly consistent; None when it has none (no event
        has reached the segments function for it, or the catalogue is empty)."""
        item = self._db.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"profile#{profile_id}"}, "sk": {"S": STATE_SORT_KEY}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        state = SegmentState.model_validate_json(item["state"]["S"])
        return state.model_copy(update={"version": int(item["version"]["N"])})
