"""What the send gate reads besides the profile, in one BatchGetItem on the profiles table: the
consent items of the profile and of every profile merged into it, the suppression items of the
channel's addresses, and the frequency-cap items of the rules that apply.

Item shapes (DESIGN10):
- consent: `pk = profile#<id>`, `sk = consent`, one Map attribute per `<topic>/<channel>`:
  `{subscribed: BOOL, source: S, at: S}` (written by the consent store).
- suppression: `pk = deliverability#<channel>#<sha256 of the normalised address>`, `sk = suppression`.
- cap: `pk = profile#<id>`, `sk = cap#<ruleId>[#<channel>]`, `sends: L[M{at: S, key: S}]` (the counted
  sends still inside the window), `version: N`. Only the live profile's item is written (in the send's
  transaction, shared/store/messages.py); merged profiles' items are still counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.delivery.caps import CapCheck, CapWrite, CountedSend, applicable, cap_sort_key
from shared.delivery.gate import ADDRESS, GateFacts
from shared.models.policy import Policy
from shared.models.profile import Profile
from shared.store.consent import CONSENT_SK, consent_keys, fold_consent
from shared.store.profiles import DynamoProfileStore
from shared.store.suppressions import SUPPRESSION_SK, suppression_key


def _profile_pk(profile_id: str) -> str:
    return f"profile#{profile_id}"


def _sends(item: dict[str, Any] | None) -> tuple[CountedSend, ...]:
    if item is None:
        return ()
    return tuple(CountedSend(at=s["M"]["at"]["S"], key=s["M"]["key"]["S"]) for s in item["sends"]["L"])


def cap_item(profile_id: str, write: CapWrite) -> dict[str, Any]:
    return {
        "pk": {"S": _profile_pk(profile_id)},
        "sk": {"S": write.sort_key},
        "sends": {"L": [{"M": {"at": {"S": s.at}, "key": {"S": s.key}}} for s in write.sends]},
        "version": {"N": str(write.version + 1)},
    }


class SendGateStore(DynamoProfileStore):
    """The profile (following merges), then everything else the gate needs in one batched read."""

    def gate_facts(self, profile: Profile, channel: str, topic: str, policy: Policy) -> GateFacts:
        owners = [profile.profileId, *profile.mergedFrom]
        rules = applicable(policy, topic, channel)
        addresses = profile.values_of(ADDRESS[channel])
        keys = consent_keys(profile)
        keys += [suppression_key(channel, a) for a in addresses]
        keys += [
            {"pk": {"S": _profile_pk(p)}, "sk": {"S": cap_sort_key(rule, channel)}}
            for rule in rules
            for p in owners
        ]
        by_key = {(item["pk"]["S"], item["sk"]["S"]): item for item in self._batch_get(_unique(keys))}
        consent = fold_consent(
            by_key[(k["pk"]["S"], CONSENT_SK)]
            for k in consent_keys(profile)
            if (k["pk"]["S"], CONSENT_SK) in by_key
        )
        suppressed = frozenset(
            a for a in addresses if (suppression_key(channel, a)["pk"]["S"], SUPPRESSION_SK) in by_key
        )
        checks = []
        for rule in rules:
            sort_key = cap_sort_key(rule, channel)
            live = by_key.get((_profile_pk(profile.profileId), sort_key))
            sends: list[CountedSend] = []
            for owner in owners:
                sends += _sends(by_key.get((_profile_pk(owner), sort_key)))
            checks.append(
                CapCheck(
                    rule=rule,
                    sort_key=sort_key,
                    version=int(live["version"]["N"]) if live else 0,
                    sends=tuple(sends),
                )
            )
        return GateFacts(consent=consent, suppressed=suppressed, caps=tuple(checks))


def _unique(keys: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """BatchGetItem refuses a request naming one key twice (two addresses hashing alike after
    normalisation, say)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for key in keys:
        seen.setdefault((key["pk"]["S"], key["sk"]["S"]), key)
    return list(seen.values())
