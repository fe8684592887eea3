"""The one loader and rule of a work order, and the dependencies the API and the pages load orders with.

Open311 service requests are the same orders reached by their number (or a request's token): reading them is
public by design (GeoReport v2 publishes a city's requests; personal data never appears in them), so their
loaders are the whole check and an unknown number is the only 404.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from shgov.core.identity.deps import visible
from shgov.core.identity.permissions import Principal
from shgov.workorders import service as workorders
from shgov.workorders.models import WorkOrder


def may_see_order(session: Session, principal: Principal, order: WorkOrder) -> bool:
    """The service's rule: the reporter, the operations centre of the order's district (or the city), and
    the units it is dispatched to."""
    return workorders.may_see(principal, order)


def find_request(session: Session, number: str) -> WorkOrder | None:
    """An Open311 service request by its id (the order's number), or None."""
    return session.scalar(select(WorkOrder).where(WorkOrder.number == number))


def find_request_token(session: Session, token: str) -> WorkOrder | None:
    """An Open311 service request by the token its POST answered, or None."""
    return session.scalar(select(WorkOrder).where(WorkOrder.token == token))


VisibleOrder = Annotated[
    WorkOrder, Depends(visible(workorders.find_order, may_see_order, param="order_id", convert=uuid.UUID))
]
OrderPage = Annotated[
    WorkOrder,
    Depends(visible(workorders.find_order, may_see_order, param="order_id", convert=uuid.UUID, page=True)),
]
