"""`make bench`: every benchmark, each reporting ratios measured side by side in one run."""

from __future__ import annotations

from benchmarks import cold_start

if __name__ == "__main__":
    ok = cold_start.run()
    raise SystemExit(0 if ok else 1)
