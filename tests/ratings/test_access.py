"""One access helper per kind (#26) in 好差评: another district's rectification, someone else's case to rate
and another department's desk answer exactly as ones that do not exist (the same 404 and body, in the API and
on the pages), while the rater and the rated district still reach them; changing a desk needs the right over
the desk as it is, so no one moves another district's desk into their own."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from shgov.core.db import Database
from shgov.core.identity.deps import SESSION_COOKIE, csrf_token
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import assign_role, create_user, issue_token
from shgov.core.settings import Settings
from shgov.ratings.models import Desk
from tests.cases.conftest import PASSWORD
from tests.cases.test_access import other_district, problem, signed_in
from tests.cases.test_api import auth
from tests.ratings.conftest import make_case

ADMIN_PASSWORD = "Admin#2026xy"
BAD = {"level": 1, "channel": "web", "stage": "conclude", "comment": "等了很久"}


def district_admin(db: Database, district: str, username: str) -> str:
    """A district administrator (supervises rectifications, manages desks there); a token."""
    with db.session() as session:
        user = create_user(
            session,
            kind="staff",
            username=username,
            display_name=f"管理员 {username}",
            password=ADMIN_PASSWORD,
            tenant_code=district,
        )
        assign_role(session, user.id, "district_admin", Scope(district, None, True))
        token, _ = issue_token(session, user.id, "password", 3600)
    return token


def neighbour(db: Database) -> str:
    """A citizen who is not the parent; a token."""
    with db.session() as session:
        user = create_user(session, kind="citizen", username="neighbour", display_name="邻居", password=PASSWORD)
        token, _ = issue_token(session, user.id, "password", 3600)
    return token


def rated_badly(client: httpx.Client, token: str, admin_token: str, tag: str) -> tuple[dict, str]:
    """A concluded case of the parent's and the rectification its bad rating opened."""
    case = make_case(client, token, admin_token, tag)
    rated = client.post(f"/api/v1/ratings/cases/{case['id']}", json=BAD, headers=auth(token))
    assert rated.status_code == 201, rated.text
    return case, rated.json()["rectification_id"]


