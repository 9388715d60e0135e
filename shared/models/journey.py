"""Journey definitions: what a journey author writes (YAML beside its templates), validated here."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from shared.models.base import Model
from shared.models.types import Channel

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WAIT_SECONDS = 365 * 86400  # a Step Functions Standard execution lives at most a year


def _parse_duration(value: object) -> object:
    """'90s', '30m', '1h', '2d' → seconds; an int is already seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"duration {value!r} is not a number followed by s, m, h or d (e.g. '1h')")
        return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


DurationSeconds = Annotated[int, BeforeValidator(_parse_duration), Field(gt=0, le=MAX_WAIT_SECONDS)]
JourneyId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
TemplateName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
EventName = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WaitStep(_Strict):
    wait: DurationSeconds


class SendSpec(_Strict):
    channel: Channel
    template: TemplateName


class SendStep(_Strict):
    send: SendSpec


Step = WaitStep | SendStep


class JourneyDefinition(_Strict):
    id: JourneyId
    name: str = Field(min_length=1)
    trigger: EventName = Field(description="track event name that starts the journey for a profile")
    goal: EventName | None = Field(
        default=None, description="track event name that ends the journey at once: nothing more is sent"
    )
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _has_a_send(self) -> JourneyDefinition:
        if not any(isinstance(step, SendStep) for step in self.steps):
            raise ValueError("a journey needs at least one send step")
        return self


class EmailContent(_Strict):
    subject: str = Field(min_length=1)
    text: str = Field(min_length=1)
    html: str | None = None


class PushContent(_Strict):
    title: str = Field(min_length=1)
    body: str = Field(min_length=1)


class Template(_Strict):
    """One message template, with content per channel it can be sent on."""

    name: TemplateName
    email: EmailContent | None = None
    push: PushContent | None = None

    def content_for(self, channel: str) -> EmailContent | PushContent | None:
        content: EmailContent | PushContent | None = getattr(self, channel, None)
        return content


class Journey(_Strict):
    """A definition with the templates it uses, as loaded from its folder."""

    definition: JourneyDefinition
    templates: dict[str, Template]

    @model_validator(mode="after")
    def _templates_cover_sends(self) -> Journey:
        for step in self.definition.steps:
            if isinstance(step, SendStep):
                template = self.templates.get(step.send.template)
                if template is None:
                    raise ValueError(f"send step uses template {step.send.template!r}, which does not exist")
                if template.content_for(step.send.channel) is None:
                    raise ValueError(f"template {step.send.template!r} has no {step.send.channel} content")
        return self
