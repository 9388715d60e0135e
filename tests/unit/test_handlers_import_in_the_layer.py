"""Every Lambda handler imports with what the cloud gives it: the shared layer does not ship PyYAML
(only the build reads YAML: synth, the local runtime, the CLI), so a handler importing it at module
level would fail at its first cold start in AWS and nowhere on a laptop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Refuses the build-only modules, then imports every handler module named on the command line.
PROBE = """
import importlib, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "yaml" or name.startswith("yaml."):
            raise ImportError(f"{name} is not in the Lambda layer")
        return None
sys.meta_path.insert(0, Refuse())
for module in sys.argv[1:]:
    importlib.import_module(module)
"""


def test_every_handler_imports_without_pyyaml() -> None:
    handlers = sorted(f"functions.{p.parent.name}.handler" for p in (ROOT / "functions").glob("*/handler.py"))
    assert "functions.segments.handler" in handlers
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *handlers], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
