"""Pages of sharing: requests (file, follow, decide), grants, on-time statistics and the audit trail
("who read my data, when, why") for owners and the big-data centre."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from shgov.catalog import service as catalog
from shgov.core.audit.service import records_of
from shgov.core.deps import SessionDep
from shgov.core.errors import DomainError, Problem
from shgov.core.i18n import N_, request_locale
from shgov.core.identity.deps import SignedInPage, audit
from shgov.core.identity.permissions import Principal
from shgov.core.orgs.service import list_departments
from shgov.sharing import service as sharing
from shgov.sharing.access import RequestPage
from shgov.web.pages import PageMessage, TemplatesDep, web_user
from shgov.web.templating import NavItem

router = APIRouter(include_in_schema=False, dependencies=[Depends(web_user)])

NAV = [
    (
        "data",
        NavItem(
            "sharing",
            N_("Data sharing (1515)"),
            "/data/sharing",
            N_("Request other departments' data, decide on requests for yours, see who read it."),
        ),
    )
]
ACTION_NAMES = (N_("file"), N_("approve"), N_("refuse"), N_("withdraw"), N_("escalate"))


def _staff(who: SignedInPage) -> Principal:
    """The visitor, when staff of a department that shares; 403 otherwise."""
    if not any(who.has_action(a) for a in sharing.ALL_ACTIONS):
        raise Problem("forbidden", detail=N_("Sharing is for departments' staff."))
    return who


Staff = Annotated[Principal, Depends(_staff)]


@router.get("/data/sharing", response_class=HTMLResponse)
def home(
    request: Request, templates: TemplatesDep, session: SessionDep, who: Staff, error: PageMessage = None
) -> Response:
    """Requests the visitor's department filed or must decide, grants, and the on-time figures."""
    rows = sharing.visible_requests(session, who)
    mine = [r for r in rows if r.requester_department_code == who.department_code]
    to_decide = [r for r in rows if r not in mine and r.status in sharing.OPEN]
    published = [
        r
        for r in catalog.list_resources(session, None, "published")
        if r.provider_department_code != who.department_code
    ]
    return templates.render(
        request,
        "sharing/home.html",
        {
            "mine": mine,
            "to_decide": to_decide,
            "others": [r for r in rows if r not in mine and r not in to_decide],
            "grants": sharing.visible_grants(session, who),
            "timing": sharing.on_time(session),
            "resources": published,
            "scenarios": catalog.key_scenarios(session),
            "is_overdue": sharing.is_overdue,
            "names": {d.code: d.short_name for d in list_departments(session)},
            "may_file": who.has_action(sharing.REQUEST),
            "error": error,
        },
    )


@router.post("/data/sharing")
def file(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    who: Staff,
    resource_code: Annotated[str, Form(max_length=40)],
    items: Annotated[str, Form(max_length=4000)],
    purpose: Annotated[str, Form(max_length=2000)],
    scenario: Annotated[str, Form(max_length=2000)],
    duration_days: Annotated[int, Form(ge=1, le=sharing.MAX_DURATION_DAYS)] = 365,
    key_scenario_code: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """File a request from the page."""
    try:
        filed = sharing.file_request(
            session,
            who,
            resource_code,
            [i for i in items.replace("，", ",").split(",")],
            purpose,
            scenario,
            duration_days,
            None,
            key_scenario_code or None,
        )
    except DomainError as exc:
        session.rollback()
        return home(request, templates, session, who, error=exc.text(request_locale(request)))
    audit(request, who, "sharing.request.file", object_type="sharing_request", object_id=str(filed.id))
    return RedirectResponse("/data/sharing", status_code=303)


@router.post("/data/sharing/{request_id}")
def decide(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    who: Staff,
    request_id: uuid.UUID,
    found: RequestPage,
    action: Annotated[str, Form(pattern="^(approve|refuse|withdraw)$")],
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Approve, refuse (with the written reason) or withdraw from the page."""
    try:
        sharing.decide(session, who, found, action, note)
    except DomainError as exc:
        session.rollback()
        return home(request, templates, session, who, error=exc.text(request_locale(request)))
    audit(request, who, f"sharing.request.{action}", object_type="sharing_request", object_id=str(request_id))
    return RedirectResponse("/data/sharing", status_code=303)


@router.get("/data/sharing/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    who: Staff,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Gateway calls on the visitor's department's resources (all for the centre), newest first."""
    if not who.has_action(sharing.AUDIT_READ):
        raise Problem("forbidden", detail=N_("The sharing audit trail is for owners and the big-data centre."))
    codes = None
    if not who.city_wide(sharing.AUDIT_READ):
        departments = who.departments_for(sharing.AUDIT_READ)
        codes = [r.code for r in catalog.list_resources(session, None) if r.provider_department_code in departments]
    rows = records_of(session, "sharing.gateway.read", codes, before_seq, 100)
    return templates.render(request, "sharing/audit.html", {"rows": rows})
