"""What a person's consent records mean under the policy (pure).

In-branch stand-in (i10-links) for the module branch i10-consent owns, with the signature of
DESIGN10.md (`effective_consent`): the merge keeps i10-consent's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.models.policy import CHANNELS, TRANSACTIONAL, ConsentRecord, Policy, consent_key


def effective_consent(
    policy: Policy, records: Mapping[str, ConsentRecord], traits: Mapping[str, Any]
) -> dict[str, dict[str, dict[str, Any]]]:
    """topic → channel → {subscribed, source, at, default}: the stored choice, else the topic's
    default for the channel. (The global `unsubscribed` trait is the gate's business, not a choice
    per topic: shown as it is stored.)"""
    effective: dict[str, dict[str, dict[str, Any]]] = {}
    for topic_id, topic in policy.topics.items():
        effective[topic_id] = {}
        for channel in CHANNELS:
            default = topic.default_for(channel)
            record = records.get(consent_key(topic_id, channel))
            effective[topic_id][channel] = {
                "subscribed": record.subscribed
                if record is not None
                else (topic_id == TRANSACTIONAL or default == "opt_out"),
                "source": record.source if record else None,
                "at": record.at if record else None,
                "default": default,
            }
    return effective
