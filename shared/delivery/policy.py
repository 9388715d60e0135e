"""The send policy as the functions read it: one JSON file (env `POLICY_FILE`; cloud:
`/opt/continuum/policy.json` in the shared layer, local: written by the engine), built from the
repository's `policy.yaml` at synth, like the journey and segment catalogues.

`read_policy_yaml` is for the build side (synth, the local runtime, the CLI): the functions do not
ship PyYAML, so it is imported only there.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from shared.models.policy import Policy


class PolicyLoadError(Exception):
    """A policy file that cannot be loaded, with the file and what is wrong in it."""


def load_policy(path: str | Path) -> Policy:
    """The policy at `path`, read again only when the file changed (a local reload rewrites it)."""
    stat = os.stat(path)
    return _load(str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int, inode: int) -> Policy:
    return Policy.model_validate_json(Path(path).read_bytes())


def read_policy_yaml(path: str | Path) -> Policy:
    """`policy.yaml` validated; PolicyLoadError names the file and each problem."""
    # Imported here: the functions read the JSON file, and the shared layer does not ship PyYAML.
    import yaml

    source = Path(path)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PolicyLoadError(f"{source}: cannot read the policy: {error}") from error
    try:
        return Policy.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'policy'}: {item['msg']}"
            for item in error.errors(include_url=False)
        )
        raise PolicyLoadError(f"{source}: {problems}") from error


def write_policy(policy: Policy, path: str | Path) -> Path:
    """Write the policy as JSON, to a temporary file then renamed: a reader never sees half of it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(policy.model_dump(mode="json"), file, separators=(",", ":"))
    os.replace(temporary, target)
    return target
