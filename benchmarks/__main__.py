"""`make bench`: every benchmark, each reporting ratios measured side by side in one run.
Results are reported, not enforced: these machines are shared and noisy."""

from __future__ import annotations

import subprocess
import sys

if __name__ == "__main__":
    # Each in its own interpreter: the ingest benchmark replaces boto3's clients with fakes.
    for module in (
        "benchmarks.cold_start",
        "benchmarks.ingest",
        "benchmarks.identity",
        "benchmarks.dispatch",
    ):
        subprocess.run([sys.executable, "-m", module], check=True)
