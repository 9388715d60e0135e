"""One batch of the audiences FIFO queue (shared/segments/audience_sync.py): membership, one request
per (platform, audience, action), the last action per identifier, and failures in FIFO order."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from shared.models.segments import AudienceIntent, AudienceMessage, HashedIdentifier
from shared.segments.audience_sync import QueuedMessage, reduce_intents, sync_batch
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

    sync_batch(
        [queued("1", "p1", True), queued("2", "p2", True), queued("3", "p2", False), queued("4", "p3", None)],
        members,
        Platforms(),
    )

    assert members.items == {("cart_abandoners", "p1"): AT}
    assert members.calls == [("enter", "p1"), ("enter", "p2"), ("leave", "p2")]


def test_the_intents_of_a_batch_go_out_as_one_request_per_platform_audience_and_action() -> None:
    platforms = Platforms()
    a, b = sha("a@example.com"), sha("b@example.com")

    outcome = sync_batch(
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

    outcome = sync_batch(records, Members(), platforms)

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

    outcome = sync_batch(records, Members(failing={"A"}), platforms)

    assert outcome.failed == ["a1", "a2"]
    # Neither of A's intents went out (a later retry sends them in order); B's did.
    assert [[m.emails for m in ms] for _, _, _, ms in platforms.sent] == [[(b,)]]


def test_a_body_that_is_not_an_audience_message_fails_alone() -> None:
    outcome = sync_batch(
        [QueuedMessage("bad", "X", "not json"), queued("ok", "Y", True)], Members(), Platforms()
    )

    assert outcome.failed == ["bad"]
