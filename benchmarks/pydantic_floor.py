"""A reference point, not a function: the bare handler plus importing pydantic and defining one
model. No function that validates with pydantic can start faster than this."""

from pydantic import BaseModel, Field

from benchmarks.baseline_handler import handler  # noqa: F401


class Event(BaseModel):
    name: str = Field(min_length=1)
