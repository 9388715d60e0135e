"""In-memory implementations of the domain's ports, faithful to the contracts the stores keep."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from shared.identity.resolver import ConcurrentChangeError
from shared.models.events import BusEvent
from shared.models.message import MessageLogEntry, OutboundMessage
from shared.models.profile import Identifier, Profile
from shared.store.bus import PublishError


class FakeProfileStore:
    """`shared.identity.resolver.ProfileStore` (and `delivery.service.Profiles`) in memory.

    Keeps DynamoProfileStore's commit contract: one atomic write of every changed profile, each
    conditional on its version (0 = must not exist yet, else the stored version), and of every claim,
    conditional on the identifier still pointing where the claim says (None = nowhere). The claimed
    identifiers point at `changed[0]`. Any failed condition writes nothing and raises
    `ConcurrentChangeError`. Reads return copies, as a real read would.
    """

    def __init__(self) -> None:
        self.docs: dict[str, Profile] = {}
        self.index: dict[Identifier, str] = {}
        self.commit_attempts = 0
        self._interference: list[Callable[[FakeProfileStore], None]] = []

    # -- the port ------------------------------------------------------------------------------
    def owners(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        return {i: self.index[i] for i in identifiers if i in self.index}

    def profiles(self, profile_ids: Iterable[str]) -> dict[str, Profile]:
        return {p: self.docs[p].model_copy(deep=True) for p in set(profile_ids) if p in self.docs}

    def commit(self, changed: list[Profile], claims: dict[Identifier, str | None]) -> None:
        self.commit_attempts += 1
        if self._interference:
            self._interference.pop(0)(self)
        for profile in changed:
            stored = self.docs.get(profile.profileId)
            if profile.version == 0 and stored is not None:
                raise ConcurrentChangeError(f"profile {profile.profileId} exists already")
            if profile.version != 0 and (stored is None or stored.version != profile.version):
                raise ConcurrentChangeError(f"profile {profile.profileId} changed since it was read")
        for identifier, expected in claims.items():
            if self.index.get(identifier) != expected:
                raise ConcurrentChangeError(f"{identifier} was claimed meanwhile")
        for profile in changed:
            stored = profile.model_copy(deep=True)
            stored.version = profile.version + 1
            self.docs[profile.profileId] = stored
        for identifier in claims:
            self.index[identifier] = changed[0].profileId
        for profile in changed:
            profile.version += 1

    # -- delivery.service.Profiles -------------------------------------------------------------
    def profile(self, profile_id: str) -> Profile | None:
        found = self.docs.get(profile_id)
        while found is not None and found.mergedInto:
            found = self.docs.get(found.mergedInto)
        return found.model_copy(deep=True) if found else None

    # -- test helpers --------------------------------------------------------------------------
    def seed(self, profile_id: str, *identifiers: Identifier, created_at: str, **fields: Any) -> Profile:
        """A profile already stored, owning its identifiers."""
        profile = Profile(
            profileId=profile_id,
            identifiers=list(identifiers),
            createdAt=created_at,
            updatedAt=fields.pop("updatedAt", created_at),
            version=1,
            **fields,
        )
        self.docs[profile_id] = profile.model_copy(deep=True)
        for identifier in identifiers:
            self.index[identifier] = profile_id
        return profile

    def interfere_once(self, action: Callable[[FakeProfileStore], None]) -> None:
        """Run `action` (a concurrent writer) just before the next commit checks its conditions."""
        self._interference.append(action)

    def owner_of(self, identifier: Identifier) -> Profile | None:
        """The live profile an identifier resolves to, following merges."""
        profile_id = self.index.get(identifier)
        return self.profile(profile_id) if profile_id else None

    def live(self) -> list[Profile]:
        return [p for p in self.docs.values() if not p.mergedInto]


class FakeRunStore:
    """`shared.journeys.router.RunStore`: one run per (profile, `<journey>#<name>`), as the table keys it."""

    def __init__(self, journal: list[tuple[str, str]] | None = None) -> None:
        self.items: dict[tuple[str, str], dict[str, str]] = {}
        self.journal = journal if journal is not None else []

    def active(self, profile_id: str, journey_id: str) -> list[dict[str, str]]:
        return [
            dict(item)
            for (owner, run_key), item in self.items.items()
            if owner == profile_id and run_key.startswith(f"{journey_id}#") and item["status"] == "active"
        ]

    def add(self, profile_id: str, journey_id: str, name: str, execution_arn: str, entered_at: str) -> None:
        self.journal.append(("add", name))
        run_key = f"{journey_id}#{name}"
        self.items[(profile_id, run_key)] = {
            "profileId": profile_id,
            "runKey": run_key,
            "executionArn": execution_arn,
            "status": "active",
            "enteredAt": entered_at,
        }

    def close(self, profile_id: str, run_key: str, status: str, at: str) -> None:
        self.journal.append(("close", run_key))
        self.items[(profile_id, run_key)].update(status=status, closedAt=at)

    def status_of(self, execution_arn: str) -> list[str]:
        return [item["status"] for item in self.items.values() if item["executionArn"] == execution_arn]


class FakeExecutions:
    """`shared.journeys.router.Executions`: names are unique per state machine, as in Step Functions."""

    def __init__(self, journal: list[tuple[str, str]] | None = None) -> None:
        self.status: dict[str, str] = {}
        self.payloads: dict[str, dict[str, Any]] = {}
        self.stopped: dict[str, str] = {}
        self.journal = journal if journal is not None else []

    @staticmethod
    def arn_of(state_machine_arn: str, name: str) -> str:
        return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"

    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str | None:
        self.journal.append(("start", name))
        arn = self.arn_of(state_machine_arn, name)
        if arn in self.status:
            return None  # ExecutionAlreadyExists
        self.status[arn] = "RUNNING"
        self.payloads[arn] = payload
        return arn

    def is_running(self, execution_arn: str) -> bool:
        return self.status.get(execution_arn) == "RUNNING"

    def stop(self, execution_arn: str, cause: str) -> None:
        self.journal.append(("stop", execution_arn))
        if execution_arn in self.status:
            self.status[execution_arn] = "ABORTED"
        self.stopped[execution_arn] = cause

    def finish(self, execution_arn: str) -> None:
        self.status[execution_arn] = "SUCCEEDED"


class FakeMessageLog:
    """`shared.delivery.service.Log`: `record` writes only when no entry has the key."""

    def __init__(self) -> None:
        self.entries: dict[str, MessageLogEntry] = {}

    def record(self, entry: MessageLogEntry) -> bool:
        if entry.messageKey in self.entries:
            return False
        self.entries[entry.messageKey] = entry.model_copy(deep=True)
        return True

    def get(self, message_key: str) -> MessageLogEntry | None:
        entry = self.entries.get(message_key)
        return entry.model_copy(deep=True) if entry else None

    def mark_sent(self, message_key: str, sent_at: str, provider_message_id: str) -> None:
        self.entries[message_key] = self.entries[message_key].model_copy(
            update={"status": "sent", "sentAt": sent_at, "providerMessageId": provider_message_id}
        )


class FakeQueue:
    """`shared.delivery.service.Queue`: what was enqueued, in order."""

    def __init__(self) -> None:
        self.messages: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> None:
        self.messages.append(message)


class FakeSeenMessages:
    """`shared.ingest.service.SeenMessages`: the dedupe keys remembered, each with its window.
    `seen` answers with a new set, as a read from the table would."""

    def __init__(self, *already: str, window_seconds: int = 86400) -> None:
        self.remembered: dict[str, int] = dict.fromkeys(already, window_seconds)
        self.remember_calls: list[list[str]] = []

    def seen(self, keys: set[str]) -> set[str]:
        return {key for key in keys if key in self.remembered}

    def remember(self, keys: list[str], window_seconds: int) -> None:
        self.remember_calls.append(list(keys))
        for key in keys:
            self.remembered[key] = window_seconds


class FakePublisher:
    """`shared.ingest.service.Publisher` (EventPublisher's contract): puts every event on `bus`
    except those at the positions in `failing`, then, if any failed, raises `PublishError` whose
    `published` lists the positions (in the list given) that made it."""

    def __init__(self, failing: Iterable[int] = ()) -> None:
        self.failing = set(failing)
        self.bus: list[BusEvent] = []
        self.calls: list[list[BusEvent]] = []

    def publish(self, events: Sequence[BusEvent]) -> None:
        self.calls.append(list(events))
        published = [i for i in range(len(events)) if i not in self.failing]
        self.bus += [events[i] for i in published]
        if len(published) < len(events):
            raise PublishError(len(events) - len(published), '["InternalFailure"]', published)

    def message_ids(self) -> list[str]:
        return [event.detail.correlationId for event in self.bus]


class FakeValidationError(Exception):
    """What EventBridge answers to a PutEvents request it refuses as a whole."""


# PutEvents' limits on one request: entries, and their total size (Source, DetailType and Detail in
# UTF-8; https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html).
PUT_EVENTS_MAX_ENTRIES = 10
PUT_EVENTS_MAX_BYTES = 256 * 1024


def entry_size(entry: dict[str, Any]) -> int:
    return sum(len(entry.get(name, "").encode("utf-8")) for name in ("Source", "DetailType", "Detail"))


class FakeEventsClient:
    """The EventBridge client's `put_events`, scripted. Each call takes the next outcome of `script`
    (after the script, every entry succeeds): an exception, raised as the call's error; or the
    positions, in that call's entries, that fail with an ErrorCode. Requests over PutEvents' limits
    are refused whole, as EventBridge does. What succeeded is on `bus`, in order."""

    def __init__(self, *script: Exception | set[int]) -> None:
        self.script = list(script)
        self.calls: list[list[dict[str, Any]]] = []
        self.bus: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(list(Entries))
        if len(Entries) > PUT_EVENTS_MAX_ENTRIES:
            raise FakeValidationError(f"{len(Entries)} entries: at most {PUT_EVENTS_MAX_ENTRIES}")
        if sum(entry_size(entry) for entry in Entries) > PUT_EVENTS_MAX_BYTES:
            raise FakeValidationError("Total size of the entries in the request is over the limit.")
        outcome = self.script.pop(0) if self.script else set()
        if isinstance(outcome, Exception):
            raise outcome
        results: list[dict[str, Any]] = []
        for position, entry in enumerate(Entries):
            if position in outcome:
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"})
            else:
                self.bus.append(entry)
                results.append({"EventId": f"evt-{len(self.bus)}"})
        return {"FailedEntryCount": len(outcome & set(range(len(Entries)))), "Entries": results}

    def details(self) -> list[dict[str, Any]]:
        """The envelopes on the bus, parsed."""
        return [json.loads(entry["Detail"]) for entry in self.bus]
