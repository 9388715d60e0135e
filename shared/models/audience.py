"""The body of a message on the FIFO `audiences` queue (segments → audiences function)."""

from __future__ import annotations

from shared.models.base import Model
from shared.models.segment_state import AudienceIntent


class AudienceMessage(Model):
    """One profile's change in one segment: its membership (`entered`: True → member now, False → no
    longer, None → unchanged) and the ad-platform requests to make. Group id: the profileId."""

    profileId: str
    segment: str
    entered: bool | None = None
    at: str
    intents: list[AudienceIntent] = []
