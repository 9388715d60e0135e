"""SES complaint events (shared/delivery/feedback.py) with in-memory ports."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from shared.delivery.feedback import DETAIL_COMPLAINT, handle_feedback
from shared.models.policy import ConsentRecord, Suppression
from shared.models.profile import Identifier, Profile

SAMPLE = json.loads(Path("events/ses-complaint.json").read_text(encoding="utf-8"))["detail"]


class Ports:
    def __init__(self) -> None:
        self.recorded: dict[str, dict[str, ConsentRecord]] = {}
        self.suppressed: list[str] = []

    def suppress(self, channel: str, address: str, suppression: Suppression) -> bool:
        self.suppressed.append(address)
        return True

    def owner_of(self, identifier: Identifier) -> Profile | None:
        return Profile(profileId="p1", identifiers=[identifier], createdAt="x", updatedAt="x")

    def record(self, profile_id: str, changes: Mapping[str, ConsentRecord]) -> bool:
        self.recorded.setdefault(profile_id, {}).update(changes)
        return True


def test_an_abuse_complaint_unsubscribes_from_marketing_email() -> None:
    ports = Ports()
    handle_feedback(DETAIL_COMPLAINT, SAMPLE, ports, ports, ports)
    assert ports.recorded["p1"]["marketing/email"].subscribed is False


def test_a_not_spam_report_unsubscribes_nobody() -> None:
    # RFC 5965 / SES: feedback type `not-spam` is a mailbox provider saying the message is NOT spam
    # (correcting an earlier tag). It used to unsubscribe the person from marketing like a complaint.
    detail = json.loads(json.dumps(SAMPLE))
    detail["complaint"]["complaintFeedbackType"] = "not-spam"
    ports = Ports()
    outcome = handle_feedback(DETAIL_COMPLAINT, detail, ports, ports, ports)
    assert ports.recorded == {} and outcome.unsubscribed == 0
