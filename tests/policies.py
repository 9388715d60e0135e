"""Send policies for tests: the shipped one (policy.yaml) and a permissive fixture (no caps, no quiet
hours) for tests exercising something else; both read as the build reads them."""

from __future__ import annotations

from pathlib import Path

from shared.delivery.policy import read_policy_yaml

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_POLICY_FILE = ROOT / "policy.yaml"
PERMISSIVE_POLICY_FILE = ROOT / "tests" / "fixtures" / "policy-permissive.yaml"
SHIPPED = read_policy_yaml(SHIPPED_POLICY_FILE)
PERMISSIVE = read_policy_yaml(PERMISSIVE_POLICY_FILE)
