"""Identity: DynamoDB requests per event (counted by hooking botocore, not estimated) for a known
customer, a new identifier on a known customer and a merge; and the time of a merge for a profile
with 10,000 timeline events as a ratio to one with 10 (target ≤ 1.5: merge cost must not grow with
history). Runs on moto in-process. moto copies a whole table for every transaction (to roll it back),
so a merge here costs time in proportion to everything in the table, history or not: both profiles
are prepared in one table before either merge is timed, so that this cost falls on both alike."""

from __future__ import annotations

import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

ROUNDS = 3


def _call(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Viewed", "messageId": uuid.uuid4().hex, "context": {}, **fields}


def run() -> None:
    os.environ.update(
        {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    )
    import boto3
    from moto import mock_aws

    from infra.local.engine import create_table
    from infra.topology import PROFILES, TOPOLOGY
    from shared import clock
    from shared.identity.resolver import resolve
    from shared.identity.rules import IdentityRules
    from shared.models.profile import TimelineEntry
    from shared.store.profiles import DynamoProfileStore, timeline_item

    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        requests: list[str] = []
        dynamodb.meta.events.register(
            "before-call.dynamodb.*", lambda model, **_: requests.append(model.name)
        )
        table = create_table(dynamodb, TOPOLOGY.table(PROFILES), "bench-profiles")
        store, rules = DynamoProfileStore(table, dynamodb), IdentityRules()
        moment = [datetime(2026, 1, 1, tzinfo=UTC)]

        def now() -> datetime:
            moment[0] += timedelta(seconds=1)
            return moment[0]

        clock.install(now)

        def counted(call: dict[str, Any]) -> tuple[int, list[str]]:
            requests.clear()
            resolve(call, store, rules, now())
            return len(requests), list(requests)

        counted(_call(userId="u-1", anonymousId="a-1"))
        known = counted(_call(userId="u-1", anonymousId="a-1"))
        new_identifier = counted(_call(userId="u-1", anonymousId="a-2"))
        counted(_call(anonymousId="a-3"))
        merge = counted(_call(anonymousId="a-3", userId="u-1"))
        print("\nIdentity: DynamoDB requests per event (target for a known customer ≤ 2)")
        for label, (count, names) in (
            ("known customer", known),
            ("new identifier on a known one", new_identifier),
            ("merge of two profiles", merge),
        ):
            print(f"  {label:<32}{count:>3}   {', '.join(names)}")

        def prepare(history: int) -> Any:
            """Two profiles, the first with `history` timeline events; returns the event that merges them."""
            tag = uuid.uuid4().hex[:8]
            resolve(_call(anonymousId=f"old-{tag}"), store, rules, now())
            owner = store.lookup([_identifier("anonymous_id", f"old-{tag}")]).owners
            profile_id = next(iter(owner.values()))
            puts = [
                {
                    "PutRequest": {
                        "Item": timeline_item(
                            TimelineEntry(
                                profileId=profile_id,
                                type="track",
                                name="Viewed",
                                timestamp=clock.iso(datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=i)),
                                messageId=f"h-{i}",
                            )
                        )
                    }
                }
                for i in range(history)
            ]
            for start in range(0, len(puts), 25):
                dynamodb.batch_write_item(RequestItems={table: puts[start : start + 25]})
            resolve(
                _call(anonymousId=f"new-{tag}", context={"traits": {"email": f"{tag}@x.io"}}),
                store,
                rules,
                now(),
            )
            return _call(anonymousId=f"old-{tag}", context={"traits": {"email": f"{tag}@x.io"}})

        def timed(merging: dict[str, Any]) -> float:
            started = time.perf_counter()
            resolution = resolve(merging, store, rules, now())
            elapsed = time.perf_counter() - started
            assert resolution.merged, "the benchmark event must merge two profiles"
            return elapsed

        samples: dict[int, list[float]] = {10: [], 10_000: []}
        for _ in range(ROUNDS):
            # Both are prepared before either is timed: the table is the same size for both merges.
            events = {history: prepare(history) for history in samples}
            for history, merging in events.items():
                samples[history].append(timed(merging))
        small, large = statistics.median(samples[10]), statistics.median(samples[10_000])
        print(f"\nIdentity: a merge, median of {ROUNDS}")
        print(f"  profile with 10 timeline events      {small * 1000:8.2f} ms")
        print(
            f"  profile with 10,000 timeline events  {large * 1000:8.2f} ms   ratio {large / small:.2f}",
            end="",
        )
        print("  (target ≤ 1.5)")
        clock.reset()


def _identifier(kind: str, value: str) -> Any:
    from shared.models.profile import Identifier

    return Identifier(type=kind, value=value)


if __name__ == "__main__":
    run()
