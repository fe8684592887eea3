"""Who may see the lake's objects, and the one dependency per kind the API and the pages load them with."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from shgov.core.identity.deps import visible
from shgov.core.identity.permissions import Principal
from shgov.lake import service as lake
from shgov.lake.models import LakeLoad, LakeResource


def may_see(session: Session, principal: Principal, row: LakeResource | LakeLoad) -> bool:
    """A resource or load is seen by those who read loads of its district or department."""
    return principal.allows(lake.LOAD_READ, row.tenant_code, row.department_code)


def find_load(session: Session, load_id: uuid.UUID) -> LakeLoad | None:
    """A load by its id, or None."""
    return session.get(LakeLoad, load_id)


def find_resource(session: Session, code: str) -> LakeResource | None:
    """A resource by its code, or None."""
    return session.get(LakeResource, code)


VisibleLoad = Annotated[LakeLoad, Depends(visible(find_load, may_see, param="load_id", convert=uuid.UUID))]
VisibleResource = Annotated[LakeResource, Depends(visible(find_resource, may_see, param="code"))]
LoadPage = Annotated[LakeLoad, Depends(visible(find_load, may_see, param="load_id", convert=uuid.UUID, page=True))]
