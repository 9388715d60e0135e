"""`make bench`: every benchmark, each reporting ratios measured side by side in one run."""

from __future__ import annotations

from benchmarks import cold_start

if __name__ == "__main__":
    # Results are reported, not enforced: these machines are shared and noisy.
    cold_start.run()
