"""`make bench`: every benchmark, each reporting ratios measured side by side in one run.
Results are reported, not enforced: these machines are shared and noisy.

BENCH_ONLY=journeys,pipeline_cost runs just those; BENCH_CUSTOMERS=n sizes the pipeline-cost run
(1,000 customers by default, a few minutes; e.g. 100 for a quick look)."""

from __future__ import annotations

import os
import subprocess
import sys

BENCHMARKS = (
    "cold_start",
    "ingest",
    "identity",
    "dispatch",
    "journeys",
    "segments",
    "templates",
    "pipeline_cost",
)

if __name__ == "__main__":
    only = [name for name in os.environ.get("BENCH_ONLY", "").split(",") if name]
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        sys.exit(
            f"BENCH_ONLY: no benchmark named {', '.join(sorted(unknown))} (known: {', '.join(BENCHMARKS)})"
        )
    # Each in its own interpreter: the ingest benchmark replaces boto3's clients with fakes.
    for name in only or BENCHMARKS:
        subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=True)
