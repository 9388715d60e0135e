"""The shared layer carries python-liquid and everything it imports: the templates render from the
layer's python/ folder alone (no site-packages), as they must on Lambda, where only the runtime's
standard library, the Powertools layer and this layer are on the path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from infra.constructs.shared_layer import CopyPackages, layer_files, layer_packages

# -I -S: no site-packages, no user site, no PYTHONPATH; only the bundled folder and the stdlib.
PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from shared.delivery.templates import render_content
rendered = render_content(
    {"html": "<p>{{ name }} {{ at | date: '%H:%M', 'Europe/Paris' }} {{ missing | default: 'x' }}</p>"},
    {"name": "<b>", "at": "2024-05-01T12:00:00Z"},
)
print(rendered["html"])
import liquid, markupsafe
assert all(path.startswith(sys.argv[1]) for path in (liquid.__file__, markupsafe.__file__))
"""


def test_the_layer_renders_templates_without_site_packages(tmp_path: Path) -> None:
    CopyPackages(layer_packages(), layer_files()).try_bundle(str(tmp_path), image=None)  # type: ignore[arg-type]

    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(tmp_path / "python")],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "<p>&lt;b&gt; 14:00 x</p>"
    assert not list((tmp_path / "python" / "markupsafe").glob("*.so"))
