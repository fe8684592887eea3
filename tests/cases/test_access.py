"""One access helper per kind (#26) in cases: another district's case, task or licence answers exactly as one
that does not exist (the same 404 and body, in the API and on the pages), while the applicant and the
department handling the case still reach it; a client token names its case only to who submitted it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from shgov.core.db import Database
from shgov.core.identity.deps import SESSION_COOKIE, csrf_token
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import assign_role, create_user, issue_token
from shgov.core.settings import Settings
from tests.cases.conftest import PASSWORD
from tests.cases.test_api import auth, pdf_bytes, step

STAFF_PASSWORD = "Staff#2026xy"
FORM = {"child_name": "王小宝", "child_sex": "女", "child_birth_date": "2026-11-20", "bank_name": "上海银行"}


def other_district(district: str) -> str:
    """A district that is not ``district``."""
    return "310101" if district != "310101" else "310115"


def case_worker(db: Database, district: str, name: str) -> str:
    """A case worker of ``district``'s 卫健委 (the department that accepts the birth bundle there); a token."""
    with db.session() as session:
        user = create_user(
            session,
            kind="staff",
            username=name,
            display_name=f"经办 {name}",
            password=STAFF_PASSWORD,
            tenant_code=district,
            department_code=f"{district}.wj",
        )
        assign_role(session, user.id, "case_worker", Scope(district, f"{district}.wj"))
        token, _ = issue_token(session, user.id, "password", 3600)
    return token


def submit(client: httpx.Client, token: str, tag: str) -> dict:
    """A birth-bundle application of the parent's."""
    files = {"material:name:医疗机构分娩记录": ("分娩记录.pdf", pdf_bytes(1), "application/pdf")}
    made = client.post(
        "/api/v1/offerings/bundle/birth/applications",
        data={**FORM, "client_token": tag},
        files=files,
        headers=auth(token),
    )
    assert made.status_code == 201, made.text
    return made.json()


def problem(response: httpx.Response) -> tuple[int, str, dict]:
    """Status, media type and body of a problem answer, without ``instance`` (the path that was asked for)."""
    body = response.json()
    body.pop("instance", None)
    return response.status_code, response.headers["content-type"], body


@contextmanager
def signed_in(server_url: str, username: str, password: str) -> Iterator[httpx.Client]:
    """A browser-like client signed in with a session cookie."""
    with httpx.Client(base_url=server_url, headers={"accept": "text/html"}) as browser:
        form = browser.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
        assert csrf is not None
        signed = browser.post("/login", data={"username": username, "password": password, "csrf_token": csrf.group(1)})
        assert browser.cookies.get(SESSION_COOKIE), signed.text[:300]
        yield browser


