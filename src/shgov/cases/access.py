"""Who may see the objects of cases — a case, a department's task on it, a licence it issued — and the one
dependency per kind the API and the pages load them with (one 404 for "no such" and "not yours to know")."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy.orm import Session

from shgov.cases import service as cases
from shgov.core.identity.deps import visible
from shgov.core.identity.permissions import Principal
from shgov.registers import service as registers


def may_see_case(session: Session, principal: Principal, case: cases.Case) -> bool:
    """The service's rule: the applicant, the clerk who submitted it, the departments with a task on it."""
    return cases.may_see(session, principal, case)


def may_see_task(session: Session, principal: Principal, task: cases.CaseTask) -> bool:
    """The service's rule: whoever sees the task's case (acting on it needs the department's right)."""
    return cases.may_see_task(session, principal, task)


def may_see_licence(session: Session, principal: Principal, licence: cases.Licence) -> bool:
    """The service's rule: the holder, and staff who read or revoke the issuing department's licences."""
    return cases.may_see_licence(session, principal, licence)


def _case(page: bool) -> Callable[..., Any]:
    return visible(cases.find_case, may_see_case, param="case_id", convert=uuid.UUID, page=page)


def _task(page: bool) -> Callable[..., Any]:
    return visible(cases.find_task, may_see_task, param="task_id", convert=uuid.UUID, page=page)


VisibleCase = Annotated[cases.Case, Depends(_case(page=False))]
CasePage = Annotated[cases.Case, Depends(_case(page=True))]
VisibleTask = Annotated[cases.CaseTask, Depends(_task(page=False))]
TaskPage = Annotated[cases.CaseTask, Depends(_task(page=True))]
VisibleLicence = Annotated[
    cases.Licence, Depends(visible(registers.issued_licence, may_see_licence, param="licence_no"))
]
