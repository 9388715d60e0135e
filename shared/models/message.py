"""A journey's send step, the message queued for a channel, and the message log entry."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from shared.models.base import Model
from shared.models.types import Channel, ProfileId

# The error a send step's task token is failed with when the send gate defers the message (quiet
# hours, a cap); its cause is the ISO-8601 UTC instant to run the gate again. The state machine
# catches it into a Wait until then (shared/journeys/compiler.py `emit_send`).
DEFERRED_ERROR = "Continuum.Deferred"


class SendRequest(Model):
    """What a journey's send state hands the send gate (see shared/journeys/compiler.py)."""

    journey: str
    goal: str | None = None
    step: str
    channel: Channel
    template: str
    content: dict[str, str]
    # The Liquid layout wrapping `text` / `html` (field → source) and the partials the content and
    # layout render (name → source), inlined at compile time (shared/delivery/templates.py).
    layout: dict[str, str] | None = None
    partials: dict[str, str] = Field(default_factory=dict)
    profileId: ProfileId
    enteredAt: str
    trigger: dict[str, Any] = Field(default_factory=dict)
    executionId: str
    # The send step's topic (None: the policy's default_topic) and the journey's quiet hours override
    # (None: the policy's; {"start": "21:00", "end": "08:00"}; False: none).
    topic: str | None = None
    quietHours: dict[str, str] | Literal[False] | None = None
    # The send step's task token: the gate answers it (success, or DEFERRED_ERROR) once the outcome
    # is logged. None when the gate is called without one (tests; nothing else calls it).
    token: str | None = None

    @property
    def message_key(self) -> str:
        # Idempotency key: one message per execution and step, however often the step retries.
        return f"{self.executionId}#{self.step}"


class OutboundMessage(Model):
    """The body of a channel queue message: everything the channel needs to send."""

    messageKey: str
    channel: Channel
    to: str
    content: dict[str, str]
    journey: str
    template: str
    profileId: ProfileId
    userId: str | None = None
    # Email: List-Unsubscribe and List-Unsubscribe-Post (the provider sends them).
    headers: dict[str, str] | None = None


# deferred: the gate will run again at `deferredUntil` (quiet hours, a cap) and replace this entry.
MessageStatus = Literal["queued", "sent", "dropped", "deferred"]


class MessageLogEntry(Model):
    messageKey: str
    status: MessageStatus
    reason: str | None = None
    # render_failed: where the template failed (field, line, variable), never a value.
    reasonDetail: str | None = None
    channel: Channel
    to: str | None = None
    journey: str
    step: str
    template: str
    profileId: ProfileId
    userId: str | None = None
    createdAt: str
    sentAt: str | None = None
    providerMessageId: str | None = None
    content: dict[str, str] | None = None
    topic: str | None = None
    # Email: the headers sent with it (List-Unsubscribe, List-Unsubscribe-Post).
    headers: dict[str, str] | None = None
    deferredUntil: str | None = None
    firstDeferredAt: str | None = None