def test_another_districts_case_task_and_licence_answer_as_unknown_ones(
    client: httpx.Client,
    parent: tuple[str, str, str],
    admin_token: str,
    db: Database,
    token_for: Callable[[str], str],
) -> None:
    _id, token, district = parent
    case = submit(client, token, "acc-1")
    task = case["tasks"][0]
    owner_token = case_worker(db, district, "t.own.wj")
    owner = auth(owner_token)
    stranger = auth(case_worker(db, other_district(district), "t.far.wj"))
    made_up = str(uuid.uuid4())

    def alike(method: str, path: str, made_up_path: str, **kwargs: object) -> None:
        hidden = client.request(method, path, headers=stranger, **kwargs)  # type: ignore[arg-type]
        missing = client.request(method, made_up_path, headers=stranger, **kwargs)  # type: ignore[arg-type]
        assert hidden.status_code == 404, (path, hidden.text)
        assert problem(hidden) == problem(missing), path

    for suffix, method, kwargs in (
        ("", "GET", {}),
        ("/correction", "POST", {"data": {"birth_hospital": "别处"}}),
        ("/materials", "POST", {"files": {"material:x": ("a.pdf", pdf_bytes(1), "application/pdf")}}),
    ):
        alike(method, f"/api/v1/cases/{case['id']}{suffix}", f"/api/v1/cases/{made_up}{suffix}", **kwargs)
    alike("GET", f"/api/v1/cases/{case['id']}", "/api/v1/cases/not-a-case")
    alike("POST", f"/api/v1/tasks/{task['id']}", f"/api/v1/tasks/{made_up}", json={"action": "claim"})
    # the stranger's claim changed nothing; the applicant and the accepting department still see the case
    mine = client.get(f"/api/v1/cases/{case['id']}", headers=auth(token))
    assert mine.status_code == 200
    assert mine.json()["tasks"][0]["status"] == "ready"
    assert client.get(f"/api/v1/cases/{case['id']}", headers=owner).status_code == 200
    # a department that sees the case may not answer for the applicant (403, not a hint either way)
    refused = client.post(f"/api/v1/cases/{case['id']}/correction", data={"birth_hospital": "别处"}, headers=owner)
    assert refused.status_code == 403
    claimed = client.post(f"/api/v1/tasks/{task['id']}", json={"action": "claim"}, headers=owner)
    assert claimed.status_code == 200, claimed.text
    # a client token reused by someone else is refused without naming the case it made
    again = client.post(
        "/api/v1/offerings/bundle/birth/applications",
        data={**FORM, "client_token": "acc-1"},
        files={"material:name:医疗机构分娩记录": ("分娩记录.pdf", pdf_bytes(1), "application/pdf")},
        headers=auth(token_for("citizen")),
    )
    assert again.status_code == 409, again.text
    assert case["number"] not in again.text

    # the licences a concluded case issued: the holder's, hidden from another district alike
    done = step(client, owner_token, claimed.json(), "accept", "approve")
    done = step(client, owner_token, done, "birth_certificate", "approve")
    for key in ("hukou", "social_card"):
        if any(t["key"] == key and t["status"] in ("ready", "claimed") for t in done["tasks"]):
            done = step(client, admin_token, done, key, "approve")
    assert done["status"] == "concluded"
    licence_no = done["licences"][0]["licence_no"]
    alike("GET", f"/api/v1/licences/{licence_no}.pdf", "/api/v1/licences/NO-SUCH-LICENCE.pdf")
    alike(
        "POST",
        f"/api/v1/licences/{licence_no}/revoke",
        "/api/v1/licences/NO-SUCH-LICENCE/revoke",
        json={"reason": "看看是否存在"},
    )
    assert client.get(f"/api/v1/licences/{licence_no}.pdf", headers=auth(token)).status_code == 200
    # the holder sees the licence but does not revoke it
    assert (
        client.post(f"/api/v1/licences/{licence_no}/revoke", json={"reason": "试试"}, headers=auth(token)).status_code
        == 403
    )


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_case_pages_hide_another_districts_case_like_a_missing_one(
    server_url: str,
    client: httpx.Client,
    parent: tuple[str, str, str],
    db: Database,
    settings: Settings,
    token_for: Callable[[str], str],
) -> None:
    _id, token, district = parent
    case = submit(client, token, "acc-2")
    case_worker(db, other_district(district), "t.far.wj")
    case_worker(db, district, "t.own.wj")
    made_up = str(uuid.uuid4())
    case_id = case["id"]

    with signed_in(server_url, "t.far.wj", STAFF_PASSWORD) as far:
        csrf = {"x-csrf-token": csrf_token(settings, far.cookies[SESSION_COOKIE])}
        for method, suffix, kwargs in (
            ("GET", "", {}),
            ("GET", "/materials/name:医疗机构分娩记录", {}),
            ("POST", "/correction", {"data": {"birth_hospital": "别处"}, "headers": csrf}),
            ("POST", "/materials", {"data": {}, "headers": csrf}),
        ):
            hidden = far.request(method, f"/cases/{case_id}{suffix}", **kwargs)  # type: ignore[arg-type]
            missing = far.request(method, f"/cases/{made_up}{suffix}", **kwargs)  # type: ignore[arg-type]
            assert hidden.status_code == missing.status_code == 404, (suffix, hidden.text[:300])
            assert hidden.headers["content-type"].startswith("text/html")
            # the same page but for the path it links back to
            assert hidden.text.replace(case_id, "ID") == missing.text.replace(made_up, "ID"), suffix
        task_id = case["tasks"][0]["id"]
        hidden = far.post(f"/staff/tasks/{task_id}", data={"action": "claim"}, headers=csrf)
        missing = far.post(f"/staff/tasks/{made_up}", data={"action": "claim"}, headers=csrf)
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text.replace(task_id, "ID") == missing.text.replace(made_up, "ID")

    # the applicant and the accepting department still open it
    with signed_in(server_url, "mother", PASSWORD) as mother:
        page = mother.get(f"/cases/{case_id}")
        assert page.status_code == 200
        assert case["number"] in page.text
        material = mother.get(f"/cases/{case_id}/materials/name:医疗机构分娩记录")
        assert material.status_code == 200
        assert material.content.startswith(b"%PDF")
    with signed_in(server_url, "t.own.wj", STAFF_PASSWORD) as own:
        assert own.get(f"/cases/{case_id}").status_code == 200
    # a visitor without a session is sent to sign in, and back
    anonymous = client.get(f"/cases/{case_id}", headers={"accept": "text/html"}, follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == f"/login?next=/cases/{case_id}"
