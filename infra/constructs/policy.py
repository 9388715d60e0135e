"""The send policy in the cloud: policy.yaml validated at synth and shipped in the shared layer as
JSON (`/opt/continuum/policy.json`, env POLICY_FILE), like the journey and segment catalogues."""

from __future__ import annotations

import tempfile
from pathlib import Path

# The policy's path in the shared layer (the functions read /opt/<this>).
POLICY_IN_LAYER = "continuum/policy.json"


def policy_file(policy_yaml: Path) -> bytes:
    """The policy as the functions read it, built at synth with the writer the local runtime uses;
    an invalid policy fails the synth (PolicyLoadError names the file and the problem)."""
    from shared.delivery.policy import read_policy_yaml, write_policy

    with tempfile.TemporaryDirectory() as folder:
        return write_policy(read_policy_yaml(policy_yaml), Path(folder) / "policy.json").read_bytes()
