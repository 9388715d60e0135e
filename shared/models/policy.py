"""The send policy: subscription topics, frequency caps and quiet hours, as a team writes it in
`policy.yaml` (validated here), and the consent and suppression records the send gate reads.

One policy per deployment. It reaches the functions as a JSON file (like the journey and segment
catalogues), never as an environment variable. Journeys name a topic on each send step (default
`marketing`) and may override the quiet hours.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from shared.models.base import Model
from shared.models.durations import DurationSeconds, parse_duration
from shared.models.types import Channel, iana_timezone

CHANNELS: tuple[Channel, ...] = ("email", "push")
# The one topic with its own rules: it skips caps, quiet hours and opt-outs, never a hard suppression.
TRANSACTIONAL = "transactional"
DEFAULT_TOPIC = "marketing"
TopicId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# How long a capped send may wait for the cap to allow it (the default: 24 h).
MAX_DEFERRAL_SECONDS = 7 * 86400


class _Strict(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


# opt_out: subscribed until the person opts out; opt_in: not subscribed until they opt in.
ConsentDefault = Literal["opt_in", "opt_out"]


class Topic(_Strict):
    description: str = ""
    # Per channel; a channel not named is opt_out.
    default: dict[Channel, ConsentDefault] = Field(default_factory=dict)

    def default_for(self, channel: str) -> ConsentDefault:
        return self.default.get(channel, "opt_out")  # type: ignore[call-overload]


def _time_of_day(value: object) -> object:
    if isinstance(value, str) and not _TIME_OF_DAY.match(value):
        raise ValueError(f"{value!r} is not a time of day HH:MM (24-hour clock, e.g. '21:00')")
    return value


TimeOfDay = Annotated[str, BeforeValidator(_time_of_day)]


class QuietHours(_Strict):
    """From `start` to `end` in the recipient's time zone (wrapping past midnight when end < start),
    a send is deferred to `end`."""

    start: TimeOfDay
    end: TimeOfDay

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end at the same time: write `quiet_hours: null` for none")
        return self


CapWindow = Annotated[
    int | Literal["calendar_day"],
    BeforeValidator(lambda v: v if v == "calendar_day" else parse_duration(v)),
]


class CapRule(_Strict):
    """At most `limit` sends in `window` (a rolling duration such as 7d, or the recipient's calendar
    day), counted across channels or per channel, over the topics named (default: every topic but
    transactional)."""

    id: RuleId
    limit: int = Field(ge=1, le=1000)
    window: CapWindow
    per_channel: bool = False
    channels: list[Channel] | None = None  # None: every channel
    topics: list[TopicId] | None = None  # None: every non-transactional topic
    on_cap: Literal["drop", "defer"] = "defer"
    max_deferral: DurationSeconds = 86400

    @field_validator("window")
    @classmethod
    def _window(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 0 < value <= 366 * 86400:
            raise ValueError("a rolling window is between 1s and 366d")
        return value

    @field_validator("max_deferral")
    @classmethod
    def _deferral(cls, value: int) -> int:
        if value > MAX_DEFERRAL_SECONDS:
            raise ValueError("max_deferral is at most 7d")
        return value

    def applies(self, topic: str, channel: str) -> bool:
        if topic == TRANSACTIONAL:
            return False
        if self.channels is not None and channel not in self.channels:
            return False
        return self.topics is None or topic in self.topics


class Links(_Strict):
    """How long the signed links in every email stay valid."""

    unsubscribe_expires: DurationSeconds = 90 * 86400
    preferences_expires: DurationSeconds = 90 * 86400


class Policy(_Strict):
    topics: dict[TopicId, Topic]
    default_topic: TopicId = DEFAULT_TOPIC
    quiet_hours: QuietHours | None = None
    # The zone of quiet hours and calendar-day caps for a recipient whose zone is unknown; None: such a
    # recipient has no quiet hours, and their calendar days are UTC days.
    default_timezone: str | None = None
    caps: list[CapRule] = Field(default_factory=list)
    links: Links = Field(default_factory=Links)

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None and iana_timezone(value) is None:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'America/New_York')")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        if TRANSACTIONAL not in self.topics:
            raise ValueError(f"the topic {TRANSACTIONAL!r} must be declared (sent whatever the opt-outs)")
        if self.default_topic not in self.topics:
            raise ValueError(f"default_topic {self.default_topic!r} is not a declared topic")
        ids = [rule.id for rule in self.caps]
        if len(ids) != len(set(ids)):
            raise ValueError(f"cap rule ids must be unique: {ids}")
        for rule in self.caps:
            unknown = sorted(set(rule.topics or ()) - set(self.topics))
            if unknown:
                raise ValueError(f"cap rule {rule.id!r} names unknown topic(s) {unknown}")
        return self


# -- what the gate reads per profile and per address ------------------------------------------------

ConsentSource = Literal["identify", "admin", "one_click", "preferences", "complaint"]


class ConsentRecord(_Strict):
    """A person's choice for one topic on one channel; the newest (`at`) wins, across merges too."""

    subscribed: bool
    source: ConsentSource
    at: str  # ISO-8601 UTC, when Continuum received the choice


def consent_key(topic: str, channel: str) -> str:
    return f"{topic}/{channel}"


class Suppression(_Strict):
    """An address no message is sent to again, whatever the topic (transactional too)."""

    reason: Literal["hard_bounce"]
    at: str
    source: str = "ses"
