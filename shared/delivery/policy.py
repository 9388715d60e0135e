"""The send policy as the functions read it: a JSON file (env POLICY_FILE; cloud: in the shared layer,
local: written by the engine), cached by path and modification like the segment catalogue.

In-branch stand-in (i10-links) for the loader branch i10-gate owns, with the same signatures
(`load_policy`, `read_policy_yaml`, `write_policy`): the merge keeps i10-gate's.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from shared.models.policy import Policy


def read_policy_yaml(path: str | Path) -> Policy:
    """policy.yaml as the team writes it, validated (infra-side: needs PyYAML, imported here only)."""
    import yaml

    return Policy.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def write_policy(policy: Policy, path: str | Path) -> None:
    Path(path).write_text(policy.model_dump_json(), encoding="utf-8")


def load_policy(path: str | Path) -> Policy:
    stat = os.stat(path)
    return _load(str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int, inode: int) -> Policy:
    return Policy.model_validate_json(Path(path).read_bytes())
