"""What the OpenAPI document says about errors: every operation can answer with a problem (RFC 9457,
``application/problem+json``) — a 4xx for the caller's request (unauthenticated, forbidden, not found,
conflicting, invalid, too large, too many) and 503 when the database is unavailable — so that clients
generated from the document, and tools that check answers against it, expect what the platform sends.
FastAPI's own 422 schema is replaced: validation errors are problems too."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from shgov.core.errors import PROBLEM_MEDIA_TYPE

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; title and detail in the caller's language.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "The kind of problem, a URI reference."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "One entry per field that was refused.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,  # a problem type may add members (an incident id, a retry time)
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_ANSWERS = {
    "4XX": "The request was refused: see the problem's type and detail.",
    "503": "The service is temporarily unavailable (the detail quotes an incident id).",
}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def describe_problems(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document declare the problem answers of every operation."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            description=app.description,
            routes=app.routes,
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in _FASTAPI_VALIDATION:
            schemas.pop(name, None)
        schemas["Problem"] = PROBLEM_SCHEMA
        answer = {"content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}}}
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)  # inside 4XX, as a problem
                for code, description in _ANSWERS.items():
                    responses.setdefault(code, {"description": description, **answer})
        app.openapi_schema = schema
        return schema

    app.openapi = document  # type: ignore[method-assign]
    app.openapi_schema = None


def own_errors(description: str, *media_types: str) -> dict[int | str, dict[str, Any]]:
    """``responses`` for a router whose protocol has its own error format (CKAN's ``success: false``, the
    GeoReport error list): its 4xx are declared in those media types instead of as problems."""
    return {"4XX": {"description": description, "content": {media: {} for media in media_types}}}


def file_answer(*media_types: str) -> dict[int | str, dict[str, Any]]:
    """``responses`` of an operation whose success is a file (an export, a spreadsheet) in ``media_types``."""
    return {200: {"description": "The file.", "content": {media: {} for media in media_types}}}
