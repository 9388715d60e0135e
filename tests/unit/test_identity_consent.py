"""Identity records an event's `context.consent` on the profile it resolved to (resolve_with_consent)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.identity.resolver import resolve_with_consent
from shared.identity.rules import IdentityRules
from shared.models.policy import ConsentRecord, Policy
from tests.unit.fakes import FakeProfileStore

POLICY = Policy.model_validate(
    yaml.safe_load((Path(__file__).parents[2] / "policy.yaml").read_text(encoding="utf-8"))
)
RECEIVED = "2024-06-01T09:00:05.000Z"


class FakeConsents:
    def __init__(self, exists: bool = True) -> None:
        self.recorded: list[tuple[str, dict[str, ConsentRecord]]] = []
        self.exists = exists

    def record(self, profile_id: str, changes: Mapping[str, ConsentRecord]) -> bool:
        self.recorded.append((profile_id, dict(changes)))
        return self.exists


def _call(kind: str = "identify", consent: Any = None, **fields: Any) -> dict[str, Any]:
    call: dict[str, Any] = {
        "type": kind,
        "messageId": "m-1",
        "timestamp": "2024-06-01T08:59:00.000Z",  # the device's clock: not the choice's time
        "receivedAt": RECEIVED,
        "userId": "u-1",
        **fields,
    }
    if consent is not None:
        call["context"] = {"consent": consent}
    return call


def _resolve(call: dict[str, Any], consents: FakeConsents, reads: list[int] | None = None) -> Any:
    def policy() -> Policy:
        if reads is not None:
            reads.append(1)
        return POLICY

    return resolve_with_consent(
        call, FakeProfileStore(), IdentityRules(), datetime(2024, 6, 1, 9, tzinfo=UTC), consents, policy
    )


def test_an_identifys_consent_is_recorded_at_receivedat_on_the_resolved_profile() -> None:
    consents = FakeConsents()

    resolution = _resolve(_call(consent={"marketing": {"email": False}}), consents)

    assert consents.recorded == [
        (
            resolution.profile_id,
            {"marketing/email": ConsentRecord(subscribed=False, source="identify", at=RECEIVED)},
        )
    ]
    assert (resolution.consent_recorded, resolution.consent_ignored) == (1, 0)


def test_a_track_carries_consent_too_but_a_page_does_not() -> None:
    consents = FakeConsents()

    _resolve(_call("track", consent={"marketing": False}, event="Consent Updated"), consents)
    _resolve(_call("page", consent={"marketing": False}, name="Home"), consents)

    assert len(consents.recorded) == 1


@pytest.mark.parametrize("consent", ["yes", ["marketing"], {"newsletter": True}])
def test_what_the_policy_cannot_read_is_counted_and_never_fails_the_event(consent: Any) -> None:
    consents = FakeConsents()

    resolution = _resolve(_call(consent=consent), consents)

    assert resolution.profile_id is not None
    assert resolution.consent_ignored == 1
    assert consents.recorded == []


def test_the_policy_is_read_only_for_a_call_that_carries_consent() -> None:
    reads: list[int] = []

    _resolve(_call(traits={"plan": "pro"}), FakeConsents(), reads)

    assert reads == []


def test_a_call_that_lands_on_no_profile_records_nothing() -> None:
    consents = FakeConsents()
    call = _call(consent={"marketing": False})
    del call["userId"]

    resolution = _resolve(call, consents)

    assert resolution.profile_id is None
    assert consents.recorded == []
