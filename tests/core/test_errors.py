"""Every API error is an RFC 9457 problem document; browsers get a friendly Chinese page."""

from __future__ import annotations

from typing import Literal

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from shgov.core.errors import PROBLEM_MEDIA_TYPE, ConflictError
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_


class Applicant(BaseModel):
    name: str = Field(min_length=1)
    age: int = Field(ge=0, le=150)


class Payload(BaseModel):
    applicant: Applicant
    note: str = ""
    kind: Literal["a", "b", "c"] = "a"


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    """The app plus a test-only JSON endpoint and one that fails unexpectedly."""
    probe = APIRouter(prefix="/api/v1/probe", route_class=JsonRoute)

    @probe.post("/echo")
    def echo(payload: Payload) -> Payload:
        return payload

    @probe.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    @probe.get("/taken/{code}")
    def taken(code: str) -> None:
        raise ConflictError(N_("Nothing is found at {path}"), field="code", path=code)

    app.include_router(probe)
    return app


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def test_an_unknown_route_is_a_404_problem(client: httpx.Client) -> None:
    body = assert_problem(client.get("/api/v1/no-such-thing"), 404, "not-found")
    assert body["instance"] == "/api/v1/no-such-thing"


def test_a_wrong_method_is_a_405_problem_with_allow(client: httpx.Client) -> None:
    response = client.delete("/healthz")
    assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["allow"]


def test_malformed_json_is_a_400_problem(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/probe/echo",
        content='{"applicant": {"name": "张三",'.encode(),
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "malformed-json")


def test_a_wrong_content_type_is_a_415_problem(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/probe/echo",
        content=b"applicant=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415, "unsupported-media-type")


def test_a_json_suffix_media_type_is_accepted(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/probe/echo",
        content=b'{"applicant": {"name": "A", "age": 3}}',
        headers={"content-type": "application/merge-patch+json; charset=utf-8"},
    )
    assert response.status_code == 200


def test_invalid_fields_are_named_in_a_422_problem(client: httpx.Client) -> None:
    response = client.post("/api/v1/probe/echo", json={"applicant": {"name": "", "age": 200}})
    body = assert_problem(response, 422, "validation-failed")
    fields = {error["field"] for error in body["errors"]}  # type: ignore[attr-defined]
    assert fields == {"applicant.name", "applicant.age"}
    assert all(error["message"] for error in body["errors"])  # type: ignore[attr-defined]


def test_a_missing_body_is_a_422_problem_naming_the_body(client: httpx.Client) -> None:
    response = client.post("/api/v1/probe/echo", headers={"content-type": "application/json"})
    body = assert_problem(response, 422, "validation-failed")
    assert body["errors"] == [{"field": "body", "message": "必填项"}]


def test_problems_answer_in_the_callers_language(client: httpx.Client) -> None:
    """zh-CN unless the client asks for English: the title, the detail and each field's message."""
    bad = {"applicant": {"name": "", "age": 200}}
    chinese = client.post("/api/v1/probe/echo", json=bad).json()
    english = client.post("/api/v1/probe/echo", json=bad, headers={"Accept-Language": "en"}).json()
    assert chinese["detail"] == "输入有误：applicant.name, applicant.age"
    assert english["detail"] == "Invalid input: applicant.name, applicant.age"
    assert {e["message"] for e in chinese["errors"]} == {"不能为空", "不能大于 150"}
    assert {e["message"] for e in english["errors"]} == {"Must not be empty", "Must be at most 150"}
    # the choices of a closed list, without an English "or" in Chinese
    choices = client.post("/api/v1/probe/echo", json={"applicant": {"name": "A", "age": 3}, "kind": "z"}).json()
    assert choices["errors"] == [{"field": "kind", "message": "必须是以下之一：'a'、'b'、'c'"}]
    # a domain error: its fields filled in after translation, in both languages
    conflict = client.get("/api/v1/probe/taken/X-1").json()
    assert conflict["detail"] == "X-1 处没有内容"
    assert conflict["errors"] == [{"field": "code", "message": "X-1 处没有内容"}]
    assert client.get("/api/v1/probe/taken/X-1", headers={"Accept-Language": "en"}).json()["detail"] == (
        "Nothing is found at X-1"
    )


def test_a_body_over_the_limit_is_a_413_problem(client: httpx.Client, app: FastAPI) -> None:
    limit = app.state.settings.web.max_body_bytes
    response = client.post(
        "/api/v1/probe/echo", content=b"x" * (limit + 1), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")


def test_a_streamed_body_over_the_limit_is_a_413_problem(client: httpx.Client, app: FastAPI) -> None:
    limit = app.state.settings.web.max_body_bytes
    chunk = b" " * 65536

    def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: sent chunked
        for _ in range(limit // len(chunk) + 2):
            yield chunk

    response = client.post("/api/v1/probe/echo", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(response, 413, "payload-too-large")


def test_an_unexpected_error_is_a_500_problem_without_internals(client: httpx.Client) -> None:
    response = client.get("/api/v1/probe/boom")
    body = assert_problem(response, 500, "internal-error")
    assert "passwd" not in response.text
    assert "Traceback" not in response.text
    assert "事件编号" in str(body["detail"])  # the incident to quote, in the caller's language


def test_problem_titles_follow_accept_language(client: httpx.Client) -> None:
    english = client.get("/api/v1/nothing", headers={"accept-language": "en-US,en;q=0.9"}).json()
    chinese = client.get("/api/v1/nothing", headers={"accept-language": "zh-CN,zh;q=0.9,en;q=0.5"}).json()
    default = client.get("/api/v1/nothing").json()
    assert english["title"] == "Not found"
    assert chinese["title"] == "未找到"
    assert default["title"] == "未找到"


def test_a_browser_gets_a_friendly_chinese_error_page(client: httpx.Client) -> None:
    response = client.get("/no/such/page", headers={"accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "未找到" in response.text
    assert "返回首页" in response.text


def test_readiness_checks_the_database(client: httpx.Client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok"}
