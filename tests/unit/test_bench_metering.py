"""The cost benchmark's arithmetic (benchmarks/local_run.py, benchmarks/prices.py): which step a
Step Functions state belongs to, which history events are billed transitions, and the units AWS
bills a request in. The benchmark's numbers are only as good as these."""

from __future__ import annotations

import pytest

from benchmarks import prices
from benchmarks.local_run import _billed_units, retries, states_entered, step_of

STEPS = {"wait-1h", "checkout", "checkout.on_timeout.send-push-cart-reminder", "send-email-cart-reminder"}


@pytest.mark.parametrize(
    ("state", "step"),
    [
        ("wait-1h", "wait-1h"),
        ("checkout", "checkout"),
        ("checkout.choice", "checkout"),
        # a derived id holds dots: the longest known prefix wins, not the first segment
        ("checkout.on_timeout.send-push-cart-reminder", "checkout.on_timeout.send-push-cart-reminder"),
        ("checkout.on_timeout.send-push-cart-reminder.at", "checkout.on_timeout.send-push-cart-reminder"),
        ("Done", None),
    ],
)
def test_a_state_counts_for_the_step_whose_id_it_carries(state: str, step: str | None) -> None:
    assert step_of(state, STEPS) == step


def test_every_state_entered_event_is_a_transition_and_nothing_else_is() -> None:
    history = [
        {"type": "ExecutionStarted"},
        {"type": "WaitStateEntered", "stateEnteredEventDetails": {"name": "wait-1h"}},
        {"type": "WaitStateExited", "stateExitedEventDetails": {"name": "wait-1h"}},
        {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "checkout"}},
        {"type": "TaskScheduled"},
        {"type": "ChoiceStateEntered", "stateEnteredEventDetails": {"name": "checkout.choice"}},
        {"type": "ExecutionSucceeded"},
    ]
    assert states_entered(history) == ["wait-1h", "checkout", "checkout.choice"]


def test_a_retried_task_counts_one_more_transition_per_attempt_after_the_first() -> None:
    attempt = [{"type": "TaskScheduled"}, {"type": "TaskStarted"}, {"type": "TaskFailed"}]
    history = [
        {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "send-email-welcome"}},
        *attempt,
        *attempt,
        *attempt,
        {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "plan"}},
        {"type": "TaskScheduled"},
    ]
    assert retries(history) == 2


def test_an_eventually_consistent_read_of_a_small_item_is_half_a_read_unit() -> None:
    item = {"pk": {"S": "p-1"}, "name": {"S": "x" * 100}}
    assert _billed_units("dynamodb", "GetItem", {"TableName": "t"}, {"Item": item}, []) == {"RRU": 0.5}
    assert _billed_units("dynamodb", "GetItem", {"TableName": "t", "ConsistentRead": True}, {}, []) == {
        "RRU": 1.0
    }


def test_a_query_is_billed_on_the_sum_of_what_it_read_rounded_up_to_4_kb() -> None:
    items = [{"pk": {"S": "p"}, "blob": {"S": "x" * 3000}} for _ in range(3)]  # ~9 KB together
    assert _billed_units("dynamodb", "Query", {"TableName": "t"}, {"Items": items}, []) == {"RRU": 1.5}


def test_each_event_published_counts_once_per_64_kb_chunk() -> None:
    entries = [{"Detail": "{}"}, {"Detail": "x" * (70 * 1024)}]
    assert _billed_units("events", "PutEvents", {"Entries": entries}, {}, []) == {"events": 3}


def test_an_email_counts_once_per_recipient_and_a_push_is_a_request_and_a_delivery() -> None:
    email = {"Destination": {"ToAddresses": ["a@example.com"], "BccAddresses": ["b@example.com"]}}
    assert _billed_units("sesv2", "SendEmail", email, {}, []) == {"emails": 2}
    push = {"TargetArn": "arn:aws:sns:us-east-1:1:endpoint/GCM/app/1", "Message": "{}"}
    assert _billed_units("sns", "Publish", push, {}, []) == {"requests": 1, "mobile push deliveries": 1}


def test_a_price_is_per_its_own_quantity() -> None:
    assert prices.SFN_TRANSITIONS.cost(1_000_000) == pytest.approx(25.0)
    assert prices.SES_EMAILS.cost(1000) == pytest.approx(0.10)
    assert prices.DYNAMODB_WRU.cost(1_000_000) == pytest.approx(0.625)
