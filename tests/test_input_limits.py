"""Inputs have limits, for every route at once: free-form JSON in size and depth, no NUL byte in any string
(query, form or JSON; refused alike on SQLite and PostgreSQL), web addresses http(s) only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from shgov.core.bounded import MAX_JSON_BYTES, BoundedJson, HttpUrl, json_problem

BOTH = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)


def _fields(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in answer.json()["errors"]]


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"inner": value}
    return value


@BOTH
def test_free_form_json_is_bounded_in_size_and_depth(client: httpx.Client, token_for: Callable[[str], str]) -> None:
    operator = {"Authorization": f"Bearer {token_for('ops.operator')}"}
    order = {"channel": "hotline", "description": "人民广场道路积水", "lat": 31.2304, "lng": 121.4737}
    big = client.post("/api/v1/workorders", json={**order, "attributes": {"x": "a" * 9_000}}, headers=operator)
    assert _fields(big) == ["attributes"]
    deep = client.post("/api/v1/workorders", json={**order, "attributes": _nested(6)}, headers=operator)
    assert _fields(deep) == ["attributes"]
    # a field declared dict[str, Any] without limits of its own gets the app-wide ones
    admin = {"Authorization": f"Bearer {token_for('admin')}"}
    huge = client.put(
        "/api/v1/services/bundles/x", json={"code": "x", "pad": "a" * (MAX_JSON_BYTES + 1)}, headers=admin
    )
    assert _fields(huge) == ["body"]
    deep = client.put("/api/v1/services/bundles/x", json=_nested(40), headers=admin)
    assert _fields(deep) == ["body"]


@BOTH
def test_nul_bytes_are_refused_in_json_query_and_form(client: httpx.Client, token_for: Callable[[str], str]) -> None:
    citizen = {"Authorization": f"Bearer {token_for('citizen')}"}
    dispute = {"register": "person", "record_key": "31010419900307123X", "element": "address", "reason": "地址\x00错"}
    assert _fields(client.post("/api/v1/disputes", json=dispute, headers=citizen)) == ["reason"]
    worker = {"Authorization": f"Bearer {token_for('pudong.caseworker')}"}
    assert _fields(client.get("/api/v1/worklist", params={"item": "a\x00b"}, headers=worker)) == ["query.item"]
    token = client.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": "citizen\x00", "password": "x"}
    )
    assert token.status_code in (400, 422)
    assert "\x00" not in token.text


class _Probe(BaseModel):
    attributes: BoundedJson = {}
    photo: HttpUrl | None = None


def test_the_reusable_types_name_what_is_wrong() -> None:
    assert json_problem({"a": [1, 2, {"b": "c"}]}) is None
    assert json_problem(_nested(17)) == "nested deeper than 16 levels"
    with pytest.raises(ValidationError, match="larger than"):
        _Probe(attributes={"k": "v" * (MAX_JSON_BYTES + 1)})
    for bad in ("javascript:alert(1)", "data:image/png;base64,AAAA", "file:///etc/passwd", "https://", "http://a b"):
        with pytest.raises(ValidationError, match="http"):
            _Probe(photo=bad)
    for bad in ("http://evil@127.0.0.1/a.jpg", "https://www.gov.cn:x@evil.example/", "https://:80/", "http://a:port/"):
        with pytest.raises(ValidationError, match=r"http|user name"):
            _Probe(photo=bad)
    assert _Probe(photo="https://photos.example.org/a.jpg").photo == "https://photos.example.org/a.jpg"
    assert _Probe(photo="http://[::1]:8080/a.jpg").photo == "http://[::1]:8080/a.jpg"
