"""The ingest API's OpenAPI document, generated from the same pydantic models that validate requests.
Imported only when /openapi.json is asked for: it costs the ingest function nothing at cold start."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import Field
from pydantic.json_schema import models_json_schema

from shared.ingest.calls import BATCH_CALLS, MAX_BATCH_BYTES, MAX_BATCH_CALLS, MAX_CALL_BYTES
from shared.models.base import Model
from shared.models.segment import SINGLE_CALLS, Batch


class Accepted(Model):
    success: bool = Field(description="always true: every call in the request is on the bus")


class ErrorDetail(Model):
    loc: str = Field(description="where: the field path, e.g. `batch.3.event`")
    error: str


class Error(Model):
    error: str = Field(description="what is wrong")
    details: list[ErrorDetail] = Field(default_factory=list)
    limit: str | None = Field(
        default=None, description="the limit exceeded: call_bytes, batch_bytes or batch_calls"
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
            "invalid request: malformed JSON or gzip, wrong types, missing identity", "Error"
        ),
        "401": _json_response(
            "missing, unknown or revoked write key",
            "Error",
            {"WWW-Authenticate": {"schema": {"type": "string"}}},
        ),
        "413": _json_response("over a size limit; `limit` names it and `index` the call", "Error"),
        "503": _json_response(
            "the events could not be stored; retry", "Error", {"Retry-After": {"schema": {"type": "integer"}}}
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
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Continuum ingest API",
            "version": "1",
            "description": (
                "The Segment HTTP Tracking API. Limits: "
                f"{MAX_CALL_BYTES // 1024} KB per call, {MAX_BATCH_BYTES // 1024} KB and {MAX_BATCH_CALLS} "
                "calls per request. Bodies may be gzip-compressed (Content-Encoding: gzip)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {
                "writeKey": {"type": "http", "scheme": "basic", "description": "the write key as username"}
            },
        },
    }


SWAGGER_UI = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Continuum ingest API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""
