"""The operations centre's picture (城运中心): orders by place and status, overdue lists, hot spots, and the
on-time and satisfaction rates by area and unit — for the whole city or one district."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shgov.core.db import utcnow
from shgov.core.ids import mask_text
from shgov.core.regions.service import RegionIndex
from shgov.core.settings import Settings
from shgov.workorders import service as workorders
from shgov.workorders.models import WorkOrder

MAX_POINTS = 3000  # open orders drawn on the map; the counts always cover all of them
MAX_OVERDUE = 50


@dataclass
class Rates:
    """Counts behind a row's rates, so a rate is never shown without how many orders it rests on."""

    open: int = 0
    overdue: int = 0
    triage: int = 0
    replied: int = 0
    replied_on_time: int = 0
    rated: int = 0
    satisfied: int = 0

    @property
    def on_time_rate(self) -> float | None:
        """Share of the replies of the period given within the reply limit."""
        return round(self.replied_on_time / self.replied, 4) if self.replied else None

    @property
    def satisfaction_rate(self) -> float | None:
        """Share of the follow-ups of the period rated satisfied (4 or 5 of 5)."""
        return round(self.satisfied / self.rated, 4) if self.rated else None

    def as_dict(self) -> dict[str, Any]:
        """The counts and rates, for JSON."""
        return {**vars(self), "on_time_rate": self.on_time_rate, "satisfaction_rate": self.satisfaction_rate}


@dataclass
class Overview:
    """What the centre sees for one scope (``district`` None: the city, by district)."""

    district: str | None
    days: int
    generated_at: datetime
    by_status: dict[str, int] = field(default_factory=dict)
    by_area: dict[str, Rates] = field(default_factory=dict)
    by_unit: dict[str, Rates] = field(default_factory=dict)
    overdue: list[dict[str, Any]] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)
    hot_spots: list[workorders.HotSpot] = field(default_factory=list)
    total: Rates = field(default_factory=Rates)


def version(session: Session, district: str | None) -> tuple[int, str]:
    """A cheap stamp that changes whenever an order of the scope changes (the live view polls it)."""
    query = select(func.count(), func.max(WorkOrder.updated_at))
    if district:
        query = query.where(WorkOrder.district_code == district)
    count, latest = session.execute(query).one()
    return int(count or 0), str(latest or "")


def overview(
    session: Session,
    settings: Settings,
    index: RegionIndex,
    district: str | None = None,
    days: int = 30,
    now: datetime | None = None,
) -> Overview:
    """The picture of the city (by district) or of one district (by township) over the last ``days``."""
    moment = now or utcnow()
    since = moment - timedelta(days=days)
    area_column = WorkOrder.township_code if district else WorkOrder.district_code
    result = Overview(district, days, moment)

    def rows(*conditions: Any) -> Any:
        query = select(
            area_column,
            WorkOrder.lead_unit,
            WorkOrder.status,
            WorkOrder.sign_due,
            WorkOrder.reply_due,
            WorkOrder.conclude_due,
            WorkOrder.replied_at,
            WorkOrder.satisfaction,
            WorkOrder.id,
            WorkOrder.number,
            WorkOrder.category_code,
            WorkOrder.lat,
            WorkOrder.lng,
            WorkOrder.description,
        ).where(*conditions)
        if district:
            query = query.where(WorkOrder.district_code == district)
        return session.execute(query)

    def bump(area: str | None, unit: str | None, name: str, amount: int = 1) -> None:
        for rates in (
            result.total,
            result.by_area.setdefault(area or "", Rates()),
            result.by_unit.setdefault(unit or "", Rates()),
        ):
            setattr(rates, name, getattr(rates, name) + amount)

    probe = WorkOrder()
    overdue: list[tuple[datetime, Any]] = []
    for row in rows(WorkOrder.status.in_(workorders.OPEN)):
        area, unit, status = row[0], row[1], row[2]
        result.by_status[status] = result.by_status.get(status, 0) + 1
        bump(area, unit, "open")
        if status == "triage":
            bump(area, unit, "triage")
        probe.status, probe.sign_due, probe.reply_due, probe.conclude_due = row[2], row[3], row[4], row[5]
        flag = workorders.deadline_flag(probe, settings.workorders.warn_hours, moment)
        if flag == "overdue":
            bump(area, unit, "overdue")
            due = {"dispatched": row[3], "returned": row[3], "signed": row[4], "replied": row[5]}.get(status)
            if due is not None:
                overdue.append((due, row))
        if row.lat is not None and len(result.points) < MAX_POINTS:
            result.points.append(
                {
                    "id": str(row.id),
                    "number": row.number,
                    "lat": row.lat,
                    "lng": row.lng,
                    "status": status,
                    "flag": flag,
                    "category": row.category_code,
                }
            )
    for row in rows(WorkOrder.replied_at.is_not(None), WorkOrder.replied_at >= since):
        bump(row[0], row[1], "replied")
        if row.reply_due is not None and row.replied_at <= row.reply_due:
            bump(row[0], row[1], "replied_on_time")
    for row in rows(WorkOrder.satisfaction.is_not(None), WorkOrder.updated_at >= since):
        bump(row[0], row[1], "rated")
        if row.satisfaction >= 4:
            bump(row[0], row[1], "satisfied")
    for status in workorders.CLOSED:
        query = select(func.count()).where(WorkOrder.status == status, WorkOrder.updated_at >= since)
        if district:
            query = query.where(WorkOrder.district_code == district)
        result.by_status[status] = session.scalar(query) or 0
    overdue.sort(key=lambda pair: pair[0])
    names = workorders.unit_names(session, [row[1] for _due, row in overdue[:MAX_OVERDUE]])
    result.overdue = [
        {
            "id": str(row.id),
            "number": row.number,
            "status": row.status,
            "due": due.isoformat(),
            "hours_over": round((moment - due).total_seconds() / 3600, 1),
            "area": row[0],
            "area_name": _name(index, row[0]),
            "unit": row[1],
            "unit_name": names.get(row[1] or "", row[1] or ""),
            # masked before it is cut, so no half number escapes (the dashboard is not entitled to personal data)
            "description": mask_text(row.description)[:80],
        }
        for due, row in overdue[:MAX_OVERDUE]
    ]
    result.hot_spots = workorders.hot_spots(session, moment - timedelta(days=7), 3, district)[:20]
    return result


def _name(index: RegionIndex, code: str | None) -> str:
    found = index.get(code) if code else None
    return found.name if found else ""


def as_json(session: Session, index: RegionIndex, view: Overview) -> dict[str, Any]:
    """The overview as the dashboard's script reads it."""
    units = workorders.unit_names(session, list(view.by_unit))
    return {
        "district": view.district,
        "days": view.days,
        "generated_at": view.generated_at.isoformat(),
        "total": view.total.as_dict(),
        "by_status": view.by_status,
        "by_area": [
            {
                "code": code,
                "name": _name(index, code) or ("（未定位到街镇）" if view.district else "（未定位）"),
                **rates.as_dict(),
            }
            for code, rates in sorted(view.by_area.items())
        ],
        "by_unit": [
            {"unit": unit, "name": units.get(unit, "（待分拨）") if unit else "（待分拨）", **rates.as_dict()}
            for unit, rates in sorted(view.by_unit.items(), key=lambda pair: (-pair[1].open, pair[0]))
        ],
        "overdue": view.overdue,
        "points": view.points,
        "hot_spots": [
            {
                "cell": h.cell,
                "category_code": h.category_code,
                "count": h.count,
                "lat": h.lat,
                "lng": h.lng,
                "district_code": h.district_code,
            }
            for h in view.hot_spots
        ],
    }
