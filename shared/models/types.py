"""Reusable field types shared by wire, domain and storage models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

Channel = Literal["email", "push"]
PROFILE_ID_MAX_LENGTH = 64
ProfileId = Annotated[str, Field(min_length=1, max_length=PROFILE_ID_MAX_LENGTH)]
