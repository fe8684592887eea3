"""The one loader and check of a dispute, used by the API and the pages."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from shgov.core.identity.deps import visible
from shgov.core.identity.permissions import Principal
from shgov.disputes import service as disputes
from shgov.disputes.models import Dispute


def may_see_dispute(session: Session, principal: Principal, dispute: Dispute) -> bool:
    """The service's rule: the filer and the department the dispute is routed to."""
    return disputes.may_see(principal, dispute)


VisibleDispute = Annotated[
    Dispute, Depends(visible(disputes.find_dispute, may_see_dispute, param="dispute_id", convert=uuid.UUID))
]
DisputePage = Annotated[
    Dispute,
    Depends(visible(disputes.find_dispute, may_see_dispute, param="dispute_id", convert=uuid.UUID, page=True)),
]
