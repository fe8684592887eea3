"""The regions API: divisions (public reference data), locating points, parsing addresses, grids."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.requests import Request

from shgov.core.deps import SessionDep
from shgov.core.errors import Problem
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_
from shgov.core.identity import permissions as perm
from shgov.core.identity.deps import audit, require_action
from shgov.core.identity.permissions import Principal
from shgov.core.regions.geo import CRS
from shgov.core.regions.service import GridInfo, RegionDataError, RegionIndex, RegionInfo, register_grid

router = APIRouter(prefix="/api/v1/regions", tags=["regions"], route_class=JsonRoute)


def get_region_index(request: Request, session: SessionDep) -> RegionIndex:
    """The app's region index, built on first use and after divisions are loaded."""
    index: RegionIndex | None = getattr(request.app.state, "region_index", None)
    if index is None:
        index = RegionIndex.from_session(session)
        request.app.state.region_index = index
    return index


IndexDep = Annotated[RegionIndex, Depends(get_region_index)]


class RegionOut(BaseModel):
    """A division."""

    code: str
    name: str
    level: str
    parent_code: str | None


class RegionDetail(RegionOut):
    """A division with its ancestors and how many divisions lie under it."""

    ancestors: list[RegionOut]
    counts: dict[str, int]
    children: int


class GridOut(BaseModel):
    """A registered grid."""

    code: str
    cell: str
    community_code: str
    name: str


class LocationOut(BaseModel):
    """Where a point lies."""

    lng: float = Field(description="WGS-84 longitude (converted when another CRS was given)")
    lat: float
    district: RegionOut
    township: RegionOut | None
    community: RegionOut | None
    cell: str = Field(description="H3 cell at the grid resolution")
    grid: GridOut | None
    approximate: bool = Field(description="true when the point lies just outside the simplified outline")


class ParsedAddressOut(BaseModel):
    """What an address names."""

    text: str
    district: RegionOut | None
    township: RegionOut | None
    community: RegionOut | None
    remainder: str
    ambiguous: list[str]


class GridIn(BaseModel):
    """Bind a cell to a community."""

    community_code: str
    cell: str
    name: str = ""


def _out(info: RegionInfo | None) -> RegionOut | None:
    return RegionOut(**vars(info)) if info else None


def _grid_out(grid: GridInfo | None) -> GridOut | None:
    return GridOut(**vars(grid)) if grid else None


@router.get("", response_model=list[RegionOut])
def list_regions(
    index: IndexDep,
    parent: Annotated[str | None, Query(description="children of this code; omit for the city")] = None,
    level: Annotated[str | None, Query(pattern="^(city|district|township|community)$")] = None,
) -> list[RegionOut]:
    """Divisions under ``parent`` (public)."""
    if parent is not None and index.get(parent) is None:
        raise Problem("not-found", detail=N_("No division {code}."), params={"code": parent})
    if level is not None and parent is None:
        items = sorted((r for r in index.regions.values() if r.level == level), key=lambda r: r.code)
    else:
        items = index.children_of(parent) if parent else ([index.city] if index.city else [])
    return [RegionOut(**vars(r)) for r in items if level is None or r.level == level]


@router.get("/locate", response_model=LocationOut)
def locate(
    index: IndexDep,
    lng: Annotated[float, Query(description="longitude")],
    lat: Annotated[float, Query(description="latitude")],
    crs: Annotated[CRS, Query(description="coordinate system of the point")] = CRS.WGS84,
) -> LocationOut:
    """District, H3 cell and registered grid of a point (public)."""
    found = index.locate(lng, lat, crs)  # a CoordinateError is a 422 naming the coordinate
    district = _out(found.district)
    assert district is not None  # noqa: S101 - locate always finds a district
    return LocationOut(
        lng=found.lng,
        lat=found.lat,
        district=district,
        township=_out(found.township),
        community=_out(found.community),
        cell=found.cell,
        grid=_grid_out(found.grid),
        approximate=found.approximate,
    )


@router.get("/parse-address", response_model=ParsedAddressOut)
def parse_address(index: IndexDep, q: Annotated[str, Query(min_length=1, max_length=300)]) -> ParsedAddressOut:
    """The divisions an address names (public)."""
    parsed = index.parse_address(q)
    return ParsedAddressOut(
        text=parsed.text,
        district=_out(parsed.district),
        township=_out(parsed.township),
        community=_out(parsed.community),
        remainder=parsed.remainder,
        ambiguous=list(parsed.ambiguous),
    )


@router.get("/boundaries.geojson", summary="District outlines as GeoJSON (public)")
def boundaries(index: IndexDep) -> dict[str, Any]:
    """A FeatureCollection of the district outlines, for maps."""
    features = [
        {
            "type": "Feature",
            "properties": {"code": code, "name": index.regions[code].name},
            "geometry": geometry,
        }
        for code, geometry in sorted(index.boundaries.items())
    ]
    return {"type": "FeatureCollection", "features": features}


@router.get("/{code}", response_model=RegionDetail)
def region(index: IndexDep, code: str) -> RegionDetail:
    """One division with its ancestors and counts (public)."""
    info = index.get(code)
    if info is None:
        raise Problem("not-found", detail=N_("No division {code}."), params={"code": code})
    return RegionDetail(
        **vars(info),
        ancestors=[RegionOut(**vars(a)) for a in index.ancestors(code)],
        counts=index.descendant_counts(code),
        children=len(index.children.get(code, [])),
    )


@router.post("/grids", response_model=GridOut, status_code=201)
def create_grid(
    request: Request,
    session: SessionDep,
    index: IndexDep,
    body: GridIn,
    principal: Annotated[Principal, Depends(require_action(perm.GRID_MANAGE))],
) -> GridOut:
    """Register a grid: bind an H3 cell to a community of a district the caller manages."""
    community = index.get(body.community_code)
    district = (
        index.ancestors(body.community_code)[1] if community and len(index.ancestors(body.community_code)) > 1 else None
    )
    if district is None or not principal.allows(perm.GRID_MANAGE, district.code):
        raise Problem("forbidden", detail=N_("You may register grids only in your own district."))
    try:
        grid = register_grid(session, index, body.community_code, body.cell, body.name)
    except RegionDataError as exc:  # a 422 naming the cell
        exc.field = "cell"
        raise
    audit(
        request,
        principal,
        "regions.grid.create",
        object_type="grid",
        object_id=grid.code,
        tenant_code=district.code,
    )
    return GridOut(**vars(grid))
