"""The HTTP API's OpenAPI document (ingest, and the admin APIs: profiles, journeys, segments),
generated from the same pydantic models that validate requests. Imported only when /openapi.json is
asked for: it costs the ingest function nothing at cold start."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from pydantic import Field
from pydantic.json_schema import models_json_schema

from shared.identity.profile_api import LOOKUP_PARAMETERS, ProfileView
from shared.ingest.calls import (
    BATCH_CALLS,
    FUTURE_TOLERANCE,
    MAX_BATCH_BYTES,
    MAX_BATCH_CALLS,
    MAX_CALL_BYTES,
)
from shared.models.base import Model
from shared.models.journey import EventRule, JourneyId, StepId, StepType
from shared.models.segment import (
    MAX_IDENTIFIER_BYTES,
    MAX_MESSAGE_ID_BYTES,
    RESERVED_EVENT_PREFIX,
    SINGLE_CALLS,
    Batch,
)
from shared.models.segments import AudienceSync, ComputedTrait, Node, SegmentId


class Accepted(Model):
    success: bool = Field(description="always true: every call in the request is on the bus")


class ErrorDetail(Model):
    loc: str = Field(description="where: the field path, e.g. `batch.3.event`")
    error: str


class Error(Model):
    error: str = Field(description="what is wrong")
    details: list[ErrorDetail] = Field(default_factory=list)
    limit: str | None = Field(
        default=None,
        description="the limit exceeded: call_bytes, batch_bytes, batch_calls, gzip_members or "
        "identifier_bytes (an identifier inside context or traits, over 1,024 bytes in UTF-8)",
    )
    index: int | None = Field(default=None, description="the offending call's index in the batch")


# What the Journeys API (shared/journeys/report.py) and the Segments API (functions/segments_api)
# answer. They build their answers as dicts; these models only describe them, and tests validate real
# answers against the document (tests/unit/test_admin_openapi.py, tests/e2e/test_admin_openapi.py).
Count = Annotated[float, Field(ge=0)]  # a counter: a whole number, or a sum of revenue
ByReason = dict[str, Count]


class JourneySummary(Model):
    """One journey of the catalogue, with its entries."""

    id: JourneyId
    name: str
    trigger: EventRule
    entered: Count = Field(description="profiles that entered (held out included)")
    active: Count = Field(description="runs in progress: entered minus every exit")


class JourneyList(Model):
    journeys: list[JourneySummary]


class StepOutcome(Model):
    """One step of a journey (depth first, as written) and what it did."""

    id: StepId
    type: StepType
    sent: Count = Field(description="messages queued by this step")
    dropped: ByReason = Field(description="messages the send gate dropped, by reason")
    deferred: ByReason = Field(description="messages the send gate deferred (once each), by reason")
    conversions: Count = Field(description="conversions credited to this step (the last that sent)")
    revenue: Count


class JourneyDetail(JourneySummary):
    """One journey with every counter, and each of its steps."""

    exited: ByReason = Field(
        description="runs ended, by reason: exit_event, goal, exit_step, completed, failed, "
        "merged_duplicate, erased, never_started"
    )
    heldOut: Count = Field(description="entries held out (no message from this journey)")
    conversions: Count
    revenue: Count
    heldOutConversions: Count
    heldOutRevenue: Count
    steps: list[StepOutcome]


class SegmentView(Model):
    """One segment of the catalogue: its definition and its current size."""

    id: SegmentId
    name: str
    description: str | None
    when: Node
    audiences: list[AudienceSync]
    size: int = Field(ge=0, description="the current number of members")


class SegmentList(Model):
    segments: list[SegmentView]
    computedTraits: list[ComputedTrait]


ADMIN_RESPONSES: list[type[Model]] = [JourneyList, JourneyDetail, SegmentList, SegmentView]

_REF = "#/components/schemas/{model}"


def _json_response(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=schema)}}},
    }
    if headers:
        response["headers"] = headers
    return response


@cache
def document() -> dict[str, Any]:
    models: list[type[Model]] = [*SINGLE_CALLS.values(), Batch, Accepted, Error]
    refs, definitions = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    errors = {
        "400": _json_response(
            "invalid request: malformed JSON or gzip, wrong types, missing identity, an identifier"
            f" over {MAX_IDENTIFIER_BYTES} bytes (a messageId over {MAX_MESSAGE_ID_BYTES}) in UTF-8, or a"
            f" track event whose name starts with `{RESERVED_EVENT_PREFIX}` (reserved for Continuum's"
            " segment events)",
            "Error",
        ),
        "401": _json_response(
            "missing, unknown or revoked write key",
            "Error",
            {"WWW-Authenticate": {"schema": {"type": "string"}}},
        ),
        "413": _json_response("over a size limit; `limit` names it and `index` the call", "Error"),
        "503": _json_response(
            "the events could not be stored, or a copy of a call is being accepted by another request; retry",
            "Error",
            {"Retry-After": {"schema": {"type": "integer"}}},
        ),
    }
    paths: dict[str, Any] = {}
    calls: dict[str, type[Model]] = {**SINGLE_CALLS, **dict.fromkeys(sorted(BATCH_CALLS), Batch)}
    for call_type, model in calls.items():
        schema = refs[(model, "validation")]
        paths[f"/v1/{call_type}"] = {
            "post": {
                "operationId": call_type,
                "summary": f"Segment {call_type} call" + (" (several calls)" if model is Batch else ""),
                "description": model.__doc__ or "",
                "security": [{"writeKey": []}],
                "requestBody": {
                    "required": True,
                    # analytics.js sends JSON as text/plain to avoid a CORS preflight.
                    "content": {"application/json": {"schema": schema}, "text/plain": {"schema": schema}},
                },
                "responses": {"200": _json_response("accepted", "Accepted"), **errors},
            }
        }
    paths.update(_profile_paths())
    paths.update(_journey_and_segment_paths())
    _, profile_definitions = models_json_schema(
        [(ProfileView, "serialization"), (Error, "serialization")], ref_template=_REF
    )
    _, admin_definitions = models_json_schema(
        [(m, "serialization") for m in ADMIN_RESPONSES], ref_template=_REF
    )
    schemas: dict[str, Any] = {}
    for part in (admin_definitions["$defs"], profile_definitions["$defs"], definitions["$defs"]):
        # Each generation names its own components: one name must not mean two schemas.
        clash = [name for name in part.keys() & schemas.keys() if part[name] != schemas[name]]
        assert not clash, f"components generated twice with different schemas: {clash}"
        schemas.update(part)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Continuum ingest API",
            "version": "1",
            "description": (
                "The Segment HTTP Tracking API. Limits: "
                f"{MAX_CALL_BYTES // 1024} KB per call, {MAX_BATCH_BYTES // 1024} KB and {MAX_BATCH_CALLS} "
                "calls per request. Bodies may be gzip-compressed (Content-Encoding: gzip). Identifiers "
                f"(ids, and email, phone, device id and token, external ids in traits and context) at "
                f"most {MAX_IDENTIFIER_BYTES} bytes in UTF-8, a messageId at most {MAX_MESSAGE_ID_BYTES}. "
                f"A timestamp more than {FUTURE_TOLERANCE.total_seconds() / 60:g} minutes in the future is "
                "replaced by the time received."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "writeKey": {"type": "http", "scheme": "basic", "description": "the write key as username"},
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the admin token (Profile, Journeys and Segments APIs)",
                },
            },
        },
    }


def _profile_paths() -> dict[str, Any]:
    """The Profile API (admin token only; a write key never opens it)."""
    profile = _json_response("the profile (a merged profile's id answers with the survivor)", "ProfileView")
    errors = {
        "400": _json_response("a malformed lookup", "Error"),
        "401": _json_response("missing or wrong admin token", "Error"),
        "404": _json_response("no such profile (or it was erased)", "Error"),
        "409": _json_response("the profile changed meanwhile; retry", "Error"),
    }
    profile_id = {"name": "profileId", "in": "path", "required": True, "schema": {"type": "string"}}
    lookups = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in LOOKUP_PARAMETERS
    ]

    def operation(operation_id: str, summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["profiles"],
            "security": [{"adminToken": []}],
            "responses": {"200": ok, **errors},
            **extra,
        }

    erased = {"description": "erased: profile, identifiers and timeline removed, identifiers suppressed"}
    return {
        "/v1/profiles": {
            "get": operation(
                "lookupProfile",
                "Find a profile by one identifier (exactly one parameter)",
                profile,
                parameters=lookups,
            )
        },
        "/v1/profiles/{profileId}": {
            "get": operation("getProfile", "A profile by id", profile, parameters=[profile_id]),
            "delete": operation("eraseProfile", "Erase a person (GDPR)", erased, parameters=[profile_id]),
        },
        "/v1/profiles/{profileId}/unmerge": {
            "post": operation(
                "unmergeProfile",
                "Split a past merge: the merged profile comes back with the identifiers it brought",
                {"description": "the survivor and the restored profile"},
                parameters=[profile_id],
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"mergedProfileId": {"type": "string"}},
                                "required": ["mergedProfileId"],
                            }
                        }
                    },
                },
            )
        },
        "/v1/profiles/{profileId}/consent": {
            "put": operation(
                "setConsent",
                "Set a person's consent per subscription topic (every channel) or per topic and channel",
                {"description": "the profile id and its effective consent (as in the profile's `consent`)"},
                parameters=[profile_id],
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "description": (
                                    '{"<topic>": true|false} or {"<topic>": {"<channel>": true|false}}, '
                                    "topics and channels as policy.yaml declares them (transactional "
                                    "cannot be unsubscribed from); also Segment's "
                                    '{"categoryPreferences": {"<topic>": true|false}}'
                                ),
                                "additionalProperties": {
                                    "oneOf": [
                                        {"type": "boolean"},
                                        {"type": "object", "additionalProperties": {"type": "boolean"}},
                                    ]
                                },
                                "minProperties": 1,
                            }
                        }
                    },
                },
            )
        },
        "/v1/profiles/{profileId}/identifiers/{type}/{value}": {
            "delete": operation(
                "removeIdentifier",
                "Remove one identifier from a profile",
                profile,
                parameters=[
                    profile_id,
                    {"name": "type", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "value", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
            )
        },
    }


def _journey_and_segment_paths() -> dict[str, Any]:
    """The Journeys and Segments APIs (admin token only)."""
    # Each serves GET alone; another method never reaches it (it is not an operation here).
    other_methods = (
        'GET only. Another method is answered 404: by API Gateway (`{"message": "Not Found"}`), or, '
        "for POST, by the ingest route (`POST /v1/{proxy+}`), which knows no such call."
    )
    unauthorized = _json_response(
        "missing or wrong admin token", "Error", {"WWW-Authenticate": {"schema": {"type": "string"}}}
    )

    def operation(
        operation_id: str, tag: str, summary: str, ok: str, unknown: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        responses = {"200": _json_response(summary, ok), "401": unauthorized}
        if unknown:
            responses["404"] = _json_response(unknown, "Error")
        return {
            "operationId": operation_id,
            "summary": summary,
            "tags": [tag],
            "security": [{"adminToken": []}],
            "responses": responses,
            **extra,
        }

    def path_id(name: str, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": description,
            "schema": {"type": "string"},
        }

    return {
        "/v1/journeys": {
            "description": other_methods,
            "get": operation(
                "listJourneys", "journeys", "Every journey of the catalogue, with its entries", "JourneyList"
            ),
        },
        "/v1/journeys/{journeyId}": {
            "description": other_methods,
            "get": operation(
                "getJourney",
                "journeys",
                "One journey: entries, exits by reason, holdout, conversions, revenue, each step's outcomes",
                "JourneyDetail",
                "no such journey",
                parameters=[path_id("journeyId", "the journey's id (its folder's name)")],
            ),
        },
        "/v1/segments": {
            "description": other_methods,
            "get": operation(
                "listSegments",
                "segments",
                "Every segment (definition and size) and the computed traits",
                "SegmentList",
            ),
        },
        "/v1/segments/{segmentId}": {
            "description": other_methods,
            "get": operation(
                "getSegment",
                "segments",
                "One segment: its definition and size",
                "SegmentView",
                "no such segment",
                parameters=[path_id("segmentId", "the segment's id (its file's name)")],
            ),
        },
    }
