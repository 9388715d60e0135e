"""One batch of the audiences FIFO queue (shared/segments/audience_sync.py): membership, one request
per (platform, audience, action), the last action per identifier, and failures in FIFO order."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from shared.models.segments import AudienceIntent, AudienceMessage, HashedIdentifier, SegmentState
from shared.segments.audience_sync import QueuedMessage, reduce_intents, sync_batch
from shared.segments.engine import synced_key
from shared.store.ad_platforms import Action, AdPlatformRequestError, Member, Platform

AT = "2026-11-28T10:00:00.000Z"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def intent(profile: str, platform: Platform, action: Action, *hashes: str) -> AudienceIntent:
    return AudienceIntent(
        platform=platform,
        audience="cart-abandoners",
        action=action,
        segment="cart_abandoners",
        profileId=profile,
        at=AT,
        identifiers=[HashedIdentifier(kind="email", sha256=h) for h in hashes],
    )


def queued(message_id: str, profile: str, entered: bool | None, *intents: AudienceIntent) -> QueuedMessage:
    message = AudienceMessage(
        profileId=profile, segment="cart_abandoners", entered=entered, at=AT, intents=list(intents)
    )
    return QueuedMessage(message_id, profile, message.model_dump_json())


class States:
    """The segment states the profiles are in: by default the state each profile's last queued message
    was decided with (what the segments function wrote before sending it)."""

    def __init__(self, records: Sequence[QueuedMessage] = (), **states: SegmentState | None):
        self.by_profile: dict[str, SegmentState | None] = {}
        for record in records:
            try:
                message = AudienceMessage.model_validate_json(record.body)
            except ValueError:
                continue
            state = self.by_profile.get(message.profileId) or SegmentState(profileId=message.profileId)
            for each in message.intents:
                kinds = state.synced.setdefault(
                    synced_key(each.platform, each.audience, each.segment), {"email": [], "phone": []}
                )
                for identifier in each.identifiers:
                    held = kinds[identifier.kind]
                    if each.action == "add" and identifier.sha256 not in held:
                        held.append(identifier.sha256)
                    if each.action == "remove" and identifier.sha256 in held:
                        held.remove(identifier.sha256)
            if message.entered is not None:
                others = [s for s in state.segments if s != message.segment]
                state.segments = sorted([*others, message.segment] if message.entered else others)
            self.by_profile[message.profileId] = state
        self.by_profile.update(states)

    def states(self, profile_ids: Iterable[str]) -> list[SegmentState]:
        return [s for p in profile_ids if (s := self.by_profile.get(p)) is not None]


def batch(
    records: list[QueuedMessage], members: Members, platforms: Platforms, states: States | None = None
) -> Any:
    return sync_batch(records, members, platforms, states if states is not None else States(records))


class Members:
    def __init__(self, failing: set[str] | None = None):
        self.items: dict[tuple[str, str], str] = {}
        self.calls: list[tuple[str, str]] = []
        self.failing = failing or set()

    def enter(self, segment: str, profile_id: str, at: str) -> None:
        self.calls.append(("enter", profile_id))
        if profile_id in self.failing:
            raise RuntimeError("throttled")
        self.items[(segment, profile_id)] = at

    def leave(self, segment: str, profile_id: str) -> None:
        self.calls.append(("leave", profile_id))
        if profile_id in self.failing:
            raise RuntimeError("throttled")
        self.items.pop((segment, profile_id), None)


class Client:
    def __init__(self, platform: str, sent: list[tuple[str, str, str, list[Member]]], failing: bool):
        self.platform, self.sent, self.failing = platform, sent, failing

    def apply(self, audience: str, action: Action, members: Sequence[Member]) -> int:
        if self.failing:
            raise AdPlatformRequestError(self.platform, "users", 500, True, None)
        self.sent.append((self.platform, audience, action, list(members)))
        return 1


class Platforms:
    def __init__(self, failing: set[str] | None = None):
        self.sent: list[tuple[str, str, str, list[Member]]] = []
        self.failing = failing or set()

    def client(self, platform: Platform) -> Client:
        return Client(platform, self.sent, platform in self.failing)


def test_members_are_put_on_entry_and_deleted_on_exit_and_left_alone_otherwise() -> None:
    members = Members()

    batch(
        [queued("1", "p1", True), queued("2", "p2", True), queued("3", "p2", False), queued("4", "p3", None)],
        members,
        Platforms(),
    )

    assert members.items == {("cart_abandoners", "p1"): AT}
    # p2's entry is stale by the time the batch runs (its state has it out already): only its exit.
    assert members.calls == [("enter", "p1"), ("leave", "p2")]


def test_the_intents_of_a_batch_go_out_as_one_request_per_platform_audience_and_action() -> None:
    platforms = Platforms()
    a, b = sha("a@example.com"), sha("b@example.com")

    outcome = batch(
        [
            queued("1", "p1", True, intent("p1", "meta", "add", a), intent("p1", "google", "add", a)),
            queued("2", "p2", True, intent("p2", "meta", "add", b), intent("p2", "google", "add", b)),
        ],
        Members(),
        platforms,
    )

    assert outcome.failed == []
    assert [(p, action, [m.emails for m in ms]) for p, _, action, ms in platforms.sent] == [
        ("meta", "add", [(a,), (b,)]),
        ("google", "add", [(a,), (b,)]),
    ]


def test_an_add_then_a_removal_in_one_batch_sends_only_the_removal() -> None:
    a = sha("a@example.com")
    requests, _ = reduce_intents(
        [
            AudienceMessage(
                profileId="p1", segment="s", entered=True, at=AT, intents=[intent("p1", "meta", "add", a)]
            ),
            AudienceMessage(
                profileId="p1", segment="s", entered=False, at=AT, intents=[intent("p1", "meta", "remove", a)]
            ),
        ]
    )

    assert [(r.platform, r.action, r.members) for r in requests] == [
        ("meta", "remove", (Member(emails=(a,)),))
    ]


def test_a_failed_request_fails_its_messages_and_every_later_message_of_their_groups() -> None:
    a, b = sha("a@example.com"), sha("b@example.com")
    records = [
        queued("a1", "A", True, intent("A", "meta", "add", a)),
        queued("b1", "B", True, intent("B", "google", "add", b)),
        queued("a2", "A", None, intent("A", "google", "remove", a)),
        queued("a3", "A", None, intent("A", "meta", "add", a)),
        queued("b2", "B", False),
    ]
    platforms = Platforms(failing={"google"})

    outcome = batch(records, Members(), platforms)

    # a1's Meta add went out and is done; b1 and a2 needed Google; a3 and b2 come after them in their
    # groups, so SQS must hand them out again after them, in order.
    assert outcome.failed == ["b1", "a2", "a3", "b2"]
    assert [(p, action) for p, _, action, _ in platforms.sent] == [("meta", "add")]


def test_a_membership_write_that_fails_holds_back_its_message_and_its_groups_later_ones() -> None:
    a, b = sha("a@example.com"), sha("b@example.com")
    records = [
        queued("a1", "A", True, intent("A", "meta", "add", a)),
        queued("a2", "A", False, intent("A", "meta", "remove", a)),
        queued("b1", "B", True, intent("B", "meta", "add", b)),
    ]
    platforms = Platforms()

    # A's state has it in (its exit is stale); the write of its entry fails.
    outcome = batch(records, Members(failing={"A"}), platforms, States(records, A=_synced("A", a)))

    assert outcome.failed == ["a1", "a2"]
    # Neither of A's intents went out (a later retry sends them in order); B's did.
    assert [[m.emails for m in ms] for _, _, _, ms in platforms.sent] == [[(b,)]]


def test_a_body_that_is_not_an_audience_message_fails_alone() -> None:
    outcome = batch([QueuedMessage("bad", "X", "not json"), queued("ok", "Y", True)], Members(), Platforms())

    assert outcome.failed == ["bad"]


# -- reconciled against the state: a queued message is a hint, the state has the last word ------------


def _synced(profile: str, *hashes: str, member: bool = True) -> SegmentState:
    key = synced_key("meta", "cart-abandoners", "cart_abandoners")
    return SegmentState(
        profileId=profile,
        segments=["cart_abandoners"] if member else [],
        synced={key: {"email": list(hashes), "phone": []}} if hashes else {},
    )


def test_an_add_queued_after_the_removal_that_superseded_it_sends_nothing() -> None:
    # Decided add (v1) then purchase (v2); the purchase's invocation queued its removal first.
    a = sha("a@example.com")
    platforms, members = Platforms(), Members()
    states = States(p1=_synced("p1", member=False))  # the purchase's decision: out, nothing synced

    batch([queued("r", "p1", False, intent("p1", "meta", "remove", a))], members, platforms, states)
    batch([queued("a", "p1", True, intent("p1", "meta", "add", a))], members, platforms, states)

    assert [(action, [m.emails for m in ms]) for _, _, action, ms in platforms.sent] == [("remove", [(a,)])]
    assert members.calls == [("leave", "p1")]


def test_a_removal_queued_after_a_later_add_sends_nothing() -> None:
    a = sha("a@example.com")
    platforms = Platforms()
    batch(
        [queued("r", "p1", False, intent("p1", "meta", "remove", a))],
        Members(),
        platforms,
        States(p1=_synced("p1", a)),  # a later decision wants the customer in again
    )
    assert platforms.sent == []


def test_with_no_state_left_every_removal_goes_and_no_add() -> None:
    # Erased (or merged away) meanwhile: whatever was decided before, nothing may stay in an audience.
    a, b = sha("a@example.com"), sha("b@example.com")
    platforms, members = Platforms(), Members()
    batch(
        [
            queued("r", "gone", False, intent("gone", "meta", "remove", a)),
            queued("a", "gone", True, intent("gone", "meta", "add", b)),
        ],
        members,
        platforms,
        States(gone=None),
    )
    assert [(action, [m.emails for m in ms]) for _, _, action, ms in platforms.sent] == [("remove", [(a,)])]
    assert members.calls == [("leave", "gone")]


def test_only_the_identifiers_the_state_still_wants_are_added() -> None:
    old, new = sha("old@example.com"), sha("new@example.com")
    platforms = Platforms()
    batch(
        [queued("a", "p1", None, intent("p1", "meta", "add", old, new))],
        Members(),
        platforms,
        States(p1=_synced("p1", new)),  # the email changed since: only the new one is wanted
    )
    assert [[m.emails for m in ms] for _, _, _, ms in platforms.sent] == [[(new,)]]
