"""CDK entry point. `python -m infra.app` (what cdk.json runs) synthesizes to ./cdk.out.

Works with or without the CDK CLI, and needs neither Docker nor an AWS account: the stack is
environment-agnostic and every asset is bundled locally. cdk-nag (AWS Solutions) runs as a
validation plugin during synth and fails it on any finding not acknowledged with a reason.

Deployment settings are checked before anything is built. A deploy (`make deploy`, which passes
`-c continuum:strict=true`) refuses missing settings, the placeholders cdk.json ships and unknown
`continuum:` keys, naming each and how to set it. Inspection (`make synth`, `python -m infra.app
--inspect`, i.e. `continuum:strict=false`) only warns, and fills a missing setting with its placeholder
so the template can still be read. Without the flag the app is strict: a bare `cdk deploy` is refused
too, rather than deploying placeholders.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


STRICT = SETTING_CONTEXT_PREFIX + "strict"
# Settings of the stack itself, not of a function: optional.
ALARM_EMAIL = "ALARM_EMAIL"
STACK_SETTINGS = {ALARM_EMAIL: "an email address subscribed to the alarms topic (optional; confirm the mail)"}

# The values cdk.json ships, which stand in for a deployment's own. Inspection uses them for a missing
# setting; a deploy refuses them.
PLACEHOLDERS = {
    "EMAIL_SENDER": "no-reply@example.com",
    "PUSH_PLATFORM_APPLICATION_ARN": "arn:aws:sns:us-east-1:123456789012:app/GCM/continuum",
}
# Domains reserved for documentation (RFC 2606) and the account id of AWS's documentation examples:
# a value using them can only be a placeholder.
_EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
_EXAMPLE_SUFFIXES = (".example", ".invalid", ".test", ".localhost")
_EXAMPLE_ACCOUNT = ":123456789012:"


class UnsafeSettingsError(Exception):
    """A deploy was asked for with settings missing, placeholders, or unknown."""


def is_placeholder(name: str, value: str) -> bool:
    if value == PLACEHOLDERS.get(name):
        return True
    if "@" in value:
        domain = value.rsplit("@", 1)[1].lower()
        if domain in _EXAMPLE_DOMAINS or domain.endswith(_EXAMPLE_SUFFIXES):
            return True
    return value.startswith("arn:") and _EXAMPLE_ACCOUNT in value


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    return context


def is_strict(app: cdk.App) -> bool:
    """Strict unless inspection asked otherwise (`continuum:strict=false`): fail safe."""
    value = app.node.try_get_context(STRICT)
    return str(value).strip().lower() not in ("false", "0", "no") if value is not None else True


@dataclass(frozen=True)
class DeploySettings:
    functions: dict[str, str]  # setting → value, every setting some function reads
    alarm_email: str | None


def _how_to_set(name: str) -> str:
    return (
        f"set {SETTING_CONTEXT_PREFIX}{name} under 'context' in cdk.json, or pass "
        f'CDK_ARGS="-c {SETTING_CONTEXT_PREFIX}{name}=<value>" to make deploy'
    )


def read_settings(
    app: cdk.App, topology: Topology, *, warn: Callable[[str], None] = lambda message: None
) -> DeploySettings:
    """Every setting the stack needs, checked. Strict: any problem raises, naming every setting at
    fault. Otherwise each problem is a warning and a missing setting takes its placeholder; a setting
    with no placeholder still stops the synth, as nothing sensible can stand in for it."""
    strict = is_strict(app)
    needed = sorted({name for function in topology.functions for name in function.settings})
    problems: list[str] = []
    unfillable: list[str] = []  # missing, with no placeholder to stand in even for inspection
    values: dict[str, str] = {}
    for name in needed:
        raw = app.node.try_get_context(SETTING_CONTEXT_PREFIX + name)
        value = "" if raw is None else str(raw).strip()
        what = SETTINGS.get(name, "(undocumented)")
        if not value:
            problems.append(f"{SETTING_CONTEXT_PREFIX}{name} is missing ({what}); {_how_to_set(name)}")
            if name not in PLACEHOLDERS:
                unfillable.append(problems[-1])
            value = PLACEHOLDERS.get(name, "")
        elif is_placeholder(name, value):
            problems.append(
                f"{SETTING_CONTEXT_PREFIX}{name} is the placeholder {value!r} ({what}); {_how_to_set(name)}"
            )
        values[name] = value

    raw_email = app.node.try_get_context(SETTING_CONTEXT_PREFIX + ALARM_EMAIL)
    alarm_email = str(raw_email).strip() if raw_email else None
    if alarm_email and is_placeholder(ALARM_EMAIL, alarm_email):
        problems.append(
            f"{SETTING_CONTEXT_PREFIX}{ALARM_EMAIL} is the placeholder {alarm_email!r}; "
            + _how_to_set(ALARM_EMAIL)
        )
        alarm_email = None

    known = {SETTING_CONTEXT_PREFIX + name for name in (*needed, *STACK_SETTINGS)}
    for key in sorted(app.node.get_all_context()):
        if key.startswith(SETTING_CONTEXT_PREFIX) and key not in known | {STRICT}:
            problems.append(
                f"{key} is not a setting of this version; remove it (settings: {', '.join(sorted(known))})"
            )

    if strict and problems:
        raise UnsafeSettingsError(
            "refusing to deploy with these settings:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    if unfillable:
        raise UnsafeSettingsError(
            "cannot synthesize without these settings:\n" + "\n".join(f"  - {p}" for p in unfillable)
        )
    for problem in problems:
        warn(f"warning: {problem} (a deploy would refuse this)")
    if alarm_email is None:
        warn(
            f"note: no {SETTING_CONTEXT_PREFIX}{ALARM_EMAIL}: alarms reach only the SNS topic of the "
            "AlarmTopicArn output; subscribe to it"
        )
    return DeploySettings(functions=values, alarm_email=alarm_email)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def build_app(
    *,
    outdir: str | Path,
    context: Mapping[str, Any] | None = None,
    warn: Callable[[str], None] = _stderr,
    topology: Topology = TOPOLOGY,
) -> tuple[cdk.App, ContinuumStack]:
    """The app and its stack, not yet synthesized. `context` defaults to cdk.json's: when the CDK CLI
    runs this, it passes its own context too (cdk.json plus any -c), which takes precedence.
    `topology` is for tests (e.g. another journeys folder)."""
    app = cdk.App(outdir=str(outdir), context=dict(cdk_json_context() if context is None else context))
    settings = read_settings(app, topology, warn=warn)
    stack = ContinuumStack(
        app, STACK_NAME, topology=topology, settings=settings.functions, alarm_email=settings.alarm_email
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.app", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--inspect",
        action="store_true",
        help="synthesize for reading only: warn about placeholder settings instead of refusing them",
    )
    args = parser.parse_args(argv)
    context = cdk_json_context()
    if args.inspect:
        context[STRICT] = "false"
    # Under the CLI, write where it reads from; run directly, write to ./cdk.out (cdk.App() alone would
    # pick a temporary directory).
    outdir = os.environ.get("CDK_OUTDIR", str(ROOT / "cdk.out"))
    try:
        app, _ = build_app(outdir=outdir, context=context)
    except UnsafeSettingsError as error:
        raise SystemExit(f"error: {error}") from error
    app.synth()


if __name__ == "__main__":
    main()
