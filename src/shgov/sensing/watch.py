"""Warnings of the vital signs: graded 蓝 / 黄 / 橙 / 红 by the indicators' thresholds, de-duplicated (one open
warning per indicator and district), eased or cleared only when the value falls a margin below the grade's
threshold (hysteresis, so a value hovering at a threshold does not flap), and — at orange or red — handed to
the work-order module through its service (a work order, or the category's playbook) with the evidence.

Device anomalies (a value far from the device's own habit, see ``Pipeline._habit``) become ``anomaly``
warnings per device type, measure and district, and districts far from their usual level at this time of day
(see ``seasonal``) become ``seasonal`` warnings; both are blue or yellow: they ask someone to look, not to
dispatch.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shgov.core.db import utcnow
from shgov.core.identity.permissions import Principal
from shgov.core.identity.service import scope_conditions
from shgov.core.regions.service import RegionIndex
from shgov.core.settings import Settings
from shgov.sensing.indicators import GRADE_NAMES, GRADES, Indicator, Reading, grade_of
from shgov.sensing.models import Device, SensorWarning
from shgov.sensing.pipeline import Pipeline
from shgov.sensing.seasonal import Deviation
from shgov.workorders import service as workorders

log = logging.getLogger("shgov.sensing.watch")

HYSTERESIS = 0.10  # a grade holds until the value is this share below its threshold
ANOMALY_QUIET = timedelta(minutes=15)  # an anomaly warning clears after this long without a new anomaly
DISPATCH = ("orange", "red")
# |z| at which a district's seasonal anomaly is blue, yellow: it asks someone to look, it never dispatches
SEASONAL = (3.0, 5.0, math.inf, math.inf)


@dataclass(frozen=True)
class Change:
    """What the evaluation did to a warning."""

    warning: SensorWarning
    what: str  # opened | raised | eased | cleared | dispatched


def held_grade(thresholds: Sequence[float], level: float, current: str) -> str | None:
    """The grade a level keeps under hysteresis, never above ``current`` (None: back to normal)."""
    kept = None
    for grade, threshold in zip(GRADES, thresholds, strict=True):
        if GRADES.index(grade) > GRADES.index(current):
            break
        if level >= threshold * (1 - HYSTERESIS) and level > 0:
            kept = grade
    return kept


def _note(warning: SensorWarning, what: str, now: datetime, **details: Any) -> None:
    warning.history = [*warning.history, {"at": now.isoformat(), "what": what, **details}]


def _open_warnings(session: Session, kind: str) -> dict[tuple[str, str], SensorWarning]:
    """The open warnings of a kind, by (indicator, area): at most one each."""
    found = session.scalars(select(SensorWarning).where(SensorWarning.status == "open", SensorWarning.kind == kind))
    return {(w.indicator_code, w.area_code): w for w in found}


def _open(
    session: Session,
    code: str,
    kind: str,
    district: str,
    grade: str,
    value: float,
    evidence: dict[str, Any],
    now: datetime,
) -> SensorWarning:
    """A new open warning of a district (added to the session)."""
    warning = SensorWarning(
        id=uuid.uuid4(),
        indicator_code=code,
        kind=kind,
        tenant_code=district,
        area_code=district,
        grade=grade,
        peak_grade=grade,
        value=value,
        peak_value=value,
        status="open",
        evidence=evidence,
        history=[],
        opened_at=now,
        updated_at=now,
    )
    _note(warning, "opened", now, grade=grade, value=value)
    session.add(warning)
    return warning


def _track(
    session: Session,
    open_: dict[tuple[str, str], SensorWarning],
    key: tuple[str, str, str],
    value: float,
    level: float,
    thresholds: Sequence[float],
    evidence: dict[str, Any],
    now: datetime,
) -> tuple[SensorWarning | None, str | None]:
    """Follow the warning of ``key`` (code, kind, district) to a new value graded by its ``level``: open it,
    raise it at once, ease or clear it only past the hysteresis margin. Returns the warning (None: none is
    open) and what happened to it (None: nothing)."""
    code, kind, district = key
    grade = grade_of(thresholds, level)
    warning = open_.get((code, district))
    if warning is None:
        if grade is None:
            return None, None
        return _open(session, code, kind, district, grade, value, evidence, now), "opened"
    what: str | None = None
    warning.value, warning.evidence, warning.updated_at = value, evidence, now
    if grade is not None and GRADES.index(grade) > GRADES.index(warning.grade):
        warning.grade, what = grade, "raised"
        _note(warning, what, now, grade=grade, value=value)
    else:
        kept = held_grade(thresholds, level, warning.grade)
        if kept is None:
            warning.status, warning.cleared_at, what = "cleared", now, "cleared"
            _note(warning, what, now, value=value)
        elif kept != warning.grade:
            warning.grade, what = kept, "eased"
            _note(warning, what, now, grade=kept, value=value)
    if level > abs(warning.peak_value):
        warning.peak_value = value
    if GRADES.index(warning.grade) > GRADES.index(warning.peak_grade):
        warning.peak_grade = warning.grade
    return warning, what


def evaluate(
    session: Session,
    settings: Settings,
    index: RegionIndex,
    readings: list[Reading],
    now: datetime | None = None,
) -> list[Change]:
    """Open, raise, ease or clear the threshold warnings for the indicators' current values; open a work order
    for a warning that reaches orange or red (once), and note its later changes in that order."""
    now = now or utcnow()
    changes: list[Change] = []
    open_ = _open_warnings(session, "threshold")
    for reading in readings:
        indicator = reading.indicator
        for position, district in enumerate(reading.districts):
            value = float(reading.values[position])
            if value != value:  # no fresh value: the warning stays as it is
                continue
            evidence = {
                "value": round(value, 3),
                "unit": indicator.unit,
                "devices_reporting": int(reading.reporting[position]),
                "devices": reading.evidence.get(district, [])[:50],
                "thresholds": dict(zip(GRADES, indicator.thresholds, strict=True)),
            }
            key = (indicator.code, "threshold", district)
            warning, what = _track(session, open_, key, value, value, indicator.thresholds, evidence, now)
            if warning is None:
                continue
            if what is not None:
                changes.append(Change(warning, what))
                if what in NOTES:
                    _tell_order(session, settings, indicator, warning, what)
            ready = warning.status == "open" and warning.grade in DISPATCH and warning.workorder_id is None
            if ready and indicator.category and _dispatch(session, settings, index, indicator, warning, now):
                changes.append(Change(warning, "dispatched"))
    session.flush()
    return changes


NOTES = {"raised": "预警升级为{grade}", "eased": "预警降为{grade}", "cleared": "预警已解除"}


def _tell_order(session: Session, settings: Settings, indicator: Indicator, warning: SensorWarning, what: str) -> None:
    """Write a dispatched warning's change into its work order's history, so the unit handling it sees the
    readings worsen, ease or return to normal."""
    if warning.workorder_id is None:
        return
    head = NOTES[what].format(grade=GRADE_NAMES[warning.grade])
    at = warning.updated_at.astimezone(ZoneInfo(settings.timezone))
    tail = f"：{indicator.name}现为 {warning.value:g}{indicator.unit}（{at:%Y-%m-%d %H:%M}）。"
    workorders.add_note(session, warning.workorder_id, head + tail)


def _dispatch(
    session: Session,
    settings: Settings,
    index: RegionIndex,
    indicator: Indicator,
    warning: SensorWarning,
    now: datetime,
) -> bool:
    """Open the work order (or playbook) of an orange or red warning, located at its first device."""
    devices = warning.evidence.get("devices") or []
    where = session.get(Device, devices[0]["device_id"]) if devices else None
    if where is None:
        _note(warning, "not dispatched", now, reason="no device above the trigger to locate the work order")
        return False
    area = index.get(warning.area_code)
    listed = "、".join(f"{d['device_id']}（{d['value']:g}{indicator.unit}）" for d in devices[:10])
    report = workorders.Report(
        channel="sensor",
        description=(
            f"{GRADE_NAMES[warning.grade]}预警：{area.name if area else warning.area_code}{indicator.name}"
            f"为 {warning.value:g}{indicator.unit}（{GRADE_NAMES[warning.grade]}阈值 "
            f"{indicator.thresholds[GRADES.index(warning.grade)]:g}）。超限设备：{listed}"
        ),
        lat=where.lat,
        lng=where.lng,
        address=where.name,
        category_code=indicator.category,
        urgent=warning.grade == "red",
        attributes={"warning_id": str(warning.id), "indicator": indicator.code, "evidence": warning.evidence},
        source_ref=f"sensing-warning:{warning.id}",
    )
    order = workorders.intake(session, settings, index, report)
    warning.workorder_id, warning.workorder_number = order.id, order.number
    _note(warning, "dispatched", now, workorder=order.number)
    return True


def note_anomalies(session: Session, pipeline: Pipeline, now: datetime | None = None) -> list[Change]:
    """Turn the pipeline's recent device anomalies into anomaly warnings (one per type, measure and district,
    listing its devices) and clear those quiet for ``ANOMALY_QUIET``."""
    now = now or utcnow()
    registry = pipeline.registry
    recent: dict[tuple[str, str], list[dict[str, Any]]] = {}
    while pipeline.anomalies:
        slot, ts, value, z = pipeline.anomalies.popleft()
        if slot >= registry.slots:
            continue
        device, measure = registry.slot_of(slot)
        code = f"anomaly:{registry.types[int(registry.type_idx[device])]}.{measure}"
        district = registry.districts[int(registry.district_idx[device])]
        recent.setdefault((code, district), []).append(
            {"device_id": registry.ids[device], "value": value, "z": round(z, 1), "ts": ts}
        )
    changes = []
    open_ = _open_warnings(session, "anomaly")
    for (code, district), devices in recent.items():
        strongest = max(abs(d["z"]) for d in devices)
        grade = "yellow" if strongest >= 10 else "blue"
        warning = open_.get((code, district))
        if warning is None:
            evidence = {"devices": devices[-50:]}
            warning = _open(session, code, "anomaly", district, grade, strongest, evidence, now)
            changes.append(Change(warning, "opened"))
        else:
            warning.value, warning.updated_at = strongest, now
            warning.evidence = {"devices": [*warning.evidence.get("devices", []), *devices][-50:]}
            if GRADES.index(grade) > GRADES.index(warning.grade):
                warning.grade = warning.peak_grade = grade
                _note(warning, "raised", now, grade=grade, value=strongest)
                changes.append(Change(warning, "raised"))
    for key, warning in open_.items():
        if key not in recent and warning.updated_at < now - ANOMALY_QUIET:
            warning.status, warning.cleared_at = "cleared", now
            _note(warning, "cleared", now)
            changes.append(Change(warning, "cleared"))
    session.flush()
    return changes


def note_seasonal(session: Session, deviations: list[Deviation], now: datetime | None = None) -> list[Change]:
    """Open, raise, ease or clear the seasonal warnings: per device type, measure and district, graded by how
    many deviations the district's current mean lies from the same hour's on earlier days (``SEASONAL``)."""
    now = now or utcnow()
    open_ = _open_warnings(session, "seasonal")
    changes = []
    for found in deviations:
        key = (f"seasonal:{found.type_code}.{found.measure}", "seasonal", found.district)
        z = round(found.z, 2)
        warning, what = _track(session, open_, key, z, abs(z), SEASONAL, found.as_evidence(), now)
        if warning is not None and what is not None:
            changes.append(Change(warning, what))
    session.flush()
    return changes


def visible_warnings(
    session: Session, principal: Principal, action: str, *, status: str | None = "open", limit: int = 200
) -> list[SensorWarning]:
    """The warnings of the districts the caller may see, most severe and newest first."""
    query = select(SensorWarning)
    scoped = scope_conditions(principal, action, SensorWarning.tenant_code)
    if scoped is not None:
        if not scoped:
            return []
        query = query.where(or_(*scoped))
    if status:
        query = query.where(SensorWarning.status == status)
    found = list(session.scalars(query.order_by(SensorWarning.updated_at.desc()).limit(limit)))
    return sorted(found, key=lambda w: (-GRADES.index(w.grade), -w.updated_at.timestamp()))
