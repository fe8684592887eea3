"""The one loader and check per kind of sharing object, used by the API and the pages."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy.orm import Session

from shgov.core.identity.deps import visible
from shgov.core.identity.permissions import Principal
from shgov.sharing import service as sharing


def may_see_request(session: Session, principal: Principal, request: sharing.SharingRequest) -> bool:
    """The service's rule: requester, owner and the big-data centre see a request."""
    return sharing.may_see(principal, request)


def may_see_grant(session: Session, principal: Principal, grant: sharing.Grant) -> bool:
    """The service's rule: owner, grantee and the big-data centre see a grant."""
    return sharing.may_see_grant(principal, grant)


def _request_visible(page: bool) -> Callable[..., Any]:
    return visible(sharing.find_request, may_see_request, param="request_id", convert=uuid.UUID, page=page)


VisibleRequest = Annotated[sharing.SharingRequest, Depends(_request_visible(page=False))]
RequestPage = Annotated[sharing.SharingRequest, Depends(_request_visible(page=True))]
VisibleGrant = Annotated[
    sharing.Grant, Depends(visible(sharing.find_grant, may_see_grant, param="grant_id", convert=uuid.UUID))
]
