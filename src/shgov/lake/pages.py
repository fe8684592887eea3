"""Pages of the lake: resources with quality scores, loads with lineage, quarantined rows."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.i18n import N_
from shgov.core.identity.deps import SignedInPage
from shgov.lake import service as lake
from shgov.lake.access import LoadPage, may_see
from shgov.web.pages import TemplatesDep, web_user
from shgov.web.templating import NavItem

router = APIRouter(include_in_schema=False, dependencies=[Depends(web_user)])

NAV = [
    (
        "data",
        NavItem(
            "lake",
            N_("Aggregation and data quality"),
            "/data/lake",
            N_("Departments' deliveries, lineage, quality scores and quarantined rows."),
        ),
    )
]


@router.get("/data/lake", response_class=HTMLResponse)
def lake_home(request: Request, templates: TemplatesDep, session: SessionDep, who: SignedInPage) -> Response:
    """Resources the visitor may see, with versions, scores and the latest loads."""
    resources = [r for r in lake.list_resources(session) if may_see(session, who, r)]
    loads = [row for row in lake.list_loads(session, limit=30) if may_see(session, who, row)]
    scores = {
        d: s for d, s in lake.department_scores(session).items() if any(r.department_code == d for r in resources)
    }
    trend = lake.quality_trend(session, limit=10)
    return templates.render(
        request,
        "lake/home.html",
        {"resources": resources, "loads": loads, "departments": scores, "trend": trend},
    )


@router.get("/data/lake/loads/{load_id}", response_class=HTMLResponse)
def load_page(
    request: Request,
    templates: TemplatesDep,
    settings: SettingsDep,
    row: LoadPage,
    load_id: uuid.UUID,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """One load: its lineage and a page of the rows it quarantined."""
    total, rows = lake.quarantined_rows(settings.lake_dir, row.resource_code, row.id, offset, 50)
    return templates.render(
        request, "lake/load.html", {"load": row, "total": total, "rows": rows, "offset": offset, "page": 50}
    )
