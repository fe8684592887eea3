"""Liveness and readiness probes."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from pydantic import BaseModel

from shgov import __version__
from shgov.core.deps import DatabaseDep
from shgov.core.errors import Problem

log = logging.getLogger("shgov.system")


class Health(BaseModel):
    """The answer of a probe."""

    status: str
    version: str
    checks: dict[str, str] = {}


def router() -> APIRouter:
    """``/healthz`` (the process is up) and ``/readyz`` (the database answers)."""
    probes = APIRouter(tags=["system"])

    @probes.get("/healthz", response_model=Health, summary="Liveness probe")
    def healthz() -> Health:
        return Health(status="ok", version=__version__)

    @probes.get("/readyz", response_model=Health, summary="Readiness probe (checks the database)")
    def readyz(db: DatabaseDep) -> Health:
        try:
            db.ping()
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            raise Problem("service-unavailable", detail="The database does not answer.") from exc
        return Health(status="ok", version=__version__, checks={"database": "ok"})

    return probes
