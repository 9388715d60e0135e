"""SES's mailbox simulator, locally: an email to `bounce@simulator.amazonses.com` hard-bounces and one
to `complaint@simulator.amazonses.com` is complained about (each also with a `+label` before the @,
as SES accepts), and the engine puts the event SES's configuration set would put on the account's
default bus — so the local feedback takes the cloud's path (the `email-feedback` route → feedback).
`success@…` and every other address just send. Shapes follow SES's event records (events/ses-*.json).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from shared.delivery.feedback import DETAIL_BOUNCED, DETAIL_COMPLAINT, SOURCE_SES

SIMULATOR_DOMAIN = "simulator.amazonses.com"


def simulated_outcome(address: str) -> str | None:
    """`bounce`, `complaint`, or None for an address that simply receives the email."""
    local, _, domain = address.strip().lower().rpartition("@")
    if domain != SIMULATOR_DOMAIN:
        return None
    mailbox = local.split("+", 1)[0]
    return mailbox if mailbox in ("bounce", "complaint") else None


def feedback_entries(
    destinations: Iterable[str],
    *,
    message_id: str,
    sender: str,
    configuration_set: str | None,
    sent_at: str,
    bus: str,
) -> list[dict[str, Any]]:
    """The PutEvents entries SES would publish for an email sent to `destinations` (none when no
    address is one of the simulator's)."""
    addresses = list(destinations)
    tags = {"ses:configuration-set": [configuration_set]} if configuration_set else {}
    mail = {
        "timestamp": sent_at,
        "source": sender,
        "messageId": message_id,
        "destination": addresses,
        "headersTruncated": False,
        "tags": tags,
    }
    entries = []
    for address in addresses:
        outcome = simulated_outcome(address)
        if outcome == "bounce":
            detail_type = DETAIL_BOUNCED
            detail: dict[str, Any] = {
                "eventType": "Bounce",
                "bounce": {
                    "bounceType": "Permanent",
                    "bounceSubType": "General",
                    "bouncedRecipients": [
                        {
                            "emailAddress": address,
                            "action": "failed",
                            "status": "5.1.1",
                            "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                        }
                    ],
                    "timestamp": sent_at,
                    "feedbackId": f"local-{message_id}-bounce",
                    "reportingMTA": "dns; local.simulator.amazonses.com",
                },
                "mail": mail,
            }
        elif outcome == "complaint":
            detail_type = DETAIL_COMPLAINT
            detail = {
                "eventType": "Complaint",
                "complaint": {
                    "complainedRecipients": [{"emailAddress": address}],
                    "timestamp": sent_at,
                    "feedbackId": f"local-{message_id}-complaint",
                    "complaintFeedbackType": "abuse",
                },
                "mail": mail,
            }
        else:
            continue
        entries.append(
            {
                "Source": SOURCE_SES,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "Time": sent_at,
                "EventBusName": bus,
            }
        )
    return entries
