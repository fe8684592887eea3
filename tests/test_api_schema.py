"""Proven by a tool no one here wrote: Schemathesis generates requests for every operation of the OpenAPI
document — as an anonymous caller and as the platform administrator — and checks that none is a server error
and that every answer matches what the document declares (status code, content type, body schema)."""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CheckFunction
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

JUDGEMENTS: list[CheckFunction] = [positive_data_acceptance, negative_data_rejection]
SETTINGS = settings(
    max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)


def _failures(app: FastAPI, server_url: str, headers: dict[str, str]) -> list[str]:
    schema = schemathesis.openapi.from_dict(app.openapi())
    found: list[str] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):  # the document itself is wrong for this operation
            found.append(f"an operation Schemathesis cannot read: {result.err()}")
            continue
        operation = result.ok()

        @SETTINGS
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case[Any]) -> None:
            # Whether a schema-valid request is accepted is the business rules' call (a wrong password is
            # refused), not the document's: those two checks are left out.
            case.call_and_validate(base_url=server_url, headers=headers, excluded_checks=JUDGEMENTS)

        try:
            check()
        except BaseException as exc:
            found.append(f"{operation.label}: {str(exc)[:600]}")
    return found


def test_anonymous(app: FastAPI, server_url: str) -> None:
    failures = _failures(app, server_url, {})
    assert not failures, "\n\n".join(failures)


def test_administrator(app: FastAPI, server_url: str, admin_token: str) -> None:
    failures = _failures(app, server_url, {"Authorization": f"Bearer {admin_token}"})
    assert not failures, "\n\n".join(failures)
