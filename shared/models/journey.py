"""Journey definitions: what a journey author writes (YAML beside its templates), validated here.

A journey is a tree of steps. Each step is a mapping with an optional `id` and exactly one verb key
(`wait`, `wait_until`, `wait_for`, `branch`, `split`, `send`, `update`, `exit`); compound steps hold
child paths (`on_event`/`on_timeout`, branch cases and `else`, split paths) that rejoin after the
compound step when they run out. Every step ends validation with its final id: the author's, or one
derived from the step's content and its parent (never its position), so inserting a step does not
change the ids, hence the state names and message keys, of the others.

The dumped form (`model_dump(mode="json")`) validates back to the same definition: the journey
catalogue ships definitions that way (shared/journeys/catalogue.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    Tag,
    field_validator,
    model_serializer,
    model_validator,
)

from shared.models.base import Model
from shared.models.durations import MAX_WAIT_SECONDS, UNIT_SECONDS, DurationSeconds, format_duration
from shared.models.policy import QuietHours, TopicId
from shared.models.types import Channel

_OFFSET = re.compile(r"^\s*([+-]?)\s*(\d+)\s*([smhd])\s*$")
# State names are step ids (≤ 80 characters in Step Functions); helper states add a suffix such as
# ".choice", so a step id keeps 8 characters of room for it.
STEP_ID_MAX_LENGTH = 72


def _parse_offset(value: object) -> object:
    """'-3d', '+2h', '90m' → signed seconds; an int is already seconds."""
    if isinstance(value, str):
        match = _OFFSET.match(value)
        if not match:
            raise ValueError(f"offset {value!r} is a duration with an optional sign (e.g. '-3d', '2h')")
        seconds = int(match.group(2)) * UNIT_SECONDS[match.group(3)]
        return -seconds if match.group(1) == "-" else seconds
    return value


OffsetSeconds = Annotated[
    int, BeforeValidator(_parse_offset), Field(ge=-MAX_WAIT_SECONDS, le=MAX_WAIT_SECONDS)
]
JourneyId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
TemplateName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
# A layout (journeys/_layouts/<name>.html.liquid, .txt.liquid) and a partial (journeys/_partials/
# <name>.liquid, e.g. `footer.html`: rendered with `{% render "footer.html" %}`).
LayoutName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
PartialName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]

# A profile entering or leaving a segment reaches the journey router as a track event of one of these
# names with the property `segment` (shared/journeys/router.py `segment_call`). Ingest refuses track
# events starting with the prefix (shared/models/segment.py), so only Continuum produces them.
SEGMENT_EVENT_PREFIX = "$segment."
SEGMENT_ENTERED = "$segment.entered"
SEGMENT_EXITED = "$segment.exited"
SEGMENT_PROPERTY = "segment"
# The journey sugar for them: `trigger: {segment_entered: vip}`, `exit_on: [{segment_exited: vip}]`.
SEGMENT_SUGAR = {"segment_entered": SEGMENT_ENTERED, "segment_exited": SEGMENT_EXITED}


def _known_segment_event(name: str) -> str:
    if name.startswith(SEGMENT_EVENT_PREFIX) and name not in (SEGMENT_ENTERED, SEGMENT_EXITED):
        raise ValueError(
            f"{name!r}: event names starting with {SEGMENT_EVENT_PREFIX!r} are Continuum's segment events,"
            f" {SEGMENT_ENTERED!r} or {SEGMENT_EXITED!r} (write segment_entered: <id> / segment_exited: <id>)"
        )
    return name


EventName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_known_segment_event)]
# A segment's or a computed trait's id, as segments/*.yaml and segments/computed_traits.yaml name them.
SegmentRef = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ComputedTraitRef = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
# Authors write `^[a-z0-9][a-z0-9_-]{0,47}$`; derived ids also hold dots (`<parent>.<path>.<step>`),
# and a dumped definition (the catalogue) carries them, so dots are allowed on validation too.
StepId = Annotated[str, Field(pattern=rf"^[a-z0-9][a-z0-9_.-]{{0,{STEP_ID_MAX_LENGTH - 1}}}$")]
PropertyName = Annotated[str, Field(pattern=r"^[^.\s][^\s]*$", max_length=200)]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
StepType = Literal["wait", "wait_until", "wait_for", "branch", "split", "send", "update", "exit"]
STEP_TYPES: tuple[StepType, ...] = (
    "wait",
    "wait_until",
    "wait_for",
    "branch",
    "split",
    "send",
    "update",
    "exit",
)


class _Strict(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- property conditions ---------------------------------------------------------------------------

Operator = Literal[
    "equals", "one_of", "exists", "gt", "gte", "lt", "lte", "before", "after", "same_as_trigger"
]
OPERATORS: tuple[Operator, ...] = (
    "equals",
    "one_of",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "before",
    "after",
    "same_as_trigger",
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_instant(value: str) -> datetime | date:
    """An ISO date-time or date as written in a `before`/`after` condition."""
    try:
        if "T" in value or " " in value.strip():
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        return date.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"{value!r} is not an ISO date-time or date (or 'now')") from error


class Condition(_Strict):
    """One property condition: an operator and its operand. Written as a scalar (`equals`) or a
    mapping with exactly one operator; dumped as that mapping."""

    op: Operator
    value: Any

    @model_validator(mode="before")
    @classmethod
    def _from_written(cls, data: Any) -> Any:
        if isinstance(data, Condition):
            return data
        if not isinstance(data, dict):
            return {"op": "equals", "value": data}
        if set(data) == {"op", "value"}:
            return data
        if len(data) != 1 or next(iter(data)) not in OPERATORS:
            raise ValueError(
                f"a condition is a value or a mapping with exactly one of {', '.join(OPERATORS)};"
                f" got {sorted(map(str, data))}"
            )
        ((op, value),) = data.items()
        return {"op": op, "value": value}

    @model_validator(mode="after")
    def _operand_fits(self) -> Condition:
        op, value = self.op, self.value
        if op == "one_of" and not isinstance(value, list):
            raise ValueError(f"one_of takes a list of values; got {value!r}")
        if op == "exists" and not isinstance(value, bool):
            raise ValueError(f"exists takes true or false; got {value!r}")
        if op in ("gt", "gte", "lt", "lte") and not _is_number(value):
            raise ValueError(f"{op} takes a number; got {value!r}")
        if op in ("before", "after"):
            if not isinstance(value, str | date):
                raise ValueError(f"{op} takes an ISO date-time or date, or 'now'; got {value!r}")
            if isinstance(value, date):  # YAML reads an unquoted date as a date
                object.__setattr__(self, "value", value.isoformat())
            elif value != "now":
                parse_instant(value)
        if op == "same_as_trigger" and not (value is True or (isinstance(value, str) and value)):
            raise ValueError(f"same_as_trigger takes true or the name of a trigger property; got {value!r}")
        return self

    @model_serializer
    def _as_written(self) -> dict[str, Any]:
        return {self.op: self.value}


Where = dict[PropertyName, Condition]


class EventRule(_Strict):
    """A track event by name, with property conditions (all must hold). Written as a mapping or,
    without conditions, as the event name alone; or as `{segment_entered: <segment id>}` /
    `{segment_exited: <segment id>}`, which is the segment event with `segment` equal to that id."""

    event: EventName
    where: Where = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"event": data}
        if isinstance(data, dict) and data.keys() & SEGMENT_SUGAR.keys():
            if len(data) != 1:
                raise ValueError(
                    f"{' / '.join(SEGMENT_SUGAR)} takes a segment id alone; got {sorted(map(str, data))}"
                )
            ((sugar, segment),) = data.items()
            if not isinstance(segment, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", segment):
                raise ValueError(f"{sugar}: {segment!r} is not a segment id (e.g. vip, cart_abandoners)")
            return {"event": SEGMENT_SUGAR[sugar], "where": {SEGMENT_PROPERTY: {"equals": segment}}}
        return data

    @property
    def segments(self) -> set[str]:
        """The segments this rule is about, when it is a segment event with a `segment` condition."""
        condition = self.where.get(SEGMENT_PROPERTY)
        if condition is None or not self.event.startswith(SEGMENT_EVENT_PREFIX):
            return set()
        if condition.op == "equals" and isinstance(condition.value, str):
            return {condition.value}
        if condition.op == "one_of":
            return {value for value in condition.value if isinstance(value, str)}
        return set()


class Goal(_Strict):
    """A conversion event within a window from entry; reaching it also exits unless told not to."""

    event: EventName
    within: DurationSeconds
    where: Where = Field(default_factory=dict)
    exit_on_goal: bool = True


class ReEntry(_Strict):
    """Whether a profile may enter again: `never`, `after_exit` (one run at a time), or a cap on
    entries (`max`) and/or a minimum interval between entries (`min_interval`), one run at a time."""

    mode: Literal["never", "after_exit", "cap"]
    max: int | None = Field(default=None, ge=1)
    min_interval: DurationSeconds | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_written(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"mode": data}
        if isinstance(data, dict) and "mode" not in data:
            return {"mode": "cap", **data}
        return data

    @model_validator(mode="after")
    def _cap_has_a_limit(self) -> ReEntry:
        if self.mode == "cap" and self.max is None and self.min_interval is None:
            raise ValueError("a re_entry cap needs max and/or min_interval")
        if self.mode != "cap" and (self.max is not None or self.min_interval is not None):
            raise ValueError(f"re_entry {self.mode!r} takes no max or min_interval")
        return self


# -- steps -----------------------------------------------------------------------------------------


class _Step(_Strict):
    id: StepId | None = None
    type: ClassVar[StepType]

    def spec(self) -> dict[str, Any]:
        """The step's own spec as JSON, child paths stripped (what a Task payload carries)."""
        spec: dict[str, Any] = getattr(self, self.type).model_dump(mode="json", exclude_none=True)
        return spec

    def paths(self) -> list[tuple[str, list[Step]]]:
        """The child paths, named as the graph names them (on_event, case-0, else, path-0, ...)."""
        return []

    def derived_id(self) -> str:
        return self.type.replace("_", "-")


