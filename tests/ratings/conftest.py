"""Fixtures of the rating tests: the case tests' city, services and parent, the rating roles, and a
concluded birth-bundle case of the parent's (made through the cases API)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from shgov.core.db import Database
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import assign_role, create_user, issue_token
from shgov.core.settings import Settings
from shgov.ratings import service as ratings
from tests.cases.conftest import city, lake_dir, parent  # noqa: F401 - the fixtures the case is made with
from tests.cases.test_api import auth, pdf_bytes, png_bytes, step


@pytest.fixture
def rating_roles(db: Database, settings: Settings, lake_dir: Path) -> None:  # noqa: F811 - the imported fixture
    with db.session() as session:
        ratings.seed_basics(session)


def make_case(client: httpx.Client, token: str, admin: str, tag: str) -> dict:
    """A birth-bundle case of the parent's, accepted and concluded by the administrator."""
    form = {
        "child_name": "王小宝",
        "child_sex": "女",
        "child_birth_date": "2026-11-20",
        "bank_name": "上海银行",
        "client_token": tag,
    }
    files = {
        "material:name:医疗机构分娩记录": ("分娩记录.pdf", pdf_bytes(2), "application/pdf"),
        "material:name:近期免冠证件照": ("photo.png", png_bytes(300, 420), "image/png"),
    }
    made = client.post("/api/v1/offerings/bundle/birth/applications", data=form, files=files, headers=auth(token))
    assert made.status_code == 201, made.text
    case = step(client, admin, made.json(), "accept", "approve")
    case = step(client, admin, case, "birth_certificate", "approve")
    for key in ("hukou", "social_card"):
        if any(t["key"] == key and t["status"] in ("ready", "claimed") for t in case["tasks"]):
            case = step(client, admin, case, key, "approve")
    assert case["status"] == "concluded", case["status"]
    return case


@pytest.fixture
def supervisor(db: Database, parent: tuple[str, str, str], rating_roles: None) -> str:  # noqa: F811
    """A district administrator of the parent's district (supervises rectifications, decides appeals)."""
    _id, _token, district = parent
    with db.session() as session:
        user = create_user(
            session,
            kind="staff",
            username="t.supervisor",
            display_name="督办 王",
            password="Super#2026xy",
            tenant_code=district,
        )
        assign_role(session, user.id, "district_admin", Scope(district, None, True))
        token, _ = issue_token(session, user.id, "password", 3600)
    return token


TokenFor = Callable[[str], str]
