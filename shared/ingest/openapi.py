"""The ingest API's OpenAPI document, generated from the same pydantic models that validate requests.
Imported only when /openapi.json is asked for: it costs the ingest function nothing at cold start."""

from __future__ import annotations

from functools import cache
from typing import Any

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
from shared.models.segment import (
    MAX_IDENTIFIER_BYTES,
    MAX_MESSAGE_ID_BYTES,
    RESERVED_EVENT_PREFIX,
    SINGLE_CALLS,
    Batch,
)


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
    _, profile_definitions = models_json_schema(
        [(ProfileView, "serialization"), (Error, "serialization")], ref_template=_REF
    )
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
            "schemas": {**profile_definitions["$defs"], **definitions["$defs"]},
            "securitySchemes": {
                "writeKey": {"type": "http", "scheme": "basic", "description": "the write key as username"},
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the Profile API's admin token",
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
