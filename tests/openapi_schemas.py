"""Validate an API answer against a schema of the served OpenAPI document (3.1: its schemas are JSON
Schema 2020-12). jsonschema comes with schemathesis, a test dependency."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT_URI = "urn:continuum:openapi"


def response_errors(document: dict[str, Any], path: str, method: str, status: int, answer: Any) -> list[str]:
    """What is wrong with `answer` as the documented `status` answer of `method path` (empty: valid)."""
    operation = document["paths"][path][method.lower()]
    response = operation["responses"].get(str(status))
    if response is None:
        return [f"{method} {path} does not document a {status} answer"]
    schema = response["content"]["application/json"]["schema"]
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    validator = Draft202012Validator({"$ref": DOCUMENT_URI + schema["$ref"]}, registry=registry)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(answer)]
