"""The router's read of the waits (shared/store/journey_waits.py `waits_of`) against botocore's
Stubber: it must be strongly consistent, or a wait put just before the awaited event is routed could
be missed by both wait_for and the router, and the run would take its timeout path (the reminder after
the purchase)."""

from __future__ import annotations

from typing import Any

from botocore.stub import Stubber

from shared.store.journey_waits import JourneyWaitStore

TABLE = "journey-waits"


def _arn(i: int) -> str:
    return f"arn:aws:states:us-east-1:123456789012:execution:cart:run-{i}"


def _key(i: int) -> dict[str, Any]:
    return {"executionArn": {"S": _arn(i)}}


def _item(i: int) -> dict[str, Any]:
    return {
        "executionArn": {"S": _arn(i)},
        "journey": {"S": "cart"},
        "step": {"S": "wait-for-checkout"},
        "token": {"S": f"token-{i}"},
        "event": {"S": "Checkout Started"},
        "where": {"S": "{}"},
        "since": {"S": "2024-05-01T10:00:00.000Z"},
    }


def _get(keys: list[dict[str, Any]], items: list[dict[str, Any]], unprocessed: list[dict[str, Any]]) -> Any:
    response = {
        "Responses": {TABLE: items},
        "UnprocessedKeys": {TABLE: {"Keys": unprocessed, "ConsistentRead": True}} if unprocessed else {},
    }
    # The expected request: the Stubber fails the call if ConsistentRead is not True.
    return ("batch_get_item", response, {"RequestItems": {TABLE: {"Keys": keys, "ConsistentRead": True}}})


def test_the_waits_are_read_strongly_consistent_by_execution(dynamodb: tuple[Any, Stubber]) -> None:
    client, stubber = dynamodb
    stubber.add_response(*_get([_key(1), _key(2)], [_item(2)], []))

    waits = JourneyWaitStore(TABLE, client).waits_of([_arn(1), _arn(2), _arn(1)])

    assert [(w.executionArn, w.token) for w in waits] == [(_arn(2), "token-2")]


def test_a_hundred_and_one_executions_take_two_requests_and_unprocessed_keys_are_asked_again(
    dynamodb: tuple[Any, Stubber], sleeps: list[float]
) -> None:
    client, stubber = dynamodb
    first = [_key(i) for i in range(100)]
    stubber.add_response(*_get(first, [_item(0)], [_key(5)]))
    stubber.add_response(*_get([_key(5)], [_item(5)], []))
    stubber.add_response(*_get([_key(100)], [_item(100)], []))

    waits = JourneyWaitStore(TABLE, client).waits_of(_arn(i) for i in range(101))

    assert sorted(w.executionArn for w in waits) == sorted([_arn(0), _arn(5), _arn(100)])
    assert len(sleeps) == 1


def test_no_execution_makes_no_request(dynamodb: tuple[Any, Stubber]) -> None:
    client, _ = dynamodb  # the Stubber fails any request it was not given

    assert JourneyWaitStore(TABLE, client).waits_of([]) == []
