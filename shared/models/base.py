"""The base of every Continuum model.

`defer_build`: pydantic builds a model's validator when it is first used rather than when its class
is defined. Each function uses a handful of the shared models; building them all at import time
cost every cold start tens of milliseconds for models that function never touches.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)
