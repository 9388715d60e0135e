"""In-memory implementations of the domain's ports, faithful to the contracts the stores keep."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from shared import clock
from shared.delivery.caps import CapCheck, CapWrite, CountedSend, applicable, cap_sort_key
from shared.delivery.gate import GateFacts
from shared.identity.bounds import PROFILE_MAX_BYTES, growth_bytes, profile_bytes
from shared.identity.resolver import (
    ConcurrentChangeError,
    EventChange,
    FullPathNeededError,
    Lookup,
    Pointer,
)
from shared.identity.rules import IdentityRules
from shared.ingest.service import Claim
from shared.journeys.router import ExecutionState, Slot
from shared.journeys.steps import JourneyWait
from shared.models.events import BusEvent, PublishError
from shared.models.message import MessageLogEntry, OutboundMessage
from shared.models.policy import ConsentRecord, Policy
from shared.models.profile import Identifier, MergeRecord, Profile, TimelineEntry
from shared.models.segments import SegmentState
from shared.store.profiles import storable

# DynamoDB's TransactWriteItems takes at most 100 actions (shared/store/profiles.py refuses more).
TRANSACTION_MAX_ACTIONS = 100


class FakeProfileStore:
    """`shared.identity.resolver.ProfileStore` (and `delivery.service.Profiles`) in memory, keeping
    DynamoProfileStore's contract (shared/store/profiles.py):

    - `lookup`: the profile each identifier points to, which identifiers are suppressed, and which
      are too long for the store's keys (`storable`, the store's own rule; those are never read).
    - `record` (the fast path, one transaction): `FullPathNeededError` when the profile is missing or
      merged, when the event is older than its `latestEventAt`, when a claimed type would pass its
      limit, or when the profile plus what the write adds could pass `PROFILE_MAX_BYTES`;
      `ConcurrentChangeError` when a claimed identifier points somewhere already. Otherwise it
      sets each trait (its time: the event's), the event's last time, `latestEventAt`, appends the
      claims, bumps the version and stores the timeline entry.
    - `commit` (the full path, one transaction): each profile conditional on its stored version (0:
      must not exist) and on not being merged, each pointer on its expected owner (None: nowhere).
      Any failed condition writes nothing and raises `ConcurrentChangeError`.

    Reads return copies, as a real read would. `interfere_once` runs a concurrent writer just before
    the next write checks its conditions.
    """

    def __init__(self) -> None:
        self.docs: dict[str, Profile] = {}
        self.index: dict[Identifier, str] = {}
        self.suppressed: set[Identifier] = set()
        self.timeline: dict[tuple[str, str], TimelineEntry] = {}  # (profile id, event#<time>#<messageId>)
        self.merge_log: dict[tuple[str, str], MergeRecord] = {}  # (survivor, merge#<at>#<merged id>)
        self.reads: list[str] = []  # "lookup" / "profiles", in order
        self.writes: list[str] = []  # "record" / "commit", each attempt, in order
        self._interference: list[Callable[[FakeProfileStore], object]] = []

    # -- the port ------------------------------------------------------------------------------
    def lookup(self, identifiers: Iterable[Identifier]) -> Lookup:
        self.reads.append("lookup")
        wanted = {i for i in identifiers if storable(i)}
        return Lookup(
            owners={i: self.index[i] for i in wanted if i in self.index},
            suppressed={i for i in wanted if i in self.suppressed},
            unstorable={i for i in identifiers if not storable(i)},
        )

    def record(
        self, profile_id: str, change: EventChange, claims: list[Identifier], rules: IdentityRules
    ) -> None:
        self._write("record")
        stored = self.docs.get(profile_id)
        if stored is None or stored.mergedInto:
            raise FullPathNeededError(f"{profile_id} is missing or merged")
        if stored.latestEventAt is not None and stored.latestEventAt > change.at:
            raise FullPathNeededError(f"{profile_id} has seen a newer event")
        for kind in {i.type for i in claims}:
            new = [i for i in claims if i.type == kind]
            if len(stored.values_of(kind)) + len(new) > rules.limit(kind):
                raise FullPathNeededError(f"{kind} would pass its limit on {profile_id}")
        growth = growth_bytes(change.traits, change.track_event, claims)
        if profile_bytes(stored) + growth > PROFILE_MAX_BYTES:
            raise FullPathNeededError(f"{profile_id} might pass its size bound")
        for identifier in claims:
            if identifier in self.index:
                raise ConcurrentChangeError(f"{identifier} was claimed meanwhile")
        for name, value in change.traits.items():
            stored.traits[name] = value
            stored.traitTimes[name] = change.at
        if change.track_event:
            stored.lastEvents[change.track_event] = change.at
        if change.timezone:
            stored.timezone = change.timezone
        stored.latestEventAt = change.at
        stored.updatedAt = clock.iso(clock.now())
        stored.identifiers += claims
        stored.version += 1
        for identifier in claims:
            self.index[identifier] = profile_id
        self._keep_timeline(change.timeline_for(profile_id))

    def profiles(self, profile_ids: Iterable[str]) -> dict[str, Profile]:
        self.reads.append("profiles")
        return {p: self.docs[p].model_copy(deep=True) for p in set(profile_ids) if p in self.docs}

    def commit(
        self,
        changed: list[Profile],
        pointers: list[Pointer],
        timeline: list[TimelineEntry],
        merges: list[MergeRecord],
    ) -> None:
        self._write("commit")
        actions = len(changed) + len(pointers) + len(timeline) + len(merges)
        if actions > TRANSACTION_MAX_ACTIONS:
            raise ValueError(f"{actions} writes do not fit one transaction")
        keys: list[tuple[str, ...]] = [("profile", p.profileId) for p in changed]
        keys += [("identifier", p.identifier.type, p.identifier.value) for p in pointers]
        if len(keys) != len(set(keys)):
            raise ValueError("a transaction cannot write one item twice")  # as DynamoDB refuses it
        for profile in changed:
            stored = self.docs.get(profile.profileId)
            if profile.version == 0 and stored is not None:
                raise ConcurrentChangeError(f"profile {profile.profileId} exists already")
            if profile.version != 0 and (stored is None or stored.version != profile.version):
                raise ConcurrentChangeError(f"profile {profile.profileId} changed since it was read")
            if stored is not None and stored.mergedInto:
                raise ConcurrentChangeError(f"profile {profile.profileId} was merged meanwhile")
        for pointer in pointers:
            if self.index.get(pointer.identifier) != pointer.expected:
                raise ConcurrentChangeError(f"{pointer.identifier} was claimed meanwhile")
        for profile in changed:
            stored = profile.model_copy(deep=True)
            stored.version = profile.version + 1
            self.docs[profile.profileId] = stored
        for pointer in pointers:
            self.index[pointer.identifier] = pointer.to
        for entry in timeline:
            self._keep_timeline(entry)
        for record in merges:
            self.merge_log[(record.survivor, f"merge#{record.at}#{record.merged.profileId}")] = (
                record.model_copy(deep=True)
            )
        for profile in changed:
            profile.version += 1

    # -- delivery.service.Profiles -------------------------------------------------------------
    def profile(self, profile_id: str) -> Profile | None:
        found = self.docs.get(profile_id)
        while found is not None and found.mergedInto:
            found = self.docs.get(found.mergedInto)
        return found.model_copy(deep=True) if found else None

    # -- journeys.steps.Profiles ---------------------------------------------------------------
    def timeline_since(self, profile_ids: Iterable[str], since: str) -> list[TimelineEntry]:
        wanted = set(profile_ids)
        self.reads.append("timeline")
        return sorted(
            (e for (owner, _), e in self.timeline.items() if owner in wanted and e.timestamp >= since),
            key=lambda e: (e.timestamp, e.messageId),
        )

    # -- test helpers --------------------------------------------------------------------------
    def _write(self, kind: str) -> None:
        self.writes.append(kind)
        if self._interference:
            self._interference.pop(0)(self)

    def _keep_timeline(self, entry: TimelineEntry) -> None:
        self.timeline[(entry.profileId, f"event#{entry.timestamp}#{entry.messageId}")] = entry

    def seed(self, profile_id: str, *identifiers: Identifier, created_at: str, **fields: Any) -> Profile:
        """A profile already stored, owning its identifiers (unless it was merged)."""
        profile = Profile(
            profileId=profile_id,
            identifiers=list(identifiers),
            createdAt=created_at,
            updatedAt=fields.pop("updatedAt", created_at),
            version=1,
            **fields,
        )
        self.docs[profile_id] = profile.model_copy(deep=True)
        if not profile.mergedInto:
            for identifier in identifiers:
                self.index[identifier] = profile_id
        return profile

    def suppress(self, *identifiers: Identifier) -> None:
        """An erased person's identifiers: events naming them are dropped."""
        self.suppressed.update(identifiers)

    def interfere_once(self, action: Callable[[FakeProfileStore], object]) -> None:
        """Run `action` (a concurrent writer) just before the next write checks its conditions."""
        self._interference.append(action)

    def owner_of(self, identifier: Identifier) -> Profile | None:
        """The live profile an identifier resolves to, following merges."""
        profile_id = self.index.get(identifier)
        return self.profile(profile_id) if profile_id else None

    def live(self) -> list[Profile]:
        return [p for p in self.docs.values() if not p.mergedInto]

    def timeline_of(self, profile_id: str) -> list[TimelineEntry]:
        return [entry for (owner, _), entry in sorted(self.timeline.items()) if owner == profile_id]

    def merges_into(self, survivor: str) -> list[MergeRecord]:
        return [record for (owner, _), record in sorted(self.merge_log.items()) if owner == survivor]


class FakeRunStore:
    """`shared.journeys.router.RunStore`: one run per (profile, `<journey>#<name>`), as the table keys it,
    and one slot per (profile, journey) claimed by a conditional write. Each call is applied
    atomically (a lock), as DynamoDB applies each request; so threads may call it at once.

    `rendezvous`, when set, holds each thread's first read (`runs`, `active`, `active_runs`) until all
    parties have read: concurrent routers then all decide from the same (empty) state, the
    interleaving that exposes a race."""

    def __init__(self, journal: list[tuple[str, str]] | None = None) -> None:
        self.items: dict[tuple[str, str], dict[str, str]] = {}
        self.slots: dict[tuple[str, str], Slot] = {}
        self.journal = journal if journal is not None else []
        self.rendezvous: threading.Barrier | None = None
        self._met: set[int] = set()  # threads that passed the rendezvous (each waits once)
        self._lock = threading.RLock()

    def active(self, profile_id: str, journey_id: str) -> list[dict[str, str]]:
        return [run for run in self.runs(profile_id, journey_id) if run["status"] == "active"]

    def runs(self, profile_id: str, journey_id: str) -> list[dict[str, str]]:
        with self._lock:
            found = [
                dict(item)
                for (owner, run_key), item in self.items.items()
                if owner == profile_id and run_key.startswith(f"{journey_id}#")
            ]
        self._meet()
        return found

    def _meet(self) -> None:
        """Wait at the rendezvous, once per thread, after a read (see the class's docstring)."""
        if self.rendezvous is not None and threading.get_ident() not in self._met:
            self._met.add(threading.get_ident())
            self.rendezvous.wait()

    def by_execution(self, execution_arn: str) -> list[dict[str, str]]:
        with self._lock:
            return [dict(item) for item in self.items.values() if item.get("executionArn") == execution_arn]

    def active_runs(self, profile_id: str) -> list[dict[str, str]]:
        with self._lock:
            found = [
                dict(item)
                for (owner, _), item in self.items.items()
                if owner == profile_id and item["status"] == "active"
            ]
        self._meet()
        return found

    def add(
        self,
        profile_id: str,
        journey_id: str,
        name: str,
        execution_arn: str | None,
        entered_at: str,
        trigger: str = "{}",
        status: str = "active",
    ) -> bool:
        with self._lock:
            run_key = f"{journey_id}#{name}"
            if (profile_id, run_key) in self.items:
                return False
            self.journal.append(("add", name))
            self.items[(profile_id, run_key)] = {
                "profileId": profile_id,
                "runKey": run_key,
                "status": status,
                "enteredAt": entered_at,
                "trigger": trigger,
            }
            if execution_arn is not None:
                self.items[(profile_id, run_key)]["executionArn"] = execution_arn
            return True

    def close(self, profile_id: str, run_key: str, status: str, at: str, reason: str | None = None) -> bool:
        with self._lock:
            item = self.items.get((profile_id, run_key))
            if item is None or item["status"] != "active":
                return False
            self.journal.append(("close", run_key))
            item.update(status=status, closedAt=at, closedReason=reason or status)
            return True

    def convert(self, profile_id: str, run_key: str, at: str) -> bool:
        with self._lock:
            item = self.items.get((profile_id, run_key))
            if item is None or "convertedAt" in item:
                return False
            item["convertedAt"] = at
            return True

    def claim(
        self, profile_id: str, journey_id: str, execution_arn: str, at: str, replacing: str | None = None
    ) -> bool:
        with self._lock:
            held = self.slots.get((profile_id, journey_id))
            if held is not None and held.execution_arn not in (execution_arn, replacing):
                return False
            self.journal.append(("claim", execution_arn.rsplit(":", 1)[-1]))
            self.slots[(profile_id, journey_id)] = Slot(execution_arn=execution_arn, claimed_at=at)
            return True

    def slot(self, profile_id: str, journey_id: str) -> Slot | None:
        with self._lock:
            return self.slots.get((profile_id, journey_id))

    def release(self, profile_id: str, journey_id: str, execution_arn: str) -> None:
        with self._lock:
            held = self.slots.get((profile_id, journey_id))
            if held is not None and held.execution_arn == execution_arn:
                self.journal.append(("release", execution_arn.rsplit(":", 1)[-1]))
                del self.slots[(profile_id, journey_id)]

    def status_of(self, execution_arn: str) -> list[str]:
        return [item["status"] for item in self.items.values() if item.get("executionArn") == execution_arn]


class FakeExecutions:
    """`shared.journeys.router.Executions`: names are unique per state machine, as in Step Functions.
    Thread-safe: each call is atomic."""

    def __init__(self, journal: list[tuple[str, str]] | None = None) -> None:
        self.status: dict[str, str] = {}
        self.payloads: dict[str, dict[str, Any]] = {}
        self.stopped: dict[str, str] = {}
        self.journal = journal if journal is not None else []
        self.crash_next_start: Exception | None = None  # raised by the next `start`, before it starts
        self.resumed: list[tuple[str, dict[str, Any]]] = []  # (token, output) of each SendTaskSuccess
        self.spent: set[str] = set()  # tokens answered (or timed out): SendTaskSuccess is refused
        self._lock = threading.RLock()

    @staticmethod
    def arn_of(state_machine_arn: str, name: str) -> str:
        return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"

    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str | None:
        with self._lock:
            self.journal.append(("start", name))
            if self.crash_next_start is not None:
                crash, self.crash_next_start = self.crash_next_start, None
                raise crash
            arn = self.arn_of(state_machine_arn, name)
            if arn in self.status:
                return None  # ExecutionAlreadyExists
            self.status[arn] = "RUNNING"
            self.payloads[arn] = payload
            return arn

    def state(self, execution_arn: str) -> ExecutionState:
        with self._lock:
            status = self.status.get(execution_arn)
        if status is None:
            return "missing"
        return "running" if status == "RUNNING" else "ended"

    def is_running(self, execution_arn: str) -> bool:
        return self.state(execution_arn) == "running"

    def stop(self, execution_arn: str, cause: str) -> None:
        with self._lock:
            self.journal.append(("stop", execution_arn))
            if execution_arn in self.status:
                self.status[execution_arn] = "ABORTED"
            self.stopped[execution_arn] = cause

    def resume(self, token: str, output: dict[str, Any]) -> bool:
        with self._lock:
            self.journal.append(("resume", token))
            if token in self.spent:  # answered already (journey-steps, another router), timed out
                return False
            self.spent.add(token)
            self.resumed.append((token, output))
            return True

    def finish(self, execution_arn: str, status: str = "SUCCEEDED") -> None:
        self.status[execution_arn] = status

    def running(self) -> list[str]:
        with self._lock:
            return [arn for arn, status in self.status.items() if status == "RUNNING"]


class FakeStats:
    """`shared.journeys.router.Stats` (JourneyStats): counters added per journey."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def add(self, journey_id: str, counters: dict[str, float]) -> None:
        with self._lock:
            journey = self.counters.setdefault(journey_id, {})
            for name, value in counters.items():
                journey[name] = journey.get(name, 0) + value

    def get(self, journey_id: str) -> dict[str, float]:
        return dict(self.counters.get(journey_id, {}))


class FakeMessageLog:
    """`shared.delivery.service.Log`, atomic per call as DynamoDB is: `record` writes only when no
    entry has the key; `lease` takes a queued entry whose lease is absent or expired; `mark_sent` and
    `release` act only for the lease's holder."""

    def __init__(self) -> None:
        self.entries: dict[str, MessageLogEntry] = {}
        self.leases: dict[str, tuple[str, str]] = {}  # message key -> (holder, until)
        # The cap items (profile id, sort key) → (version, sends): the profiles table's, which the
        # commit writes in the same transaction as the entry (share it with FakeGateStore).
        self.cap_items: dict[tuple[str, str], tuple[int, tuple[CountedSend, ...]]] = {}
        self.commits = 0  # commit attempts
        self._lock = threading.RLock()

    def record(self, entry: MessageLogEntry) -> bool:
        with self._lock:
            if entry.messageKey in self.entries:
                return False
            self.entries[entry.messageKey] = entry.model_copy(deep=True)
            return True

    def drop_deferred(self, profile_id: str, execution: str, reason: str) -> list[str]:
        with self._lock:
            keys = [
                key
                for key, entry in self.entries.items()
                if entry.profileId == profile_id
                and key.startswith(f"{execution}#")
                and entry.status == "deferred"
            ]
            for key in keys:
                update = {"status": "dropped", "reason": reason, "deferredUntil": None}
                self.entries[key] = self.entries[key].model_copy(update=update)
            return keys

    def commit(
        self,
        entry: MessageLogEntry,
        previous: MessageLogEntry | None,
        caps: Sequence[CapWrite] = (),
        profiles_table: str | None = None,
    ) -> bool:
        """MessageLog.commit's contract: all or nothing, each condition checked."""
        with self._lock:
            self.commits += 1
            current = self.entries.get(entry.messageKey)
            if previous is None and current is not None:
                return False
            if previous is not None and (
                current is None
                or current.status != "deferred"
                or current.deferredUntil != previous.deferredUntil
            ):
                return False
            for write in caps:
                version = self.cap_items.get((entry.profileId, write.sort_key), (0, ()))[0]
                if version != write.version:
                    return False
            self.entries[entry.messageKey] = entry.model_copy(deep=True)
            for write in caps:
                self.cap_items[(entry.profileId, write.sort_key)] = (write.version + 1, tuple(write.sends))
            return True

    def get(self, message_key: str) -> MessageLogEntry | None:
        with self._lock:
            entry = self.entries.get(message_key)
            return entry.model_copy(deep=True) if entry else None

    def lease(self, message_key: str, holder: str, now: str, until: str) -> bool:
        with self._lock:
            entry = self.entries.get(message_key)
            if entry is None or entry.status != "queued":
                return False
            lease = self.leases.get(message_key)
            if lease is not None and lease[1] > now:
                return False
            self.leases[message_key] = (holder, until)
            return True

    def release(self, message_key: str, holder: str) -> None:
        with self._lock:
            if self.leases.get(message_key, ("", ""))[0] == holder:
                del self.leases[message_key]

    def mark_sent(self, message_key: str, holder: str, sent_at: str, provider_message_id: str) -> bool:
        with self._lock:
            if self.leases.get(message_key, ("", ""))[0] != holder:
                return False
            del self.leases[message_key]
            self.entries[message_key] = self.entries[message_key].model_copy(
                update={"status": "sent", "sentAt": sent_at, "providerMessageId": provider_message_id}
            )
            return True


class FakeGateStore(FakeProfileStore):
    """`shared.delivery.service.GateReads` (SendGateStore's contract): the profile, then the consent
    records, the suppressed addresses and the cap items (counted over the profile and the profiles
    merged into it; the version is the live profile's item's)."""

    def __init__(self, cap_items: dict[tuple[str, str], tuple[int, tuple[CountedSend, ...]]] | None = None):
        super().__init__()
        self.consent: dict[str, dict[str, ConsentRecord]] = {}  # profile id → consent key → record
        self.bounced: set[str] = set()  # suppressed addresses
        self.cap_items = cap_items if cap_items is not None else {}
        self.before_facts: Callable[[], None] | None = None  # runs after each read (a concurrent writer)

    def gate_facts(self, profile: Profile, channel: str, topic: str, policy: Policy) -> GateFacts:
        owners = [profile.profileId, *profile.mergedFrom]
        consent: dict[str, ConsentRecord] = {}
        for owner in owners:
            for key, record in self.consent.get(owner, {}).items():
                if key not in consent or consent[key].at <= record.at:
                    consent[key] = record
        checks = []
        for rule in applicable(policy, topic, channel):
            sort_key = cap_sort_key(rule, channel)
            version = self.cap_items.get((profile.profileId, sort_key), (0, ()))[0]
            sends = tuple(s for owner in owners for s in self.cap_items.get((owner, sort_key), (0, ()))[1])
            checks.append(CapCheck(rule=rule, sort_key=sort_key, version=version, sends=sends))
        addresses = profile.values_of("email" if channel == "email" else "device_token")
        facts = GateFacts(
            consent=consent,
            suppressed=frozenset(a for a in addresses if a in self.bounced),
            caps=tuple(checks),
        )
        if self.before_facts is not None:
            self.before_facts()
        return facts


class FakeQueue:
    """`shared.delivery.service.Queue`: what was enqueued, in order."""

    def __init__(self) -> None:
        self.messages: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> None:
        self.messages.append(message)


class FakeJourneyWaits:
    """`shared.journeys.steps.Waits` and `shared.journeys.router.Waits` (JourneyWaitStore's contract):
    one wait per execution; `delete` only while the wait still holds the token given. `journal`
    records each write, in order; `reads` each `waits_of`, as the executions asked for."""

    def __init__(self, journal: list[str] | None = None) -> None:
        self.items: dict[str, JourneyWait] = {}
        self.journal = journal if journal is not None else []
        self.reads: list[list[str]] = []

    def put(self, wait: JourneyWait) -> None:
        self.journal.append("put wait")
        self.items[wait.executionArn] = wait.model_copy(deep=True)

    def get(self, execution_arn: str) -> JourneyWait | None:
        return self.items.get(execution_arn)

    def waits_of(self, execution_arns: Iterable[str]) -> list[JourneyWait]:
        arns = list(execution_arns)
        self.reads.append(arns)
        return [self.items[arn] for arn in arns if arn in self.items]

    def delete(self, execution_arn: str, token: str) -> None:
        self.journal.append("delete wait")
        if execution_arn in self.items and self.items[execution_arn].token == token:
            del self.items[execution_arn]


class FakeTaskTokens:
    """`shared.journeys.steps.Tasks` and `shared.delivery.service.StepAnswers` (Step Functions'
    contract): a token is answered once; answering it again (or a timed-out one) is refused, which
    `resume` and `fail` report as False, as TaskTokens does."""

    def __init__(self, journal: list[str] | None = None) -> None:
        self.spent: set[str] = set()
        self.resumed: list[str] = []  # tokens this fake resumed, in order
        self.failed: list[tuple[str, str, str]] = []  # (token, error, cause) this fake failed, in order
        self.journal = journal if journal is not None else []

    def fail(self, token: str, error: str, cause: str) -> bool:
        self.journal.append("fail")
        if token in self.spent:
            return False
        self.spent.add(token)
        self.failed.append((token, error, cause))
        return True

    def resume(self, token: str) -> bool:
        self.journal.append("resume")
        if token in self.spent:
            return False
        self.spent.add(token)
        self.resumed.append(token)
        return True


class FakeJourneyStats:
    """`JourneyStats` (shared/store/journey_stats.py) in memory: counters added per journey, atomically."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def add(self, journey_id: str, counters: dict[str, float]) -> None:
        with self._lock:
            kept = self.counters.setdefault(journey_id, {})
            for name, value in counters.items():
                kept[name] = kept.get(name, 0) + value

    def get(self, journey_id: str) -> dict[str, float]:
        with self._lock:
            return dict(self.counters.get(journey_id, {}))


class FakeSeenMessages:
    """`shared.ingest.service.SeenMessages` in memory, keeping SeenMessageStore's contract: `reserve`
    takes each key atomically (as a conditional write does) when it is absent or its expiry has passed;
    `confirm` marks keys seen for a window; `release` forgets them. Time is `now`, in seconds, moved
    by hand. `journal` records each call, in order."""

    def __init__(self, *already: str, window_seconds: int = 86400) -> None:
        self.now = 0
        self.items: dict[str, tuple[str, int]] = {k: ("seen", window_seconds) for k in already}
        self.journal: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()

    def reserve(self, keys: Sequence[str], hold_seconds: int) -> dict[str, Claim]:
        claims: dict[str, Claim] = {}
        with self._lock:
            self.journal.append(("reserve", list(keys)))
            for key in keys:
                state, expires = self.items.get(key, ("", self.now))
                if expires <= self.now:
                    self.items[key] = ("pending", self.now + hold_seconds)
                    claims[key] = Claim.RESERVED
                else:
                    claims[key] = Claim.PENDING if state == "pending" else Claim.SEEN
        return claims

    def confirm(self, keys: Sequence[str], window_seconds: int) -> None:
        with self._lock:
            self.journal.append(("confirm", list(keys)))
            for key in keys:
                self.items[key] = ("seen", self.now + window_seconds)

    def release(self, keys: Sequence[str]) -> None:
        with self._lock:
            self.journal.append(("release", list(keys)))
            for key in keys:
                self.items.pop(key, None)

    @property
    def confirmed(self) -> dict[str, int]:
        """The keys seen, each with the seconds left of its window."""
        return {
            k: exp - self.now for k, (state, exp) in self.items.items() if state == "seen" and exp > self.now
        }

    @property
    def pending(self) -> set[str]:
        return {k for k, (state, exp) in self.items.items() if state == "pending" and exp > self.now}


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


class FakeSegmentStates:
    """`shared.journeys.steps.SegmentStates` (and the delivery service's) in memory: the segment state
    items by profile id, each read noted in `reads`."""

    def __init__(self) -> None:
        self.states: dict[str, SegmentState] = {}
        self.reads: list[str] = []

    def put(self, profile_id: str, segments: Iterable[str] = (), **computed: Any) -> None:
        self.states[profile_id] = SegmentState(
            profileId=profile_id, version=1, segments=sorted(segments), computed=computed
        )

    def segment_state(self, profile_id: str) -> SegmentState | None:
        self.reads.append(profile_id)
        state = self.states.get(profile_id)
        return None if state is None else state.model_copy(deep=True)
