"""CDK entry point. `python -m infra.app` (what cdk.json runs) synthesizes to ./cdk.out.

Works with or without the CDK CLI, and needs neither Docker nor an AWS account: the stack is
environment-agnostic and every asset is bundled locally. cdk-nag (AWS Solutions) runs as a
validation plugin during synth and fails it on any finding not acknowledged with a reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.stacks.continuum_stack import ContinuumStack
from infra.topology import ROOT, SETTINGS, TOPOLOGY, Topology

STACK_NAME = "Continuum"
CDK_JSON = ROOT / "cdk.json"
# Deployment settings are read from context keys `continuum:<SETTING>` (cdk.json, or `-c` on the CLI).
SETTING_CONTEXT_PREFIX = "continuum:"


class MissingSettingError(Exception):
    """A deployment setting a function needs has no value in the CDK context."""


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    return context


def read_settings(app: cdk.App, topology: Topology) -> dict[str, str]:
    """The value of every setting some function reads; no defaults, a missing one stops the synth."""
    needed = sorted({name for function in topology.functions for name in function.settings})
    values = {name: app.node.try_get_context(SETTING_CONTEXT_PREFIX + name) for name in needed}
    missing = [name for name, value in values.items() if value is None or str(value).strip() == ""]
    if missing:
        lines = [
            f"  {SETTING_CONTEXT_PREFIX}{name}: {SETTINGS.get(name, '(undocumented)')}" for name in missing
        ]
        raise MissingSettingError(
            "missing deployment settings; set them under 'context' in cdk.json or pass "
            "-c key=value to cdk:\n" + "\n".join(lines)
        )
    return {name: str(value) for name, value in values.items()}


def build_app(
    *, outdir: str | Path, context: Mapping[str, Any] | None = None
) -> tuple[cdk.App, ContinuumStack]:
    """The app and its stack, not yet synthesized. `context` defaults to cdk.json's: when the CDK CLI
    runs this, it passes its own context too (cdk.json plus any -c), which takes precedence."""
    app = cdk.App(outdir=str(outdir), context=dict(cdk_json_context() if context is None else context))
    stack = ContinuumStack(app, STACK_NAME, topology=TOPOLOGY, settings=read_settings(app, TOPOLOGY))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def main() -> None:
    # Under the CLI, write where it reads from; run directly, write to ./cdk.out (cdk.App() alone would
    # pick a temporary directory).
    outdir = os.environ.get("CDK_OUTDIR", str(ROOT / "cdk.out"))
    try:
        app, _ = build_app(outdir=outdir)
    except MissingSettingError as error:
        raise SystemExit(f"error: {error}") from error
    app.synth()


if __name__ == "__main__":
    main()
