"""Consent: what a person chose per subscription topic and channel, and what the send gate makes of it.

Pure logic over the `Policy` (policy.yaml) and the records `shared/store/consent.py` keeps. Three
body shapes set consent, the same wherever it comes from (an identify or track's `context.consent`,
the admin route `PUT /v1/profiles/{id}/consent`):

- `{"<topic>": true|false}`: that topic on every channel;
- `{"<topic>": {"<channel>": true|false}}`: per channel;
- `{"categoryPreferences": {"<topic>": true|false}}`: Segment's consent object (its keys that are
  not declared topics are other tools' categories, ignored).

An event never fails for its consent: what the policy does not declare is left out and counted. The
admin route is strict: an unknown topic or channel, a value that is not a boolean, or `transactional`
(which cannot be unsubscribed from) is a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.models.policy import (
    CHANNELS,
    TRANSACTIONAL,
    ConsentRecord,
    ConsentSource,
    Policy,
    consent_key,
)

UNSUBSCRIBED_TRAIT = "unsubscribed"  # the global opt-out trait audiences honour too
SEGMENT_CATEGORIES = "categoryPreferences"


class ConsentPayloadError(ValueError):
    """A consent body the admin route refuses (400). The message names keys, never values."""


@dataclass
class ConsentChanges:
    """Consent records to store, by `consent_key`, and how many entries were left out."""

    records: dict[str, ConsentRecord] = field(default_factory=dict)
    ignored: int = 0


def _set(
    changes: ConsentChanges, topic: str, channel: str, value: bool, source: ConsentSource, at: str
) -> None:
    changes.records[consent_key(topic, channel)] = ConsentRecord(subscribed=value, source=source, at=at)


def parse_consent_payload(
    policy: Policy, body: Mapping[str, Any], *, source: ConsentSource, at: str, strict: bool
) -> ConsentChanges:
    """The records a consent body sets. `strict` (the admin route): anything the policy does not
    declare raises `ConsentPayloadError`; otherwise (an event's context) it is left out and counted."""
    changes = ConsentChanges()

    def refuse(message: str) -> None:
        if strict:
            raise ConsentPayloadError(message)
        changes.ignored += 1

    entries: list[tuple[str, Any, bool]] = []  # (topic, value, from Segment's categories)
    for name, value in body.items():
        if name == SEGMENT_CATEGORIES:
            if not isinstance(value, Mapping):
                refuse(f"{SEGMENT_CATEGORIES}: must be an object of topic → boolean")
                continue
            entries += [(str(topic), choice, True) for topic, choice in value.items()]
        else:
            entries.append((str(name), value, False))
    for topic, value, category in entries:
        if topic not in policy.topics:
            if category and not strict:
                continue  # another tool's category (Segment's consent object is shared): not ours
            refuse(f"{topic[:40]!r}: not a declared topic; one of {', '.join(sorted(policy.topics))}")
            continue
        if topic == TRANSACTIONAL:
            refuse(f"{TRANSACTIONAL}: cannot be unsubscribed from (a person asked for these messages)")
            continue
        if isinstance(value, bool):
            if category and value:
                # Segment's consent object rides on every event (a site's consent banner): honouring
                # its `true` would re-subscribe a person at their next page view after a one-click
                # unsubscribe. It can withdraw consent, never give it.
                continue
            for channel in CHANNELS:
                _set(changes, topic, channel, value, source, at)
        elif isinstance(value, Mapping) and not category:
            for channel, choice in value.items():
                if channel not in CHANNELS:
                    refuse(f"{topic}.{str(channel)[:40]!r}: not a channel; one of {', '.join(CHANNELS)}")
                elif not isinstance(choice, bool):
                    refuse(f"{topic}.{channel}: must be true or false")
                else:
                    _set(changes, topic, str(channel), choice, source, at)
        else:
            refuse(f"{topic}: must be true or false, or an object of channel → boolean")
    if strict and not changes.records:
        raise ConsentPayloadError('no consent given: send {"<topic>": true|false} or per channel')
    return changes


def consent_reason(
    policy: Policy,
    topic: str,
    channel: str,
    records: Mapping[str, ConsentRecord],
    traits: Mapping[str, Any],
    trait_times: Mapping[str, str] | None = None,
) -> str | None:
    """Why consent stops a send of `topic` on `channel` (`unsubscribed`, `not_opted_in`), or None.

    The `unsubscribed: true` trait opts out of every topic but transactional, except where the person
    chose a topic and channel again after the trait was set (`trait_times`, the profile's traitTimes):
    a re-subscription on the preference page must not be silently overruled by an older trait."""
    if topic == TRANSACTIONAL:
        return None
    record = records.get(consent_key(topic, channel))
    if traits.get(UNSUBSCRIBED_TRAIT) is True:
        # When the trait was set is unknown: the opt-out wins (the safe reading).
        trait_set_at = (trait_times or {}).get(UNSUBSCRIBED_TRAIT)
        if trait_set_at is None or record is None or not record.subscribed or record.at <= trait_set_at:
            return "unsubscribed"
    if record is not None:
        return None if record.subscribed else "unsubscribed"
    declared = policy.topics.get(topic)
    if declared is None:  # a journey naming an undeclared topic is refused at load; be safe here
        return "not_opted_in"
    return None if declared.default_for(channel) == "opt_out" else "not_opted_in"


def effective_consent(
    policy: Policy,
    records: Mapping[str, ConsentRecord],
    traits: Mapping[str, Any],
    trait_times: Mapping[str, str] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per topic and channel, whether a send would pass consent, with the record behind it (source and
    time, None when the topic's default decides), the default, and whether a person may change it
    (`transactional` is listed but cannot be changed)."""
    shown: dict[str, dict[str, dict[str, Any]]] = {}
    for topic_id, topic in policy.topics.items():
        shown[topic_id] = {}
        for channel in CHANNELS:
            record = records.get(consent_key(topic_id, channel))
            shown[topic_id][channel] = {
                "subscribed": consent_reason(policy, topic_id, channel, records, traits, trait_times) is None,
                "source": record.source if record else None,
                "at": record.at if record else None,
                "default": topic.default_for(channel),
                "changeable": topic_id != TRANSACTIONAL,
            }
    return shown
