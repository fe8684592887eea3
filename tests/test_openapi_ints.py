"""Bad input stays 4xx: every integer parameter of every operation in the OpenAPI document answers 422
problem+json naming the parameter when it is beyond the signed 64-bit range — checked once for all routes,
not endpoint by endpoint — and a large number within that range is never a 5xx either."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shgov.core.numbers import INT64_MAX

TOO_LARGE = ("99999999999999999999", "-99999999999999999999")
LARGE_BUT_FITTING = str(2**62)
METHODS = ("get", "put", "post", "patch", "delete")


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _is_integer(doc: dict[str, Any], schema: dict[str, Any]) -> bool:
    schema = _resolve(doc, schema)
    return schema.get("type") == "integer" or any(_is_integer(doc, s) for s in schema.get("anyOf", ()))


def _filler(doc: dict[str, Any], schema: dict[str, Any]) -> str:
    """A value that passes validation for a parameter the probe is not about."""
    schema = _resolve(doc, schema)
    for option in schema.get("anyOf", ()):
        if _resolve(doc, option).get("type") != "null":
            return _filler(doc, option)
    if "enum" in schema:
        return str(schema["enum"][0])
    if "default" in schema:
        return str(schema["default"])
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "integer":
        return str(max(1, int(schema.get("minimum", 1))))
    if kind == "number":
        return "1"
    if kind == "boolean":
        return "false"
    if fmt == "uuid":
        return str(uuid.UUID(int=1))
    if fmt == "date":
        return "2026-11-24"
    if fmt == "date-time":
        return "2026-11-24T08:00:00Z"
    return "x" * max(1, int(schema.get("minLength", 1)))


def _probes(doc: dict[str, Any]) -> Iterator[tuple[str, str, str, str, list[dict[str, Any]]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            params = [*item.get("parameters", ()), *operation.get("parameters", ())]
            for param in params:
                if param["in"] in ("query", "path") and _is_integer(doc, param["schema"]):
                    yield method, path, param["in"], param["name"], params


def _request(
    client: httpx.Client,
    token: str,
    doc: dict[str, Any],
    probe: tuple[str, str, str, str, list[dict[str, Any]]],
    value: str,
) -> httpx.Response:
    method, path, where, name, params = probe
    url, query = path, {}
    for param in params:
        given = value if (param["in"], param["name"]) == (where, name) else None
        if param["in"] == "path":
            url = url.replace("{" + param["name"] + "}", given or _filler(doc, param["schema"]))
        elif param["in"] == "query" and (given is not None or param.get("required")):
            query[param["name"]] = given or _filler(doc, param["schema"])
    return client.request(method.upper(), url, params=query, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document."""
    return app.openapi()


def test_there_are_integer_parameters_to_probe(openapi: dict[str, Any]) -> None:
    names = {name for _, _, _, name, _ in _probes(openapi)}
    assert {"offset", "before_seq", "rule_id", "version"} <= names


def test_integers_beyond_64_bits_answer_422_naming_the_parameter(
    client: httpx.Client, admin_token: str, openapi: dict[str, Any]
) -> None:
    wrong: list[str] = []
    for probe in _probes(openapi):
        method, path, where, name, _ = probe
        for value in TOO_LARGE:
            answer = _request(client, admin_token, openapi, probe, value)
            label = f"{method.upper()} {path} {where} {name}={value}: {answer.status_code}"
            if answer.status_code != 422 or not answer.headers["content-type"].startswith("application/problem+json"):
                wrong.append(f"{label} {answer.text[:200]}")
                continue
            fields = [e["field"] for e in answer.json().get("errors", ())]
            if f"{where}.{name}" not in fields:
                wrong.append(f"{label} names {fields}")
    assert wrong == []


def test_a_large_number_that_fits_is_never_a_server_error(
    client: httpx.Client, admin_token: str, openapi: dict[str, Any]
) -> None:
    assert int(LARGE_BUT_FITTING) <= INT64_MAX
    wrong = []
    for probe in _probes(openapi):
        answer = _request(client, admin_token, openapi, probe, LARGE_BUT_FITTING)
        if answer.status_code >= 500:
            method, path, where, name, _ = probe
            wrong.append(f"{method.upper()} {path} {where} {name}: {answer.status_code} {answer.text[:200]}")
    assert wrong == []


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_pages_outside_the_document_are_bounded_too(client: httpx.Client, admin_token: str) -> None:
    for accept, media_type in (("application/json", "application/problem+json"), ("text/html", "text/html")):
        answer = client.get(
            "/data/sharing/audit",
            params={"before_seq": TOO_LARGE[0]},
            headers={"Authorization": f"Bearer {admin_token}", "accept": accept},
        )
        assert answer.status_code == 422
        assert answer.headers["content-type"].startswith(media_type)
        if accept == "application/json":
            assert [e["field"] for e in answer.json()["errors"]] == ["query.before_seq"]
