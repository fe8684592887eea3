"""Who may reach the objects of 好差评 — a case to rate, a desk, a rectification — and the one dependency per
kind the API and the pages load them with (one 404 for "no such" and "not yours to know")."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy.orm import Session

from shgov.cases import service as cases
from shgov.core.identity.deps import visible
from shgov.core.identity.permissions import Principal
from shgov.ratings import service as ratings
from shgov.ratings.models import Desk, Rectification


def may_rate_case(session: Session, principal: Principal, case: cases.Case) -> bool:
    """The service's rule: a case is reached here by its applicant alone (real-name rating)."""
    return ratings.may_rate_case(session, principal, case)


def may_rate_desk(session: Session, principal: Principal, desk: Desk) -> bool:
    """Every signed-in visitor rates a desk: its code is printed on the desk as a QR code, public by design."""
    return True


def may_see_desk(session: Session, principal: Principal, desk: Desk) -> bool:
    """The service's rule: a desk's page is for who handles or manages its department's ratings."""
    return ratings.may_see_desk(principal, desk)


def may_see_rectification(session: Session, principal: Principal, rect: Rectification) -> bool:
    """The service's rule: the rater, the rated department and its supervisors."""
    return ratings.may_see_rectification(session, principal, rect)


def _case(page: bool) -> Callable[..., Any]:
    return visible(cases.find_case, may_rate_case, param="case_id", convert=uuid.UUID, page=page)


def _rectification(page: bool) -> Callable[..., Any]:
    return visible(
        ratings.find_rectification, may_see_rectification, param="rectification_id", convert=uuid.UUID, page=page
    )


RatableCase = Annotated[cases.Case, Depends(_case(page=False))]
RatableCasePage = Annotated[cases.Case, Depends(_case(page=True))]
RatableDesk = Annotated[Desk, Depends(visible(ratings.find_desk, may_rate_desk, param="code"))]
RatableDeskPage = Annotated[Desk, Depends(visible(ratings.find_desk, may_rate_desk, param="code", page=True))]
DeskPage = Annotated[Desk, Depends(visible(ratings.find_desk, may_see_desk, param="code", page=True))]
VisibleRectification = Annotated[Rectification, Depends(_rectification(page=False))]
RectificationPage = Annotated[Rectification, Depends(_rectification(page=True))]