class WaitStep(_Step):
    type: ClassVar[StepType] = "wait"
    wait: DurationSeconds

    def spec(self) -> dict[str, Any]:
        return {"seconds": self.wait}

    def derived_id(self) -> str:
        return f"wait-{format_duration(self.wait)}"


def _time_of_day(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 10:00 as the base-60 number 600.
        raise ValueError("write the time quoted, e.g. time: '10:00'")
    return value


TimeOfDay = Annotated[str, BeforeValidator(_time_of_day), Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class WaitUntilSpec(_Strict):
    """Either a local time of day (optionally days after entry, on given weekdays), or a date trait
    ± an offset (optionally at a local time of day)."""

    time: TimeOfDay | None = None
    days_after_entry: int | None = Field(default=None, ge=0, le=365)
    weekdays: list[Weekday] | None = Field(default=None, min_length=1)
    trait: PropertyName | None = None
    offset: OffsetSeconds | None = None

    @model_validator(mode="after")
    def _one_form(self) -> WaitUntilSpec:
        if self.trait is None:
            if self.time is None:
                raise ValueError("wait_until needs a time (e.g. time: '10:00') or a trait")
            if self.offset is not None:
                raise ValueError("wait_until offset goes with a trait")
        elif self.days_after_entry is not None or self.weekdays is not None:
            raise ValueError(
                "wait_until with a trait takes offset and time, not days_after_entry or weekdays"
            )
        return self


class WaitUntilStep(_Step):
    type: ClassVar[StepType] = "wait_until"
    wait_until: WaitUntilSpec

    def derived_id(self) -> str:
        spec = self.wait_until
        if spec.trait is not None:
            base = f"wait-until-{_slug(spec.trait)}"
            if spec.offset:
                base += f"-{'minus' if spec.offset < 0 else 'plus'}-{format_duration(abs(spec.offset))}"
            return base
        return f"wait-until-{(spec.time or '').replace(':', '-')}"


class WaitForSpec(_Strict):
    event: EventName
    where: Where = Field(default_factory=dict)
    timeout: DurationSeconds
    on_event: list[Step] = Field(default_factory=list)
    on_timeout: list[Step] = Field(default_factory=list)


class WaitForStep(_Step):
    type: ClassVar[StepType] = "wait_for"
    wait_for: WaitForSpec

    def spec(self) -> dict[str, Any]:
        return self.wait_for.model_dump(mode="json", exclude={"on_event", "on_timeout"})

    def paths(self) -> list[tuple[str, list[Step]]]:
        return [("on_event", self.wait_for.on_event), ("on_timeout", self.wait_for.on_timeout)]

    def derived_id(self) -> str:
        return f"wait-for-{_slug(self.wait_for.event)}"


class JourneyCondition(_Strict):
    """What this run already did: a message from step `sent` was queued or sent, and/or one from
    step `dropped` was dropped."""

    sent: StepId | None = None
    dropped: StepId | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> JourneyCondition:
        if self.sent is None and self.dropped is None:
            raise ValueError("a journey condition needs sent and/or dropped")
        return self


class When(_Strict):
    """A branch case's conditions, all of which must hold. `segments`: membership (`vip: true` —
    a member of vip; `false` — not one); `computed`: conditions on the profile's computed traits."""

    traits: Where = Field(default_factory=dict)
    trigger: Where = Field(default_factory=dict)
    journey: JourneyCondition | None = None
    segments: dict[SegmentRef, StrictBool] = Field(default_factory=dict)
    computed: dict[ComputedTraitRef, Condition] = Field(default_factory=dict)

    @model_serializer(mode="wrap")
    def _without_empty_segment_conditions(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when empty: a branch without them compiles to the same state machine as before.
        dumped: dict[str, Any] = handler(self)
        for name in ("segments", "computed"):
            if not dumped.get(name):
                dumped.pop(name, None)
        return dumped

    @model_validator(mode="after")
    def _not_empty(self) -> When:
        if not (self.traits or self.trigger or self.journey or self.segments or self.computed):
            raise ValueError(
                "a case's when needs traits, trigger, journey, segments and/or computed conditions (use else)"
            )
        return self

    @property
    def reads_segment_state(self) -> bool:
        """Whether the case needs the profile's segment state (membership, computed traits)."""
        return bool(self.segments or self.computed)


class Case(_Strict):
    when: When
    steps: list[Step] = Field(default_factory=list)


class BranchSpec(_Strict):
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    cases: list[Case] = Field(min_length=1)
    else_: list[Step] = Field(default_factory=list, alias="else")


class BranchStep(_Step):
    type: ClassVar[StepType] = "branch"
    branch: BranchSpec

    def spec(self) -> dict[str, Any]:
        return {
            "cases": [
                {"when": case.when.model_dump(mode="json", exclude_none=True)} for case in self.branch.cases
            ]
        }

    def paths(self) -> list[tuple[str, list[Step]]]:
        cases = [(f"case-{i}", case.steps) for i, case in enumerate(self.branch.cases)]
        return [*cases, ("else", self.branch.else_)]


class SplitPath(_Strict):
    weight: float = Field(gt=0, allow_inf_nan=False)
    steps: list[Step] = Field(default_factory=list)


class SplitSpec(_Strict):
    paths: list[SplitPath] = Field(min_length=2)


class SplitStep(_Step):
    type: ClassVar[StepType] = "split"
    split: SplitSpec

    def spec(self) -> dict[str, Any]:
        return {"paths": [{"weight": path.weight} for path in self.split.paths]}

    def paths(self) -> list[tuple[str, list[Step]]]:
        return [(f"path-{i}", path.steps) for i, path in enumerate(self.split.paths)]


class SendSpec(_Strict):
    channel: Channel
    template: TemplateName
    # The subscription topic (policy.yaml) whose consent, caps and quiet hours apply; None: the
    # policy's default_topic (marketing). Checked against the policy when journeys load.
    topic: TopicId | None = None


class SendStep(_Step):
    type: ClassVar[StepType] = "send"
    send: SendSpec

    def derived_id(self) -> str:
        return f"send-{self.send.channel}-{self.send.template}"


class UpdateSpec(_Strict):
    """Traits to set and traits to unset on the profile (published like an identify)."""

    set: dict[PropertyName, Any] = Field(default_factory=dict)
    unset: list[PropertyName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _does_something(self) -> UpdateSpec:
        if not self.set and not self.unset:
            raise ValueError("an update needs set and/or unset")
        both = sorted(self.set.keys() & frozenset(self.unset))
        if both:
            raise ValueError(f"an update cannot both set and unset {both}")
        return self


class UpdateStep(_Step):
    type: ClassVar[StepType] = "update"
    update: UpdateSpec


class ExitStep(_Step):
    type: ClassVar[StepType] = "exit"
    exit: dict[str, Any] = Field(default_factory=dict)

    @field_validator("exit", mode="before")
    @classmethod
    def _nothing(cls, value: Any) -> Any:
        if value is None:
            return {}
        if value != {}:
            raise ValueError("exit takes nothing: write `- exit` or `exit: {}`")
        return value

    def spec(self) -> dict[str, Any]:
        return {}


_STEP_CLASSES: dict[str, type[_Step]] = {
    "wait": WaitStep,
    "wait_until": WaitUntilStep,
    "wait_for": WaitForStep,
    "branch": BranchStep,
    "split": SplitStep,
    "send": SendStep,
    "update": UpdateStep,
    "exit": ExitStep,
}


# Each Task step's spec model: `Model.model_validate(step.spec())` gives the spec back (children
# stripped), which is how the journey-steps function reads a Task payload's `spec`.
SPEC_MODELS: dict[str, type[_Strict]] = {
    "wait_until": WaitUntilSpec,
    "wait_for": WaitForSpec,
    "branch": BranchSpec,
    "split": SplitSpec,
    "send": SendSpec,
    "update": UpdateSpec,
}


def _one_verb(value: Any) -> Any:
    """A written step: a mapping with an optional id and exactly one verb (or the bare `exit`)."""
    if isinstance(value, _Step):
        return value
    if value == "exit":
        return {"exit": {}}
    if not isinstance(value, dict):
        raise ValueError(f"a step is a mapping with one of {', '.join(STEP_TYPES)}; got {value!r}")
    verbs = [key for key in value if key != "id"]
    if len(verbs) != 1 or verbs[0] not in _STEP_CLASSES:
        raise ValueError(
            f"a step has exactly one of {', '.join(STEP_TYPES)} (and optionally id);"
            f" got {sorted(map(str, verbs))}"
        )
    return value


def _verb(value: Any) -> str | None:
    if isinstance(value, _Step):
        return value.type
    if isinstance(value, dict):
        return next((key for key in value if key in _STEP_CLASSES), None)
    return None


Step = Annotated[
    Annotated[
        Union[  # noqa: UP007 — Tag needs each member annotated inside the union
            Annotated[WaitStep, Tag("wait")],
            Annotated[WaitUntilStep, Tag("wait_until")],
            Annotated[WaitForStep, Tag("wait_for")],
            Annotated[BranchStep, Tag("branch")],
            Annotated[SplitStep, Tag("split")],
            Annotated[SendStep, Tag("send")],
            Annotated[UpdateStep, Tag("update")],
            Annotated[ExitStep, Tag("exit")],
        ],
        Discriminator(_verb),
    ],
    BeforeValidator(_one_verb),
]
AnyStep = WaitStep | WaitUntilStep | WaitForStep | BranchStep | SplitStep | SendStep | UpdateStep | ExitStep


# -- ids -------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-_") or "x"


def _fit(candidate: str) -> str:
    """A derived id within the length limit: long ones keep a readable head and a hash of the rest."""
    if len(candidate) <= STEP_ID_MAX_LENGTH:
        return candidate
    digest = hashlib.sha256(candidate.encode()).hexdigest()[:8]
    return f"{candidate[: STEP_ID_MAX_LENGTH - 9].rstrip('.-_')}-{digest}"


def _with_children(step: _Step, paths: dict[str, list[Step]]) -> _Step:
    """A copy of a compound step whose child paths are replaced (same names as `paths()`)."""
    if isinstance(step, WaitForStep):
        spec = step.wait_for.model_copy(
            update={"on_event": paths["on_event"], "on_timeout": paths["on_timeout"]}
        )
        return step.model_copy(update={"wait_for": spec})
    if isinstance(step, BranchStep):
        cases = [
            case.model_copy(update={"steps": paths[f"case-{i}"]}) for i, case in enumerate(step.branch.cases)
        ]
        branch = step.branch.model_copy(update={"cases": cases, "else_": paths["else"]})
        return step.model_copy(update={"branch": branch})
    if isinstance(step, SplitStep):
        split_paths = [
            path.model_copy(update={"steps": paths[f"path-{i}"]}) for i, path in enumerate(step.split.paths)
        ]
        return step.model_copy(update={"split": step.split.model_copy(update={"paths": split_paths})})
    return step


def _exits_last(steps: list[Step], where: str) -> None:
    """Nothing may follow an exit in its path: it would never run."""
    for i, step in enumerate(steps):
        if isinstance(step, ExitStep) and i + 1 < len(steps):
            raise ValueError(f"{where}: steps after an exit are never reached (step {i + 1})")
        for name, path in step.paths():
            _exits_last(path, f"step {step.id!r} {name}")


def _iter_tree(steps: list[Step]) -> Iterator[_Step]:
    for step in steps:
        yield step
        for _, children in step.paths():
            yield from _iter_tree(children)


def _assign_ids(steps: list[Step], prefix: str, taken: set[str]) -> list[Step]:
    """Give every step without an id one derived from its content and its parent's path."""
    assigned: list[Step] = []
    for step in steps:
        step_id = step.id
        if step_id is None:
            base = _fit(f"{prefix}{step.derived_id()}")
            step_id, n = base, 1
            while step_id in taken:
                n += 1
                step_id = _fit(f"{base}-{n}")
            taken.add(step_id)
        children = {name: _assign_ids(path, f"{step_id}.{name}.", taken) for name, path in step.paths()}
        completed = _with_children(step, children) if children else step
        assigned.append(completed.model_copy(update={"id": step_id}))  # type: ignore[arg-type]
    return assigned


def _certain_seconds(steps: list[Step], elapsed: int) -> tuple[int, bool]:
    """The time from entry a run certainly reaches by the end of `steps` (waits in full, a wait_for's
    timeout on its on_timeout path, a wait_until's days after entry; a trait's date counts nothing),
    the longest over child paths; and whether the path ended in an exit."""
    for step in steps:
        if isinstance(step, WaitStep):
            elapsed += step.wait
        elif isinstance(step, WaitUntilStep):
            elapsed = max(elapsed, (step.wait_until.days_after_entry or 0) * UNIT_SECONDS["d"])
        elif isinstance(step, ExitStep):
            return elapsed, True
        elif step.paths():
            starts = dict.fromkeys((name for name, _ in step.paths()), elapsed)
            if isinstance(step, WaitForStep):
                starts["on_timeout"] = elapsed + step.wait_for.timeout
            ends = [_certain_seconds(path, starts[name]) for name, path in step.paths()]
            # The longest path through here, whether it goes on after the step or exits inside it.
            longest_exit = max((end for end, exited in ends if exited), default=0)
            going_on = [end for end, exited in ends if not exited]
            if not going_on:
                return max(longest_exit, elapsed), True
            if longest_exit > MAX_WAIT_SECONDS:
                return longest_exit, True
            elapsed = max(going_on)
    return elapsed, False


# -- the definition --------------------------------------------------------------------------------


class JourneyDefinition(_Strict):
    id: JourneyId
    name: str = Field(min_length=1)
    trigger: EventRule = Field(description="track event (with conditions) that starts the journey")
    exit_on: list[EventRule] = Field(
        default_factory=list, description="events that stop a run at once, from any step"
    )
    goal: Goal | None = None
    holdout: float = Field(default=0, ge=0, le=100, description="percent of entries held out")
    re_entry: ReEntry = Field(default_factory=lambda: ReEntry(mode="after_exit"))
    # Overrides the policy's quiet hours for this journey's sends: `false` for none, or {start, end};
    # absent (None): the policy's.
    quiet_hours: QuietHours | Literal[False] | None = None
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _ids_and_sends(self) -> JourneyDefinition:
        written: dict[str, int] = {}
        for step in _iter_tree(self.steps):
            if step.id is not None:
                written[step.id] = written.get(step.id, 0) + 1
        duplicates = sorted(step_id for step_id, count in written.items() if count > 1)
        if duplicates:
            raise ValueError(f"step ids must be unique in a journey; repeated: {duplicates}")
        # Frozen model: the ids are completed once, here, before anyone sees the definition.
        object.__setattr__(self, "steps", _assign_ids(self.steps, "", set(written)))
        _exits_last(self.steps, "steps")
        longest, _ = _certain_seconds(self.steps, 0)
        if longest > MAX_WAIT_SECONDS:
            raise ValueError(
                f"a path of this journey waits at least {format_duration(longest)} from entry; a run lives"
                f" at most a year ({format_duration(MAX_WAIT_SECONDS)}, a Step Functions execution's limit)"
            )
        by_id = {step.id: step for step in self.walk()}
        if not any(isinstance(step, SendStep) for step in by_id.values()):
            raise ValueError("a journey needs at least one send step")
        for step in by_id.values():
            if isinstance(step, BranchStep):
                for i, case in enumerate(step.branch.cases):
                    if case.when.journey is None:
                        continue
                    for kind in ("sent", "dropped"):
                        ref = getattr(case.when.journey, kind)
                        if ref is not None and not isinstance(by_id.get(ref), SendStep):
                            raise ValueError(
                                f"step {step.id!r} case {i}: journey {kind}: {ref!r} is not a send step"
                                " of this journey"
                            )
        return self

    def walk(self) -> Iterator[AnyStep]:
        """Every step in the tree, depth first (a step, then its child paths in order)."""
        yield from _iter_tree(self.steps)  # type: ignore[misc]

    def step(self, step_id: str) -> AnyStep:
        """The step with this id; KeyError if there is none."""
        for step in self.walk():
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def awaited_events(self) -> set[str]:
        """The event names some wait_for step waits for."""
        return {step.wait_for.event for step in self.walk() if isinstance(step, WaitForStep)}

    def send_step_ids(self) -> list[str]:
        return [step.id for step in self.walk() if isinstance(step, SendStep) and step.id is not None]

    def cases(self) -> Iterator[When]:
        """Every branch case's conditions."""
        for step in self.walk():
            if isinstance(step, BranchStep):
                yield from (case.when for case in step.branch.cases)

    def segments_named(self) -> set[str]:
        """The segments the journey names: in its trigger and exit_on, and in branch cases."""
        named = set(self.trigger.segments)
        for rule in self.exit_on:
            named |= rule.segments
        for when in self.cases():
            named |= when.segments.keys()
        return named

    def computed_named(self) -> set[str]:
        """The computed traits the journey's branch cases read."""
        return {name for when in self.cases() for name in when.computed}


# -- templates and the loaded journey --------------------------------------------------------------


class EmailContent(_Strict):
    """Liquid sources (shared/delivery/templates.py). `layout`: the name of a layout under
    journeys/_layouts/ wrapping `text` and `html` (None: sent as written)."""

    subject: str = Field(min_length=1)
    text: str = Field(min_length=1)
    html: str | None = None
    layout: LayoutName | None = None

    def fields(self) -> dict[str, str]:
        """The fields rendered and sent (the layout is not one: it wraps them)."""
        return self.model_dump(exclude_none=True, exclude={"layout"})


class PushContent(_Strict):
    title: str = Field(min_length=1)
    body: str = Field(min_length=1)

    def fields(self) -> dict[str, str]:
        return self.model_dump(exclude_none=True)


class Template(_Strict):
    """One message template, with content per channel it can be sent on."""

    name: TemplateName
    email: EmailContent | None = None
    push: PushContent | None = None

    def content_for(self, channel: str) -> EmailContent | PushContent | None:
        content: EmailContent | PushContent | None = getattr(self, channel, None)
        return content


class Journey(_Strict):
    """A definition with the templates it uses, as loaded from its folder, and the layouts (name →
    field (`text`, `html`) → Liquid source) and partials (name → source) shared by every journey."""

    definition: JourneyDefinition
    templates: dict[str, Template]
    layouts: dict[LayoutName, dict[Literal["text", "html"], str]] = Field(default_factory=dict)
    partials: dict[PartialName, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _templates_cover_sends(self) -> Journey:
        for step in self.definition.walk():
            if isinstance(step, SendStep):
                template = self.templates.get(step.send.template)
                if template is None:
                    raise ValueError(
                        f"step {step.id!r}: send uses template {step.send.template!r}, which does not exist"
                    )
                if template.content_for(step.send.channel) is None:
                    raise ValueError(
                        f"step {step.id!r}: template {step.send.template!r}"
                        f" has no {step.send.channel} content"
                    )
        return self

    @model_validator(mode="after")
    def _layouts_exist(self) -> Journey:
        for name, template in sorted(self.templates.items()):
            layout = template.email.layout if template.email is not None else None
            if layout is not None and layout not in self.layouts:
                raise ValueError(
                    f"template {name!r}: layout {layout!r} does not exist"
                    f" (layouts: {sorted(self.layouts) or 'none'})"
                )
        return self

    def send_content(self, template: str, channel: str) -> dict[str, Any]:
        """What a send step's payload carries to render the template on the channel: `content`, and
        for an email with a layout `layout` (field → source), and `partials` (name → source) that the
        content and layout render: inlined, so an execution keeps the templates it started with."""
        # Imported here: the models stay importable without python-liquid.
        from shared.delivery.templates import partials_used

        content = self.templates[template].content_for(channel)
        assert content is not None  # _templates_cover_sends
        fields = content.fields()
        layout: dict[str, str] = {}
        if isinstance(content, EmailContent) and content.layout is not None:
            layout = {str(field): source for field, source in self.layouts[content.layout].items()}
        payload: dict[str, Any] = {"content": fields}
        if layout:
            payload["layout"] = layout
        partials = partials_used([*fields.values(), *layout.values()], self.partials)
        if partials:
            payload["partials"] = partials
        return payload
