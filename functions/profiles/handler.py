"""The Profile API (admin credential only): look a profile up by id or identifier, erase it (GDPR),
split a past merge, remove an identifier, set consent."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from shared import clock, config
from shared.admin import (
    ApiError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    admin_call,
    error_response,
    json_response,
    no_route,
)
from shared.delivery.consent import ConsentPayloadError, effective_consent, parse_consent_payload
from shared.delivery.policy import load_policy
from shared.identity.erasure import ErasedPerson
from shared.identity.profile_api import (
    TIMELINE_LIMIT,
    SuppressionView,
    change_event,
    identifier_from_query,
    identifier_type_of,
    normalised,
    remove_identifier,
    view,
)
from shared.identity.resolver import ConcurrentChangeError
from shared.identity.rules import load_rules
from shared.models.events import (
    DETAIL_ERASED,
    DETAIL_UNMERGED,
)
from shared.models.policy import Policy
from shared.models.profile import Profile
from shared.models.segments import AudienceMessage, Outbox, SegmentChange
from shared.models.types import PROFILE_ID_MAX_LENGTH
from shared.segments.engine import Decision, audience_messages, message_digest, on_erasure
from shared.segments.service import deduplication_id
from shared.store.admin_token import admin_token_sha256
from shared.store.bus import EventPublisher
from shared.store.consent import ConsentStore
from shared.store.journey_stats import JourneyStats
from shared.store.journeys import JourneyExecutions, JourneyRunStore
from shared.store.messages import MessageLog
from shared.store.profiles import ProfileAdmin, identifier_max_bytes
from shared.store.segments import AudienceQueue, SegmentStore
from shared.store.suppressions import SuppressionStore

ERASED_CAUSE = "the profile was erased"  # Step Functions keeps this; no personal data

REALM = "Continuum profiles"  # named in a 401's WWW-Authenticate

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = config.load(config.ProfilesApiSettings)
    try:
        call = admin_call(event, admin_token_sha256(settings), "the Profile API")
        store = ProfileAdmin(settings.profiles_table)
        match call:
            case ("GET", []):
                parameters = event.get("queryStringParameters") or {}
                identifier = identifier_from_query(parameters, load_rules(), identifier_max_bytes)
                owner = store.lookup([identifier]).owners.get(identifier)
                return json_response(200, _show(store, _live(store, owner)))
            case ("GET", [profile_id]):
                return json_response(200, _show(store, _live(store, profile_id)))
            case ("DELETE", [profile_id]):
                profile = _live(store, profile_id)
                # The ad platforms drop the person first: once erased, nothing would say what to remove.
                _leave_audiences(settings, [profile.profileId, *profile.mergedFrom])
                erased = store.erase(profile)
                MessageLog(settings.messages_table).delete_for_profiles(erased)
                runs, executions = JourneyRunStore(settings.journey_runs_table), JourneyExecutions()
                stats, now = JourneyStats(settings.journey_stats_table), clock.iso(clock.now())
                for erased_id in erased:
                    # A running execution's input holds the person's data (kept 90 days): stop it.
                    for run in runs.active_runs(erased_id):
                        executions.stop(
                            run["executionArn"], ERASED_CAUSE, error_name="Continuum.ProfileErased"
                        )
                        # Closed before it is deleted, so that a retried erasure counts it once.
                        if runs.close(erased_id, run["runKey"], "exited", now, "erased"):
                            stats.add(run["runKey"].split("#", 1)[0], {"exited#erased": 1})
                    runs.delete_for_profile(erased_id)
                metrics.add_metric(name="ProfilesErased", unit=MetricUnit.Count, value=1)
                person = ErasedPerson.of(erased, profile.identifiers)
                _publish(settings, DETAIL_ERASED, profile.profileId, person.model_dump(mode="json"))
                return json_response(200, {"erased": profile.profileId, "erasedProfileIds": erased})
            case ("PUT", [profile_id, "consent"]):
                profile = _live(store, profile_id)
                policy = load_policy(settings.policy_file)
                try:
                    changes = parse_consent_payload(
                        policy, _body(event), source="admin", at=clock.iso(clock.now()), strict=True
                    )
                except ConsentPayloadError as error:
                    raise BadRequestError(str(error)) from error
                if not ConsentStore(settings.profiles_table).record(profile.profileId, changes.records):
                    raise NotFoundError("no such profile")  # erased meanwhile
                metrics.add_metric(name="ConsentRecorded", unit=MetricUnit.Count, value=len(changes.records))
                return json_response(
                    200, {"profileId": profile.profileId, "consent": _consent(settings, profile, policy)}
                )
            case ("POST", [profile_id, "unmerge"]):
                survivor = _live(store, profile_id)
                merged_id = _body(event).get("mergedProfileId")
                record = next(
                    (m for m in store.merges(survivor.profileId) if m.merged.profileId == merged_id), None
                )
                if record is None:
                    raise NotFoundError(f"mergedProfileId: no such merge into {survivor.profileId}")
                restored = store.unmerge(survivor, record)
                _publish(
                    settings, DETAIL_UNMERGED, survivor.profileId, {"restoredProfileId": restored.profileId}
                )
                return json_response(
                    200, {"survivor": _show(store, survivor), "restored": _show(store, restored)}
                )
            case ("DELETE", [profile_id, "identifiers", identifier_type, value]):
                profile = _live(store, profile_id)
                rules = load_rules()
                kind = identifier_type_of(identifier_type, rules)
                identifier = normalised(kind, value, rules, identifier_max_bytes)
                if identifier not in profile.identifiers:
                    raise NotFoundError(f"{profile.profileId} has no such {identifier.type}")
                remove_identifier(store, EventPublisher(settings.event_bus_name), profile, identifier)
                return json_response(200, _show(store, profile))
        return no_route(call.method)
    except ConcurrentChangeError:
        return error_response(ConflictError("the profile changed meanwhile; retry"), REALM)
    except ApiError as error:
        return error_response(error, REALM)


def _live(store: ProfileAdmin, profile_id: str | None) -> Profile:
    # No profile id is longer than that: one would not even fit a key.
    valid = profile_id and len(profile_id) <= PROFILE_ID_MAX_LENGTH
    profile = store.profile(profile_id) if profile_id and valid else None
    if profile is None:
        raise NotFoundError("no such profile")
    return profile


def _consent(
    settings: config.ProfilesApiSettings, profile: Profile, policy: Policy | None = None
) -> dict[str, Any]:
    """The person's effective consent, their merged profiles' choices included."""
    records = ConsentStore(settings.profiles_table).consent(profile)
    return effective_consent(
        policy or load_policy(settings.policy_file), records, profile.traits, profile.traitTimes
    )


def _show(store: ProfileAdmin, profile: Profile) -> dict[str, Any]:
    timeline = store.timeline([profile.profileId, *profile.mergedFrom], TIMELINE_LIMIT)
    settings = config.load(config.ProfilesApiSettings)
    emails = profile.values_of("email")
    suppressions = [
        SuppressionView(channel="email", address=address, **suppression.model_dump())
        for address, suppression in SuppressionStore(settings.profiles_table)
        .suppressions("email", emails)
        .items()
    ]
    shown = view(
        profile, store.merges(profile.profileId), timeline, _consent(settings, profile), suppressions
    )
    # Its segments and computed traits, as the segments function last decided them (empty: none yet).
    states = SegmentStore(store.table).states([profile.profileId])
    shown["segments"] = list(states[0].segments) if states else []
    shown["computed"] = dict(states[0].computed) if states else {}
    return shown


ERASURE = "profile.erased"  # the cause an erasure's segment removals are kept under (an outbox)


def _leave_audiences(settings: config.ProfilesApiSettings, profile_ids: list[str]) -> None:
    """Queue the removal of every hash the profiles had synced to an ad audience, and the end of their
    segment memberships, before their state is erased with them. Each state is first emptied, its
    removals kept in its outbox under the erasure (one conditional write): the audiences function
    reconciles a message with the state, so a removal must not meet a state that still wants the hash,
    and a retried erasure whose queueing failed finds its removals there."""
    store, now = SegmentStore(settings.profiles_table), clock.now()
    messages: list[tuple[AudienceMessage, str]] = []
    for state in store.states(profile_ids):
        outbox = next((o for o in state.outbox if o.cause == message_digest(ERASURE)), None)
        version = state.version
        if outbox is None:
            changes = [
                SegmentChange(
                    profileId=state.profileId, segment=s, entered=False, at=clock.iso(now), reason="erasure"
                )
                for s in state.segments
            ]
            outbox = Outbox(cause=message_digest(ERASURE), changes=changes, intents=on_erasure([state], now))
            emptied = state.model_copy(update={"segments": [], "synced": {}, "outbox": [outbox]})
            version = store.put(emptied, state.version)  # changed meanwhile: 409, the caller retries
        pending = Decision(state, False, outbox.changes, outbox.intents, None)
        messages += [
            (m, deduplication_id(m.profileId, m.segment, f"erased-v{version}"))
            for m in audience_messages(pending)
        ]
    if messages:
        AudienceQueue(settings.audiences_queue_url).send(messages)


def _body(event: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(event.get("body") or "{}")
    except json.JSONDecodeError as error:
        raise BadRequestError(f"malformed JSON: {error.msg}") from error
    except RecursionError as error:  # the parser recurses once per level of nesting
        raise BadRequestError("the body is nested too deeply") from error
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


def _publish(
    settings: config.ProfilesApiSettings, name: str, profile_id: str, detail: dict[str, Any]
) -> None:
    EventPublisher(settings.event_bus_name).publish([change_event(name, profile_id, detail)])
