"""Cold start: each function's import-and-init time in a fresh interpreter, as a ratio to a bare
handler (boto3 + Powertools Logger + Metrics), measured side by side in one run.

Rounds interleave the modules so machine noise falls on all of them alike; the median is reported.
Target: every ratio ≤ 1.3.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from infra.topology import TOPOLOGY

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "benchmarks.baseline_handler"
FLOOR = "benchmarks.pydantic_floor"
TARGET = 1.3
# boto3 is imported after the module in every probe: a handler that imports it lazily is still
# charged for it, as its first invocation would be.
_PROBE = (
    "import time, importlib; t = time.perf_counter(); importlib.import_module({module!r}); "
    "import boto3; print(time.perf_counter() - t)"
)


def measure(module: str) -> float:
    env = {**os.environ, "POWERTOOLS_SERVICE_NAME": "continuum", "POWERTOOLS_METRICS_NAMESPACE": "Continuum"}
    output = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(output.strip().splitlines()[-1])


def run(rounds: int = 15) -> bool:
    modules = [BASELINE, FLOOR, *(f.module for f in TOPOLOGY.functions)]
    samples: dict[str, list[float]] = {m: [] for m in modules}
    for i in range(rounds):
        order = modules[i % len(modules) :] + modules[: i % len(modules)]
        for module in order:
            samples[module].append(measure(module))
        print(f"  round {i + 1}/{rounds}", file=sys.stderr, flush=True)
    base = statistics.median(samples[BASELINE])
    print(f"\nCold start (import + init, median of {rounds} fresh interpreters), ratio to the bare handler")
    print(f"{'function':<16}{'ms':>9}{'ratio':>8}   target ≤ {TARGET}")
    print(f"{'(bare handler)':<16}{base * 1000:>9.1f}{1.0:>8.2f}")
    floor = statistics.median(samples[FLOOR])
    print(f"{'(+ pydantic)':<16}{floor * 1000:>9.1f}{floor / base:>8.2f}   floor of any pydantic function")
    ok = True
    for function in TOPOLOGY.functions:
        median = statistics.median(samples[function.module])
        ratio = median / base
        ok &= ratio <= TARGET
        print(
            f"{function.name:<16}{median * 1000:>9.1f}{ratio:>8.2f}   {'ok' if ratio <= TARGET else 'OVER'}"
        )
    return ok


if __name__ == "__main__":
    run()
