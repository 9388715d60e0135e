"""Consent rules (shared/delivery/consent.py) and the consent items' fold (shared/store/consent.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.delivery.consent import (
    ConsentPayloadError,
    consent_reason,
    effective_consent,
    parse_consent_payload,
)
from shared.models.policy import ConsentRecord, Policy
from shared.store.consent import fold_consent

POLICY = Policy.model_validate(
    yaml.safe_load((Path(__file__).parents[2] / "policy.yaml").read_text(encoding="utf-8"))
)
AT = "2026-11-02T10:00:00.000Z"


def _parse(body: dict[str, Any], strict: bool = False) -> dict[str, bool]:
    changes = parse_consent_payload(POLICY, body, source="identify", at=AT, strict=strict)
    return {key: record.subscribed for key, record in changes.records.items()}


def test_a_topic_set_to_a_boolean_applies_to_every_channel() -> None:
    assert _parse({"marketing": False}) == {"marketing/email": False, "marketing/push": False}


def test_a_topic_set_per_channel_applies_to_that_channel() -> None:
    assert _parse({"product_updates": {"push": True}}) == {"product_updates/push": True}


def test_segments_category_preferences_set_declared_topics_and_ignore_other_categories() -> None:
    changes = parse_consent_payload(
        POLICY,
        {"categoryPreferences": {"marketing": False, "Advertising": True}},
        source="identify",
        at=AT,
        strict=False,
    )

    assert {k: r.subscribed for k, r in changes.records.items()} == {
        "marketing/email": False,
        "marketing/push": False,
    }
    assert changes.ignored == 0  # another tool's category is not an error


def test_segments_category_preferences_never_resubscribe() -> None:
    # Segment's consent object rides on every event: a `true` there must not undo a one-click
    # unsubscribe at the person's next page view.
    changes = parse_consent_payload(
        POLICY, {"categoryPreferences": {"marketing": True}}, source="identify", at=AT, strict=False
    )
    assert changes.records == {}
    # The explicit form is a deliberate choice: it subscribes.
    assert _parse({"marketing": True}) == {"marketing/email": True, "marketing/push": True}


def test_an_events_unknown_topics_and_channels_are_left_out_and_counted() -> None:
    changes = parse_consent_payload(
        POLICY,
        {
            "newsletter": False,
            "marketing": {"sms": False, "email": "no", "push": False},
            "transactional": False,
        },
        source="identify",
        at=AT,
        strict=False,
    )

    assert {k: r.subscribed for k, r in changes.records.items()} == {"marketing/push": False}
    assert changes.ignored == 4


def test_records_carry_the_source_and_time() -> None:
    changes = parse_consent_payload(
        POLICY, {"marketing": {"email": True}}, source="admin", at=AT, strict=True
    )

    assert changes.records == {"marketing/email": ConsentRecord(subscribed=True, source="admin", at=AT)}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"newsletter": False},
        {"marketing": "false"},
        {"marketing": None},
        {"marketing": {"sms": False}},
        {"marketing": {"email": 0}},
        {"transactional": False},
        {"categoryPreferences": {"Advertising": True}},
        {"categoryPreferences": ["marketing"]},
    ],
)
def test_the_admin_route_refuses_what_the_policy_does_not_declare(body: dict[str, Any]) -> None:
    with pytest.raises(ConsentPayloadError):
        parse_consent_payload(POLICY, body, source="admin", at=AT, strict=True)


def test_an_error_names_the_key_but_never_a_value() -> None:
    with pytest.raises(ConsentPayloadError) as raised:
        parse_consent_payload(
            POLICY, {"marketing": {"email": "ann@example.com"}}, source="admin", at=AT, strict=True
        )

    assert "ann@example.com" not in str(raised.value)
    assert "marketing.email" in str(raised.value)


def _record(subscribed: bool, at: str = AT) -> ConsentRecord:
    return ConsentRecord(subscribed=subscribed, source="admin", at=at)


@pytest.mark.parametrize(
    ("topic", "channel", "records", "traits", "reason"),
    [
        ("marketing", "email", {}, {}, None),  # opt_out by default
        ("product_updates", "email", {}, {}, "not_opted_in"),  # opt_in by default
        ("product_updates", "email", {"product_updates/email": _record(True)}, {}, None),
        ("marketing", "email", {"marketing/email": _record(False)}, {}, "unsubscribed"),
        ("marketing", "push", {"marketing/email": _record(False)}, {}, None),  # another channel
        ("marketing", "email", {"marketing/email": _record(True)}, {"unsubscribed": True}, "unsubscribed"),
        ("marketing", "email", {}, {"unsubscribed": "yes"}, None),  # only a true boolean opts out
        ("transactional", "email", {"transactional/email": _record(False)}, {"unsubscribed": True}, None),
    ],
)
def test_consent_reason(
    topic: str, channel: str, records: dict[str, ConsentRecord], traits: dict[str, Any], reason: str | None
) -> None:
    assert consent_reason(POLICY, topic, channel, records, traits) == reason


def test_effective_consent_lists_every_topic_and_channel_with_what_decides_it() -> None:
    shown = effective_consent(POLICY, {"marketing/email": _record(False)}, {})

    assert shown["marketing"]["email"] == {
        "subscribed": False,
        "source": "admin",
        "at": AT,
        "default": "opt_out",
        "changeable": True,
    }
    assert shown["product_updates"]["push"]["subscribed"] is False
    assert shown["transactional"]["email"] == {
        "subscribed": True,
        "source": None,
        "at": None,
        "default": "opt_out",
        "changeable": False,
    }


def _item(**records: ConsentRecord) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": "profile#p"}, "sk": {"S": "consent"}}
    for key, record in records.items():
        item[key.replace("__", "/")] = {
            "M": {
                "subscribed": {"BOOL": record.subscribed},
                "source": {"S": record.source},
                "at": {"S": record.at},
            }
        }
    return item


def test_the_fold_keeps_the_newest_choice_per_key_across_profiles() -> None:
    old, new = "2026-11-01T00:00:00.000Z", "2026-11-03T00:00:00.000Z"

    folded = fold_consent(
        [
            _item(marketing__email=_record(True, new)),
            _item(marketing__email=_record(False, old), marketing__push=_record(False, old)),
        ]
    )

    assert folded == {"marketing/email": _record(True, new), "marketing/push": _record(False, old)}


def test_the_fold_reads_a_tie_as_an_opt_out_in_any_order() -> None:
    items = [_item(marketing__email=_record(True)), _item(marketing__email=_record(False))]

    assert fold_consent(items)["marketing/email"].subscribed is False
    assert fold_consent(list(reversed(items)))["marketing/email"].subscribed is False


@pytest.mark.parametrize(
    ("trait_set_at", "chosen_at", "reason"),
    [
        ("2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z", None),  # chose again later: sent
        ("2026-02-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", "unsubscribed"),  # trait is newer
        ("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", "unsubscribed"),  # a tie: opt-out
    ],
)
def test_the_unsubscribed_trait_yields_only_to_a_later_choice_of_the_topic(
    trait_set_at: str, chosen_at: str, reason: str | None
) -> None:
    records = {"marketing/email": _record(True, chosen_at)}
    traits, times = {"unsubscribed": True}, {"unsubscribed": trait_set_at}
    assert consent_reason(POLICY, "marketing", "email", records, traits, times) == reason
    # Only the topic and channel chosen again: the others stay unsubscribed.
    assert consent_reason(POLICY, "marketing", "push", records, traits, times) == "unsubscribed"