def test_another_districts_rectification_case_and_desk_answer_as_unknown_ones(
    client: httpx.Client, parent: tuple[str, str, str], admin_token: str, rating_roles: None, db: Database
) -> None:
    _id, token, district = parent
    case, rect_id = rated_badly(client, token, admin_token, "ra-1")
    home = auth(district_admin(db, district, "t.home.admin"))
    far = auth(district_admin(db, other_district(district), "t.far.admin"))
    stranger = auth(neighbour(db))
    made_up = str(uuid.uuid4())

    def alike(headers: dict[str, str], method: str, path: str, made_up_path: str, **kwargs: object) -> None:
        hidden = client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        missing = client.request(method, made_up_path, headers=headers, **kwargs)  # type: ignore[arg-type]
        assert hidden.status_code == 404, (path, hidden.text)
        assert problem(hidden) == problem(missing), path

    base = "/api/v1/ratings/rectifications"
    alike(far, "GET", f"{base}/{rect_id}", f"{base}/{made_up}")
    alike(far, "GET", f"{base}/{rect_id}", f"{base}/not-an-id")
    alike(far, "POST", f"{base}/{rect_id}/steps", f"{base}/{made_up}/steps", json={"action": "contact", "note": "x"})
    alike(
        far,
        "POST",
        f"{base}/{rect_id}/appeal",
        f"{base}/{made_up}/appeal",
        json={"decision": "approve", "note": "同意"},
    )
    alike(stranger, "POST", f"{base}/{rect_id}/rerate", f"{base}/{made_up}/rerate", json={"level": 5, "channel": "web"})
    # rating someone else's case is as rating a case that does not exist (real-name, the applicant only)
    cases = "/api/v1/ratings/cases"
    alike(stranger, "POST", f"{cases}/{case['id']}", f"{cases}/{made_up}", json={**BAD, "stage": "accept"})
    alike(far, "POST", f"{cases}/{case['id']}", f"{cases}/{made_up}", json={**BAD, "stage": "accept"})
    # the rater and the rated district still see the loop; the rater may not work it, the district may
    assert client.get(f"{base}/{rect_id}", headers=auth(token)).status_code == 200
    assert client.get(f"{base}/{rect_id}", headers=home).status_code == 200
    assert client.post(f"{base}/{rect_id}/rerate", json={"level": 5, "channel": "web"}, headers=home).status_code == 403

    # a desk of the parent's district: another district neither sees nor moves it
    with db.session() as session:
        session.add(
            Desk(code="ACC-1", name="1 号窗口", department_code=f"{district}.mz", tenant_code=district, staff_ids=[])
        )
    other = other_district(district)
    moved = {"name": "搬走的窗口", "department_code": f"{other}.mz", "tenant_code": other, "staff_ids": []}
    taken = client.put("/api/v1/ratings/desks/ACC-1", json=moved, headers=far)
    assert taken.status_code == 404, taken.text
    with db.session() as session:
        desk = session.get(Desk, "ACC-1")
        assert desk is not None
        assert (desk.tenant_code, desk.name) == (district, "1 号窗口")
    kept = {**moved, "name": "2 号窗口", "department_code": f"{district}.mz", "tenant_code": district}
    assert client.put("/api/v1/ratings/desks/ACC-1", json=kept, headers=home).status_code == 204
    # anyone signed in rates a desk through its QR code; an unknown code is the one 404
    rate = {"level": 5, "channel": "window"}
    assert client.post("/api/v1/ratings/desks/ACC-1", json=rate, headers=stranger).status_code == 201
    missing = client.post("/api/v1/ratings/desks/NO-SUCH-DESK", json=rate, headers=stranger)
    assert missing.status_code == 404


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_rating_pages_hide_another_districts_objects_like_missing_ones(
    server_url: str,
    client: httpx.Client,
    parent: tuple[str, str, str],
    admin_token: str,
    rating_roles: None,
    db: Database,
    settings: Settings,
    token_for: Callable[[str], str],
) -> None:
    _id, token, district = parent
    case, rect_id = rated_badly(client, token, admin_token, "ra-2")
    district_admin(db, district, "t.home.admin")
    district_admin(db, other_district(district), "t.far.admin")
    neighbour(db)
    with db.session() as session:
        session.add(
            Desk(code="ACC-2", name="2 号窗口", department_code=f"{district}.mz", tenant_code=district, staff_ids=[])
        )
    made_up = str(uuid.uuid4())

    def alike(browser: httpx.Client, method: str, real: str, fake: str, real_path: str, fake_path: str) -> None:
        csrf = {"x-csrf-token": csrf_token(settings, browser.cookies[SESSION_COOKIE])}
        data = {"action": "contact", "note": "电话", "decision": "approve", "level": "5", "stage": "conclude"}
        kwargs: dict[str, object] = {"data": data, "headers": csrf} if method == "POST" else {}
        hidden = browser.request(method, real_path, **kwargs)  # type: ignore[arg-type]
        missing = browser.request(method, fake_path, **kwargs)  # type: ignore[arg-type]
        assert hidden.status_code == missing.status_code == 404, (real_path, hidden.text[:300])
        assert hidden.headers["content-type"].startswith("text/html")
        assert hidden.text.replace(real, "ID") == missing.text.replace(fake, "ID"), real_path

    with signed_in(server_url, "t.far.admin", ADMIN_PASSWORD) as far:
        for method, suffix in (("GET", ""), ("POST", "/steps"), ("POST", "/appeal")):
            alike(
                far, method, rect_id, made_up, f"/staff/ratings/{rect_id}{suffix}", f"/staff/ratings/{made_up}{suffix}"
            )
        alike(far, "GET", "ACC-2", "NO-SUCH-DESK", "/staff/ratings/desks/ACC-2", "/staff/ratings/desks/NO-SUCH-DESK")
    with signed_in(server_url, "neighbour", PASSWORD) as stranger:
        for method in ("GET", "POST"):
            alike(stranger, method, case["id"], made_up, f"/my/cases/{case['id']}/rate", f"/my/cases/{made_up}/rate")
        alike(stranger, "POST", rect_id, made_up, f"/my/ratings/{rect_id}/rerate", f"/my/ratings/{made_up}/rerate")

    # the rated district and the rater still open theirs
    with signed_in(server_url, "t.home.admin", ADMIN_PASSWORD) as home:
        assert home.get(f"/staff/ratings/{rect_id}").status_code == 200
        assert home.get("/staff/ratings/desks/ACC-2").status_code == 200
    with signed_in(server_url, "mother", PASSWORD) as mother:
        assert mother.get(f"/my/cases/{case['id']}/rate", follow_redirects=False).status_code == 303  # rated already
        assert mother.get("/rate/desk/ACC-2").status_code == 200
        assert mother.get("/rate/desk/NO-SUCH-DESK").status_code == 404
    anonymous = client.get(f"/staff/ratings/{rect_id}", headers={"accept": "text/html"}, follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == f"/login?next=/staff/ratings/{rect_id}"
