"""Answering a Step Functions task token: an execution parked on it goes on (SendTaskSuccess), or
fails the task with an error its state machine catches (SendTaskFailure).

A module of its own (no journey models imported): deliver answers every send step's token, and a
cold start should not pay for the journey-steps code it never runs.
"""

from __future__ import annotations

import json
from typing import Any

from shared.store.aws import client, error_code

# The answers for a token that can no longer be answered: answered already (the other side of a race
# got there first, or a retried invocation answers again), timed out, or its execution has ended.
SPENT_TOKEN_ERRORS = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})


class TaskTokens:
    """Resuming or failing an execution parked on a task token."""

    def __init__(self, sfn: Any = None):
        self._client = sfn

    def _sfn(self) -> Any:
        return self._client or client("stepfunctions")

    def resume(self, token: str, output: dict[str, Any] | None = None) -> bool:
        """True when this call resumed it; False when the token was spent already (ignored: the
        router and journey-steps may both see the awaited event)."""
        try:
            self._sfn().send_task_success(taskToken=token, output=json.dumps(output or {}))
        except Exception as error:
            if error_code(error) in SPENT_TOKEN_ERRORS:
                return False
            raise
        return True

    def fail(self, token: str, error: str, cause: str) -> bool:
        """Fail the task with `error` (its state machine's Catch for it takes over) and `cause`. True
        when this call answered it; False when the token was spent already."""
        try:
            self._sfn().send_task_failure(taskToken=token, error=error, cause=cause)
        except Exception as failure:
            if error_code(failure) in SPENT_TOKEN_ERRORS:
                return False
            raise
        return True
