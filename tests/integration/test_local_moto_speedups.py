"""The local runtime's shortcuts through moto (infra/local/engine.py): each does less work than moto
would and must answer exactly as moto (and AWS) would. A Query reads its partition only; moto's
Step Functions reuses one client per service; the bus's archive stores events without moto's
input transformer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.dynamodb.models import dynamodb_backends
from moto.events.models import events_backends

from infra.local.engine import ACCOUNT, PREFIX, REGION, LocalEngine
from tests.integration.conftest import client

TABLE = f"{PREFIX}-journey-runs"


def _put(profile: str, run: str) -> None:
    item = {"profileId": {"S": profile}, "runKey": {"S": run}, "status": {"S": "running"}}
    client("dynamodb").put_item(TableName=TABLE, Item=item)


def _query(profile: str, **request: Any) -> list[str]:
    """Every runKey a Query returns, page after page of `Limit` items."""
    request = {
        "TableName": TABLE,
        "KeyConditionExpression": "profileId = :p AND runKey BETWEEN :a AND :z",
        "ExpressionAttributeValues": {":p": {"S": profile}, ":a": {"S": "run#b"}, ":z": {"S": "run#d"}},
        **request,
    }
    keys: list[str] = []
    while True:
        response = client("dynamodb").query(**request)
        keys += [item["runKey"]["S"] for item in response["Items"]]
        if "LastEvaluatedKey" not in response:
            return keys
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


class _Unreadable:
    """An item no Query of another partition may touch: comparing or reading it fails."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a Query read another partition's item ({name})")


def test_a_query_reads_only_its_partition_and_answers_as_dynamodb_does(engine: LocalEngine) -> None:
    for run in ("run#d", "run#a", "run#c", "run#b", "run#e"):
        _put("speed-p1", run)
    _put("speed-p2", "run#c")
    # A partition moto would have to sort along with every other before finding this one's items.
    table = dynamodb_backends[ACCOUNT][REGION].get_table(TABLE)
    poisoned = next(key for key in table.items if key.value == "speed-p2")
    table.items[poisoned]["run#poison"] = _Unreadable()  # type: ignore[index]
    try:
        assert _query("speed-p1") == ["run#b", "run#c", "run#d"]
        assert _query("speed-p1", Limit=2) == ["run#b", "run#c", "run#d"]
        assert _query("speed-p1", ScanIndexForward=False, Limit=1) == ["run#d", "run#c", "run#b"]
        assert _query("speed-nobody") == []
    finally:
        del table.items[poisoned]["run#poison"]  # type: ignore[index]
    # A partition nobody wrote is not created by reading it.
    assert all(key.value != "speed-nobody" for key in table.items)
    assert _query("speed-p2") == ["run#c"]


class _Unsortable:
    """A stored object moto's whole-table sort would compare (and fail on); not an item, so a query
    that does not sort the table skips it as moto does."""

    attrs: dict[str, Any] = {}
    range_key = None

    @property
    def hash_key(self) -> _Unsortable:
        return self

    def __lt__(self, other: object) -> bool:
        raise AssertionError("an index query sorted the whole table")

    __gt__ = __lt__


def test_an_index_query_answers_in_key_order_without_sorting_the_table(engine: LocalEngine) -> None:
    dynamodb = client("dynamodb")
    for profile, run in (("speed-i2", "r#2"), ("speed-i1", "r#9"), ("speed-i3", "r#1"), ("speed-i1", "r#1")):
        item = {"profileId": {"S": profile}, "runKey": {"S": run}, "executionArn": {"S": "arn:speed-exec"}}
        dynamodb.put_item(TableName=TABLE, Item=item)
    _put("speed-i4", "r#1")  # no executionArn: not in the index
    table = dynamodb_backends[ACCOUNT][REGION].get_table(TABLE)
    table.items["speed-unsortable"] = {"x": _Unsortable()}  # type: ignore[index]
    request: dict[str, Any] = {
        "TableName": TABLE,
        "IndexName": "byExecution",
        "KeyConditionExpression": "executionArn = :arn",
        "ExpressionAttributeValues": {":arn": {"S": "arn:speed-exec"}},
        "Limit": 3,
    }
    try:
        found: list[tuple[str, str]] = []
        while True:
            response = dynamodb.query(**request)
            found += [(i["profileId"]["S"], i["runKey"]["S"]) for i in response["Items"]]
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    finally:
        del table.items["speed-unsortable"]  # type: ignore[arg-type]

    # moto's order: the index's key, then (no sort key in this index) the table's sort and
    # partition keys, a total order, so the same whatever order the items are read in.
    assert found == [("speed-i1", "r#1"), ("speed-i3", "r#1"), ("speed-i2", "r#2"), ("speed-i1", "r#9")]


def test_step_functions_tasks_share_one_client_per_service(engine: LocalEngine) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    first = lambda_eval_utils.boto_client_for(region=REGION, service="lambda", state_credentials=None)
    again = lambda_eval_utils.boto_client_for(region=REGION, service="lambda", state_credentials=None)
    other = lambda_eval_utils.boto_client_for(region=REGION, service="sqs", state_credentials=None)

    assert first is again
    assert other is not first and other.meta.service_model.service_name == "sqs"


def test_the_archive_keeps_each_event_unchanged_without_an_input_transformer(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.events.utils import EventTemplateParser

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the archive's event went through an input transformer")

    monkeypatch.setattr(EventTemplateParser, "parse", refuse)
    detail = {"probe": "archive"}
    client("events").put_events(
        Entries=[
            {
                "EventBusName": f"{PREFIX}-bus",
                "Source": "continuum.test",
                "DetailType": "Archive Probe",
                "Detail": json.dumps(detail),
            }
        ]
    )

    archive = events_backends[ACCOUNT][REGION].archives[f"{PREFIX}-archive"]
    stored = archive.events[-1]
    assert stored["detail-type"] == "Archive Probe" and stored["detail"] == detail
    assert stored["source"] == "continuum.test"
