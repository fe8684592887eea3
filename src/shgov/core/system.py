"""Liveness and readiness probes."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from pydantic import BaseModel

from shgov import __version__
from shgov.core.calendar.service import city_today, default_calendar
from shgov.core.deps import DatabaseDep
from shgov.core.errors import Problem
from shgov.core.i18n import N_

log = logging.getLogger("shgov.system")


class Health(BaseModel):
    """The answer of a probe."""

    status: str
    version: str
    checks: dict[str, str] = {}


def calendar_check() -> str:
    """``ok``, or a warning that a holiday schedule the deadlines need is missing (a warning only: the
    process still serves, counting Monday to Friday)."""
    gap = default_calendar().schedule_gap(city_today())
    return "ok" if gap is None else f"warning: no official holiday schedule for {gap}; load one (shgov calendar load)"


def router() -> APIRouter:
    """``/healthz`` (the process is up) and ``/readyz`` (the database answers)."""
    probes = APIRouter(tags=["system"])

    @probes.get("/healthz", response_model=Health, summary="Liveness probe")
    def healthz() -> Health:
        return Health(status="ok", version=__version__, checks={"calendar": calendar_check()})

    @probes.get("/readyz", response_model=Health, summary="Readiness probe (checks the database)")
    def readyz(db: DatabaseDep) -> Health:
        try:
            db.ping()
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            raise Problem("service-unavailable", detail=N_("The database does not answer.")) from exc
        return Health(status="ok", version=__version__, checks={"database": "ok"})

    return probes
