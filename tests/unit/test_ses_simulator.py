"""The local SES mailbox simulator (infra/local/ses_simulator.py): which addresses report back, how."""

from __future__ import annotations

import json

import pytest

from infra.local.ses_simulator import feedback_entries, simulated_outcome
from shared.delivery.feedback import BounceDetail, ComplaintDetail


@pytest.mark.parametrize(
    ("address", "outcome"),
    [
        ("bounce@simulator.amazonses.com", "bounce"),
        ("Bounce+Label-1@Simulator.AmazonSES.com", "bounce"),
        ("complaint+x@simulator.amazonses.com", "complaint"),
        ("success@simulator.amazonses.com", None),
        ("bounce@example.com", None),
        ("bouncer@simulator.amazonses.com", None),
    ],
)
def test_simulated_outcome(address: str, outcome: str | None) -> None:
    assert simulated_outcome(address) == outcome


def test_each_simulator_recipient_gets_an_ses_shaped_event_the_feedback_function_reads() -> None:
    entries = feedback_entries(
        ["a@example.com", "bounce+1@simulator.amazonses.com", "complaint@simulator.amazonses.com"],
        message_id="m-1",
        sender="no-reply@continuum.local",
        configuration_set="continuum-email",
        sent_at="2026-11-24T10:00:00.000Z",
        bus="continuum-bus",
    )

    assert [(e["Source"], e["DetailType"]) for e in entries] == [
        ("aws.ses", "Email Bounced"),
        ("aws.ses", "Email Complaint Received"),
    ]
    bounce = BounceDetail.model_validate(json.loads(entries[0]["Detail"])).bounce
    assert (bounce.bounceType, [r.emailAddress for r in bounce.bouncedRecipients]) == (
        "Permanent",
        ["bounce+1@simulator.amazonses.com"],
    )
    complaint = ComplaintDetail.model_validate(json.loads(entries[1]["Detail"])).complaint
    assert [r.emailAddress for r in complaint.complainedRecipients] == ["complaint@simulator.amazonses.com"]
    assert json.loads(entries[0]["Detail"])["mail"]["tags"] == {"ses:configuration-set": ["continuum-email"]}
