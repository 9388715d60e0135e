"""The unsubscribe and preference pages (shared/delivery/preferences.py) with in-memory stores:
what each link does, what it never does, and that everything shown is escaped."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from shared.delivery.links import LinkClaims, LinkSigner
from shared.delivery.preferences import Page, Pages, render
from shared.models.policy import ConsentRecord, Policy
from shared.models.profile import Profile
from tests.unit.conftest import FIXED_NOW

SIGNER = LinkSigner(b"k" * 32)
RAW_POLICY = yaml.safe_load(Path("policy.yaml").read_text(encoding="utf-8"))
POLICY = Policy.model_validate(RAW_POLICY)


class Store:
    """Profiles and their consent, as the pages' ports see them."""

    def __init__(self, *profile_ids: str):
        self.live = {
            p: Profile(profileId=p, createdAt="2024-01-01T00:00:00.000Z", updatedAt="x") for p in profile_ids
        }
        self.consents: dict[str, dict[str, ConsentRecord]] = {}
        self.writes = 0

    def profile(self, profile_id: str) -> Profile | None:
        return self.live.get(profile_id)

    def record(self, profile_id: str, changes: Mapping[str, ConsentRecord]) -> bool:
        if profile_id not in self.live:
            return False
        self.writes += 1
        self.consents.setdefault(profile_id, {}).update(changes)
        return True

    def consent(self, profile: Profile) -> dict[str, ConsentRecord]:
        return dict(self.consents.get(profile.profileId, {}))


def _pages(store: Store, policy: Policy = POLICY) -> Pages:
    return Pages(signer=SIGNER, policy=policy, profiles=store, consents=store)


def _token(purpose: str, expires: datetime | None = None, **claims: object) -> str:
    exp = int((expires or FIXED_NOW + timedelta(days=1)).timestamp())
    extra = {"t": "marketing", "c": "email"} if purpose == "unsubscribe" else {}
    return SIGNER.sign(LinkClaims.model_validate({"p": purpose, "pid": "p1", "exp": exp, **extra, **claims}))


pytestmark = pytest.mark.usefixtures("fixed_clock")


def test_one_click_post_unsubscribes_from_the_links_topic_and_channel() -> None:
    store = Store("p1")
    page = _pages(store).answer("POST", "unsubscribe", _token("unsubscribe"), {"anything": ["at all"]})
    assert page.status == 200 and page.outcome == "unsubscribed"
    record = store.consents["p1"]["marketing/email"]
    assert (record.subscribed, record.source, record.at) == (False, "one_click", "2024-05-01T12:00:00.000Z")


def test_get_on_the_unsubscribe_link_changes_nothing_and_offers_a_button() -> None:
    store = Store("p1")
    page = _pages(store).answer("GET", "unsubscribe", _token("unsubscribe"), {})
    assert page.status == 200 and store.writes == 0
    assert '<form method="post">' in page.body and "<button" in page.body


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("kind", ["unsubscribe", "preferences"])
def test_a_forged_token_is_403_and_changes_nothing(method: str, kind: str) -> None:
    store = Store("p1")
    token = _token(kind)
    page = _pages(store).answer(method, kind, token[:-3] + "AAA", {"save": ["1"]})  # type: ignore[arg-type]
    assert (page.status, page.outcome, store.writes) == (403, "forged", 0)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_expired_token_is_410_and_changes_nothing(method: str) -> None:
    store = Store("p1")
    page = _pages(store).answer(method, "unsubscribe", _token("unsubscribe", expires=FIXED_NOW), {})
    assert (page.status, page.outcome, store.writes) == (410, "expired", 0)


def test_a_preferences_token_on_the_unsubscribe_route_is_403() -> None:
    store = Store("p1")
    page = _pages(store).answer("POST", "unsubscribe", _token("preferences"), {})
    assert (page.status, store.writes) == (403, 0)


