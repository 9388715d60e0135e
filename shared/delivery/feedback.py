"""What SES reports after a send: a hard bounce suppresses the address, a complaint unsubscribes its
owner from marketing email.

SES publishes these through the configuration set's EventBridge event destination to the account's
default bus: `source` `aws.ses`, `detail-type` `Email Bounced` / `Email Complaint Received`, and a
`detail` that is SES's event record (`eventType`, `mail`, and `bounce` or `complaint`; see the SES
developer guide, "Monitoring SES events using Amazon EventBridge", and events/ses-bounce.json,
events/ses-complaint.json). Only a Permanent bounce suppresses: a Transient one (a full mailbox) may
succeed later and is only counted. A complaint does not suppress the address: the person still gets
the transactional mail they ask for (a password reset).

Both are idempotent (SES delivers at least once): a suppression is kept once, and a complaint's choice
carries the complaint's own time, so a repeated event stores the same record, and never overrides a
later re-subscription.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import Field

from shared import clock
from shared.delivery.consent import ConsentChanges
from shared.identity.identifiers import normalise_email
from shared.models.base import Model
from shared.models.policy import DEFAULT_TOPIC, ConsentRecord, Suppression, consent_key
from shared.models.profile import Identifier, Profile

SOURCE_SES = "aws.ses"
DETAIL_BOUNCED = "Email Bounced"
DETAIL_COMPLAINT = "Email Complaint Received"
COMPLAINT_TOPIC = DEFAULT_TOPIC  # marketing: a complaint about any mail ends the marketing mail


class _Recipient(Model):
    emailAddress: str


class Bounce(Model):
    bounceType: str  # Permanent | Transient | Undetermined
    bounceSubType: str | None = None
    bouncedRecipients: list[_Recipient] = Field(default_factory=list)
    timestamp: str


class Complaint(Model):
    complainedRecipients: list[_Recipient] = Field(default_factory=list)
    timestamp: str
    complaintFeedbackType: str | None = None


class BounceDetail(Model):
    eventType: Literal["Bounce"]
    bounce: Bounce


class ComplaintDetail(Model):
    eventType: Literal["Complaint"]
    complaint: Complaint


class FeedbackError(ValueError):
    """An SES event this function cannot read (never retried: it would fail again)."""


class Suppressions(Protocol):
    def suppress(self, channel: str, address: str, suppression: Suppression) -> bool: ...


class Owners(Protocol):
    def owner_of(self, identifier: Identifier) -> Profile | None:
        """The live profile the identifier belongs to (merges followed), or None."""
        ...


class Consents(Protocol):
    def record(self, profile_id: str, changes: Mapping[str, ConsentRecord]) -> bool: ...


@dataclass
class FeedbackOutcome:
    suppressed: int = 0  # addresses newly suppressed
    already_suppressed: int = 0
    transient: int = 0  # recipients of a bounce that does not suppress
    unsubscribed: int = 0  # profiles unsubscribed from marketing email by a complaint
    unknown: int = 0  # complaining addresses no profile holds
    not_spam: int = 0  # reports that a message is NOT spam (RFC 5965 `not-spam`): no unsubscribe


def _iso(timestamp: str) -> str:
    try:
        return clock.iso(clock.parse(timestamp))
    except (TypeError, ValueError) as error:
        raise FeedbackError("the event's timestamp is not an ISO-8601 time") from error


def handle_feedback(
    detail_type: str,
    detail: Mapping[str, object],
    suppressions: Suppressions,
    owners: Owners,
    consents: Consents,
) -> FeedbackOutcome:
    outcome = FeedbackOutcome()
    try:
        if detail_type == DETAIL_BOUNCED:
            bounce = BounceDetail.model_validate(detail).bounce
        elif detail_type == DETAIL_COMPLAINT:
            complaint = ComplaintDetail.model_validate(detail).complaint
        else:
            raise FeedbackError("not a bounce or a complaint")
    except ValueError as error:  # pydantic's ValidationError is one; its text holds no address
        raise FeedbackError(f"{detail_type}: not an SES event record") from error
    if detail_type == DETAIL_BOUNCED:
        if bounce.bounceType != "Permanent":
            outcome.transient = len(bounce.bouncedRecipients)
            return outcome
        suppression = Suppression(reason="hard_bounce", at=_iso(bounce.timestamp), source="ses")
        for recipient in bounce.bouncedRecipients:
            if suppressions.suppress("email", recipient.emailAddress, suppression):
                outcome.suppressed += 1
            else:
                outcome.already_suppressed += 1
        return outcome
    if complaint.complaintFeedbackType == "not-spam":
        # A provider correcting an earlier spam tag, not a person complaining.
        outcome.not_spam = len(complaint.complainedRecipients)
        return outcome
    choice = ConsentChanges(
        records={
            consent_key(COMPLAINT_TOPIC, "email"): ConsentRecord(
                subscribed=False, source="complaint", at=_iso(complaint.timestamp)
            )
        }
    )
    for recipient in complaint.complainedRecipients:
        address = normalise_email(recipient.emailAddress)
        profile = owners.owner_of(Identifier(type="email", value=address)) if address else None
        if profile is not None and consents.record(profile.profileId, choice.records):
            outcome.unsubscribed += 1
        else:
            outcome.unknown += 1
    return outcome