@pytest.mark.parametrize("kind", ["unsubscribe", "preferences"])
def test_a_token_for_an_erased_profile_is_404(kind: str) -> None:
    store = Store()  # p1 erased
    page = _pages(store).answer("POST", kind, _token(kind), {"save": ["1"]})  # type: ignore[arg-type]
    assert (page.status, page.outcome, store.writes) == (404, "unknown_profile", 0)


def test_the_preference_page_shows_the_effective_state_per_topic_and_channel() -> None:
    store = Store("p1")
    body = _pages(store).answer("GET", "preferences", _token("preferences"), {}).body
    # marketing is opt_out (ticked), product_updates opt_in (not ticked), transactional not a box
    assert 'name="marketing/email" value="on" checked' in body
    assert 'name="product_updates/email" value="on" aria' in body
    assert 'name="transactional/email"' not in body and "always sent" in body
    assert store.writes == 0


def test_saving_the_form_stores_every_box_and_says_saved() -> None:
    store = Store("p1")
    form = {"save": ["1"], "product_updates/email": ["on"], "marketing/push": ["on"]}
    page = _pages(store).answer("POST", "preferences", _token("preferences"), form)
    assert page.status == 200 and "Saved" in page.body
    stored = {key: r.subscribed for key, r in store.consents["p1"].items()}
    assert stored == {
        "marketing/email": False,
        "marketing/push": True,
        "product_updates/email": True,
        "product_updates/push": False,
    }
    assert {r.source for r in store.consents["p1"].values()} == {"preferences"}
    assert 'name="marketing/email" value="on" aria' in page.body  # shown unticked now


def test_a_preferences_post_without_the_form_changes_nothing() -> None:
    store = Store("p1")
    page = _pages(store).answer("POST", "preferences", _token("preferences"), {})
    assert (page.status, store.writes) == (400, 0)


def test_a_form_field_naming_no_box_is_ignored() -> None:
    store = Store("p1")
    form = {"save": ["1"], "transactional/email": ["on"], "bogus/sms": ["on"]}
    _pages(store).answer("POST", "preferences", _token("preferences"), form)
    assert set(store.consents["p1"]) == {
        "marketing/email",
        "marketing/push",
        "product_updates/email",
        "product_updates/push",
    }


def test_an_unknown_method_is_405_and_changes_nothing() -> None:
    store = Store("p1")
    page = _pages(store).answer("DELETE", "unsubscribe", _token("unsubscribe"), {})
    assert (page.status, store.writes) == (405, 0)


def test_topic_descriptions_are_escaped() -> None:
    # Given a policy whose topic description holds markup
    evil = '<script>alert(1)</script><img src=x onerror="x()">'
    raw = {**RAW_POLICY, "topics": {**RAW_POLICY["topics"], "marketing": {"description": evil}}}
    pages = _pages(Store("p1"), Policy.model_validate(raw))
    for kind, method in (("preferences", "GET"), ("unsubscribe", "GET"), ("unsubscribe", "POST")):
        html = render(pages.answer(method, kind, _token(kind), {}))  # type: ignore[arg-type]
        assert "<script>" not in html and "<img" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_page_has_no_script_and_no_external_resource() -> None:
    html = render(Page(200, "T <b>", "<p>x</p>", "shown"))
    assert "<script" not in html and "src=" not in html and "href=" not in html
    assert "<title>T &lt;b&gt;</title>" in html


def test_a_person_with_the_unsubscribed_trait_can_resubscribe_on_the_page() -> None:
    store = Store("p1")
    # The trait was set (by an older integration) before the person comes to the page.
    earlier = {"traits": {"unsubscribed": True}, "traitTimes": {"unsubscribed": "2020-01-01T00:00:00.000Z"}}
    store.live["p1"] = store.live["p1"].model_copy(update=earlier)
    form = {"save": ["1"], "marketing/email": ["on"]}
    page = _pages(store).answer("POST", "preferences", _token("preferences"), form)
    assert page.status == 200 and "Saved" in page.body
    assert 'name="marketing/email" value="on" checked' in page.body
