"""Divisions: loading, the in-memory index, locating points and parsing addresses.

``RegionIndex`` is built once from the ``regions`` table (6,760 rows for Shanghai load in well under a
second) and answers every read: the hierarchy with counts, ``locate(lng, lat)`` over the district
polygons (Shapely STRtree) and the H3 grid, and ``parse_address`` over the division names.

Grids are H3 cells at resolution 9 (average area ≈ 0.105 km², edge ≈ 174 m: the size of an urban
management grid in the centre of Shanghai). A cell becomes a grid with a 15-digit GB/T 30428-style
code — 6 district + 3 township + 3 community + 3 serial — when it is bound to a community
(``register_grid``, or ``register_grids`` for many at once). The shipped data has no community outlines,
so the grid layout comes from geocoded addresses: each cell goes to the community most of its
addresses belong to (see ``registers.service.derive_grids``). ``locate_many`` places arrays of points
in one vectorised pass.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import h3
import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session, SessionTransaction

from shgov.core.errors import InvalidError
from shgov.core.i18n import N_
from shgov.core.regions.geo import CRS, CoordinateError, to_wgs84
from shgov.core.regions.models import CODE_LENGTHS, LEVELS, Grid, Region

GRID_RESOLUTION = 9
# Points this close (in degrees, ≈ 1 km) outside the simplified outline still count, as approximate.
NEAR_DEGREES = 0.01


class RegionDataError(InvalidError, ValueError):
    """Division data to load is inconsistent; the message names the row."""


@dataclass(frozen=True)
class RegionInfo:
    """A division as the index knows it."""

    code: str
    name: str
    level: str
    parent_code: str | None


@dataclass(frozen=True)
class GridInfo:
    """A registered grid."""

    code: str
    cell: str
    community_code: str
    name: str


@dataclass(frozen=True)
class Location:
    """Where a point is: its district, H3 cell and — when the cell is registered — grid and community."""

    lng: float
    lat: float
    district: RegionInfo
    cell: str
    approximate: bool
    grid: GridInfo | None = None
    township: RegionInfo | None = None
    community: RegionInfo | None = None


@dataclass(frozen=True)
class ParsedAddress:
    """The divisions an address names, most specific last, and the text after them."""

    text: str
    district: RegionInfo | None = None
    township: RegionInfo | None = None
    community: RegionInfo | None = None
    remainder: str = ""
    ambiguous: tuple[str, ...] = ()

    @property
    def most_specific(self) -> RegionInfo | None:
        """The community, else the township, else the district named."""
        return self.community or self.township or self.district


class OutsideCityError(CoordinateError):
    """The point is not in any district of the city."""


@dataclass
class RegionIndex:
    """Every division and grid in memory, with the district polygons indexed."""

    regions: dict[str, RegionInfo]
    boundaries: dict[str, dict[str, Any]]
    grids_by_cell: dict[str, GridInfo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.children: dict[str | None, list[str]] = {}
        for info in sorted(self.regions.values(), key=lambda r: r.code):
            self.children.setdefault(info.parent_code, []).append(info.code)
        self.city = next((r for r in self.regions.values() if r.level == "city"), None)
        self._district_codes = sorted(self.boundaries)
        self._shapes: list[BaseGeometry] = [shape(self.boundaries[c]) for c in self._district_codes]
        self._tree = STRtree(self._shapes) if self._shapes else None
        self._position = {code: i for i, code in enumerate(self._district_codes)}
        for outline in self._shapes:
            shapely.prepare(outline)
        self._names = _NameTable(self)

    @classmethod
    def from_session(cls, session: Session) -> RegionIndex:
        """Build the index from the database."""
        regions: dict[str, RegionInfo] = {}
        boundaries: dict[str, dict[str, Any]] = {}
        for row in session.scalars(select(Region)):
            regions[row.code] = RegionInfo(row.code, row.name, row.level, row.parent_code)
            if row.boundary:
                boundaries[row.code] = row.boundary
        grids = {g.cell: GridInfo(g.code, g.cell, g.community_code, g.name) for g in session.scalars(select(Grid))}
        return cls(regions, boundaries, grids)

    # -- hierarchy ---------------------------------------------------------------------------------
    def get(self, code: str) -> RegionInfo | None:
        """The division with ``code``."""
        return self.regions.get(code)

    def children_of(self, code: str | None) -> list[RegionInfo]:
        """Direct children, by code."""
        return [self.regions[c] for c in self.children.get(code, [])]

    def ancestors(self, code: str) -> list[RegionInfo]:
        """The chain from the city down to (not including) ``code``."""
        chain: list[RegionInfo] = []
        info = self.regions.get(code)
        while info is not None and info.parent_code is not None:
            info = self.regions.get(info.parent_code)
            if info is not None:
                chain.append(info)
        return list(reversed(chain))

    def descendant_counts(self, code: str) -> dict[str, int]:
        """How many divisions of each lower level lie under ``code``."""
        counts: Counter[str] = Counter()
        stack = list(self.children.get(code, []))
        while stack:
            child = stack.pop()
            counts[self.regions[child].level] += 1
            stack.extend(self.children.get(child, []))
        return {level: counts[level] for level in LEVELS if counts[level]}

    def level_counts(self) -> dict[str, int]:
        """How many divisions of each level there are."""
        counts = Counter(r.level for r in self.regions.values())
        return {level: counts[level] for level in LEVELS}

    def is_within(self, code: str, ancestor: str) -> bool:
        """True when ``code`` is ``ancestor`` or lies under it."""
        if code == ancestor:
            return True
        return any(a.code == ancestor for a in self.ancestors(code))

    # -- points ------------------------------------------------------------------------------------
    def locate(self, lng: float, lat: float, crs: CRS = CRS.WGS84) -> Location:
        """The district, H3 cell and registered grid of a point; ``OutsideCityError`` when not in the city."""
        lng, lat = to_wgs84(lng, lat, crs)
        found = self._district_at(lng, lat)
        if found is None:
            swapped = -90 <= lng <= 90 and self._district_at(lat, lng) is not None
            if self.city is None:
                raise OutsideCityError(N_("({lng}, {lat}) is outside the city"), field="point", lng=lng, lat=lat)
            if swapped:
                raise OutsideCityError(
                    N_("({lng}, {lat}) is outside {city}; latitude and longitude look swapped"),
                    field="point",
                    lng=lng,
                    lat=lat,
                    city=self.city.name,
                )
            raise OutsideCityError(
                N_("({lng}, {lat}) is outside {city}"), field="point", lng=lng, lat=lat, city=self.city.name
            )
        district_code, approximate = found
        cell = h3.latlng_to_cell(lat, lng, GRID_RESOLUTION)
        grid = self.grids_by_cell.get(cell)
        community = self.regions.get(grid.community_code) if grid else None
        township = self.regions.get(community.parent_code) if community and community.parent_code else None
        return Location(lng, lat, self.regions[district_code], cell, approximate, grid, township, community)

    def _district_at(self, lng: float, lat: float) -> tuple[str, bool] | None:
        if self._tree is None:
            return None
        point = Point(lng, lat)
        hits = self._tree.query(point, predicate="intersects")
        if len(hits):
            return self._district_codes[int(min(hits))], False
        near = self._tree.query_nearest(point, max_distance=NEAR_DEGREES)
        if len(near):
            return self._district_codes[int(near[0])], True
        return None

    def districts_at(self, lng: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The district code of each WGS-84 point ('' outside the city) and whether it is approximate."""
        n = len(lng)
        codes = np.full(n, "", dtype=object)
        approximate = np.zeros(n, dtype=bool)
        if self._tree is None or n == 0:
            return codes, approximate
        lng, lat = np.asarray(lng, float), np.asarray(lat, float)
        # Each outline tests only the points in its bounding box that no earlier outline took (where outlines
        # overlap the lowest district index wins, as in ``locate``): coordinate tests against the prepared
        # outlines, without building a geometry per point — a million points in a tenth of a second.
        todo = np.ones(n, dtype=bool)
        for position, outline in enumerate(self._shapes):
            west, south, east, north = outline.bounds
            candidates = np.flatnonzero(todo & (lng >= west) & (lng <= east) & (lat >= south) & (lat <= north))
            hit = candidates[shapely.contains_xy(outline, lng[candidates], lat[candidates])]
            codes[hit] = self._district_codes[position]
            todo[hit] = False
        missing = np.flatnonzero(todo)
        if len(missing):
            district_codes = np.array(self._district_codes, dtype=object)
            points = shapely.points(lng[missing], lat[missing])
            near = self._tree.query_nearest(points, max_distance=NEAR_DEGREES, all_matches=False)
            codes[missing[near[0]]] = district_codes[near[1]]
            approximate[missing[near[0]]] = True
        return codes, approximate

    def within(self, district: np.ndarray, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Whether each WGS-84 point lies inside the outline of the district given for it (strictly: no
        ~1 km allowance) — faster than ``districts_at`` when the district to check is known."""
        inside = np.zeros(len(district), dtype=bool)
        for code in np.unique(district):
            position = self._position.get(str(code))
            if position is None:
                continue
            rows = np.flatnonzero(district == code)
            inside[rows] = shapely.contains_xy(self._shapes[position], lng[rows], lat[rows])
        return inside

    def random_points(self, district: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points drawn uniformly inside a district's outline (synthetic devices, demo reports)."""
        outline = self._shapes[self._position[district]]
        west, south, east, north = outline.bounds
        lng, lat = np.empty(0), np.empty(0)
        while len(lng) < n:
            x, y = rng.uniform(west, east, 2 * n + 16), rng.uniform(south, north, 2 * n + 16)
            keep = shapely.contains_xy(outline, x, y)
            lng, lat = np.concatenate([lng, x[keep]]), np.concatenate([lat, y[keep]])
        return lng[:n], lat[:n]

    def locate_many(self, lng: np.ndarray, lat: np.ndarray) -> dict[str, np.ndarray]:
        """``locate`` for arrays of WGS-84 points: district ('' outside), approximate, cell, grid."""
        district, approximate = self.districts_at(lng, lat)
        cells = np.array(
            [h3.latlng_to_cell(y, x, GRID_RESOLUTION) if d else "" for x, y, d in zip(lng, lat, district, strict=True)],
            dtype=object,
        )
        grids = [self.grids_by_cell.get(c) for c in cells]
        return {
            "district_code": district,
            "approximate": approximate,
            "cell": cells,
            "grid_code": np.array([g.code if g else None for g in grids], dtype=object),
        }

    def cell_of(self, lng: float, lat: float) -> str:
        """The H3 cell (grid resolution) of a WGS-84 point."""
        return str(h3.latlng_to_cell(lat, lng, GRID_RESOLUTION))

    # -- addresses ---------------------------------------------------------------------------------
    def parse_address(self, text: str) -> ParsedAddress:
        """The district, township and community an address names (each only where the text names it)."""
        return self._names.parse(text)


_COMMUNITY_SUFFIXES = (
    ("居委会", ("居委会", "居民委员会", "社区居委会", "社区")),
    ("村委会", ("村委会", "村民委员会", "村")),
)
_DISTRICT_SUFFIXES = ("新区", "区")
_TOWNSHIP_SUFFIXES = ("街道办事处", "街道")


class _NameTable:
    """Name variants of every division, for matching inside free text."""

    def __init__(self, index: RegionIndex) -> None:
        self.index = index
        self.district: dict[str, str] = {}
        self.township: dict[str, list[str]] = {}
        self.community: dict[str, list[str]] = {}
        self.stems: dict[str, dict[str, list[str]]] = {}
        for info in index.regions.values():
            if info.level == "district":
                for variant in _district_variants(info.name):
                    self.district[variant] = info.code
            elif info.level == "township":
                for variant in _township_variants(info.name):
                    self.township.setdefault(variant, []).append(info.code)
            elif info.level == "community" and "虚拟" not in info.name:
                for variant in _community_variants(info.name):
                    self.community.setdefault(variant, []).append(info.code)
                # Right after its township a community is often written by its bare stem (…镇东园12号…).
                stem = _community_stem(info.name)
                if len(stem) >= 2 and info.parent_code:
                    self.stems.setdefault(info.parent_code, {}).setdefault(stem, []).append(info.code)
        self._district_re = _alternation(self.district)
        self._township_re = _alternation(self.township)
        self._community_re = _alternation(self.community)

    def parse(self, text: str) -> ParsedAddress:
        clean = re.sub(r"\s+", "", text)
        index = self.index
        pos = 0
        city = index.city
        for prefix in ("中华人民共和国", "中国"):
            if clean.startswith(prefix):
                pos = len(prefix)
        if city is not None:
            for variant in (city.name, city.name.removesuffix("市")):
                if clean.startswith(variant, pos):
                    pos += len(variant)
                    break

        district: RegionInfo | None = None
        match = self._district_re.search(clean, pos) if self._district_re else None
        if match:
            district = index.regions[self.district[match.group(0)]]
            pos = match.end()

        township: RegionInfo | None = None
        ambiguous: tuple[str, ...] = ()
        for found in self._township_re.finditer(clean, pos) if self._township_re else ():
            codes = self.township[found.group(0)]
            if district is not None:
                codes = [c for c in codes if index.regions[c].parent_code == district.code]
            if len(codes) == 1:
                township = index.regions[codes[0]]
                pos = found.end()
                break
            if len(codes) > 1:
                ambiguous = tuple(codes)
                break
        if township is not None and district is None and township.parent_code:
            district = index.regions.get(township.parent_code)

        community: RegionInfo | None = None
        scope = township or district
        for found in self._community_re.finditer(clean, pos) if self._community_re and scope else ():
            assert scope is not None  # noqa: S101 - guarded by the loop condition
            codes = [c for c in self.community[found.group(0)] if index.is_within(c, scope.code)]
            if len(codes) == 1:
                community = index.regions[codes[0]]
                pos = found.end()
                if township is None and community.parent_code:
                    township = index.regions.get(community.parent_code)
                break
            if len(codes) > 1:
                ambiguous = tuple(codes)
                break
        if community is None and township is not None and not ambiguous:
            stems = self.stems.get(township.code, {})
            # Only when a house number follows: "威海路500号" names a road, not the 威海 community.
            bare = (s for s in stems if clean.startswith(s, pos) and clean[pos + len(s) : pos + len(s) + 1].isdigit())
            for stem in sorted(bare, key=len, reverse=True)[:1]:
                if len(stems[stem]) == 1:
                    community = index.regions[stems[stem][0]]
                    pos += len(stem)
        return ParsedAddress(text, district, township, community, clean[pos:], ambiguous)


def _alternation(names: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted(set(names), key=len, reverse=True)
    return re.compile("|".join(re.escape(n) for n in ordered)) if ordered else None


def _district_variants(name: str) -> set[str]:
    variants = {name}
    for suffix in _DISTRICT_SUFFIXES:
        stem = name.removesuffix(suffix)
        if stem != name and len(stem) >= 2:
            variants.add(stem + "区")
    return variants


def _township_variants(name: str) -> set[str]:
    variants = {name}
    for suffix in _TOWNSHIP_SUFFIXES:
        stem = name.removesuffix(suffix)
        if stem != name and len(stem) >= 2:
            variants |= {stem + "街道", stem + "街道办事处"}
    return variants


def _community_stem(name: str) -> str:
    for suffix in ("社区居委会", "居委会", "村委会", "社区"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _community_variants(name: str) -> set[str]:
    variants = {name}
    for suffix, alternatives in _COMMUNITY_SUFFIXES:
        stem = name.removesuffix(suffix)
        if stem != name and len(stem) >= 2:
            variants |= {stem + alt for alt in alternatives}
            if suffix == "村委会" and stem.endswith("村"):
                variants.add(stem)
    return variants


# -- loading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DivisionRow:
    """One row of a divisions file."""

    code: str
    name: str
    level: str
    parent_code: str | None


def read_divisions(text: str) -> list[DivisionRow]:
    """Parse and check a divisions CSV (``code,name,level,parent_code``); errors name the line."""
    rows: list[DivisionRow] = []
    seen: dict[str, DivisionRow] = {}
    reader = csv.DictReader(io.StringIO(text))
    missing = {"code", "name", "level", "parent_code"} - set(reader.fieldnames or [])
    if missing:
        raise RegionDataError(N_("header lacks {columns}"), columns=", ".join(sorted(missing)))
    for line, raw in enumerate(reader, start=2):
        code, name = (raw["code"] or "").strip(), (raw["name"] or "").strip()
        level, parent = (raw["level"] or "").strip(), (raw["parent_code"] or "").strip() or None
        if level not in LEVELS:
            raise RegionDataError(
                N_("line {line}: level {level!r} is not one of {levels}"),
                line=line,
                level=level,
                levels=", ".join(LEVELS),
            )
        if not code.isdigit() or len(code) != CODE_LENGTHS[level]:
            raise RegionDataError(
                N_("line {line}: a {level} code has {digits} digits, got {code!r}"),
                line=line,
                level=level,
                digits=CODE_LENGTHS[level],
                code=code,
            )
        if not name:
            raise RegionDataError(N_("line {line}: name is empty"), line=line)
        if code in seen:
            raise RegionDataError(N_("line {line}: code {code} appears twice"), line=line, code=code)
        if (level == "city") != (parent is None):
            raise RegionDataError(N_("line {line}: only the city has no parent"), line=line)
        row = DivisionRow(code, name, level, parent)
        seen[code] = row
        rows.append(row)
    for row in rows:
        if row.parent_code is None:
            continue
        parent_row = seen.get(row.parent_code)
        if parent_row is None:
            raise RegionDataError(
                N_("{code}: parent {parent} is not in the file"), code=row.code, parent=row.parent_code
            )
        if LEVELS.index(parent_row.level) != LEVELS.index(row.level) - 1:
            raise RegionDataError(
                N_("{code}: a {level} cannot sit under a {parent_level}"),
                code=row.code,
                level=row.level,
                parent_level=parent_row.level,
            )
    if sum(1 for r in rows if r.level == "city") != 1:
        raise RegionDataError(N_("the file must have exactly one city"))
    return rows


def read_boundaries(text: str) -> dict[str, dict[str, Any]]:
    """District geometries from a GeoJSON FeatureCollection whose features carry ``properties.code``."""
    data = json.loads(text)
    if data.get("type") != "FeatureCollection":
        raise RegionDataError(N_("boundaries must be a GeoJSON FeatureCollection"))
    result: dict[str, dict[str, Any]] = {}
    for number, feature in enumerate(data.get("features", []), start=1):
        code = str((feature.get("properties") or {}).get("code", ""))
        geometry = feature.get("geometry")
        if not code or not geometry:
            raise RegionDataError(N_("feature {number} lacks properties.code or a geometry"), number=number)
        if not shape(geometry).is_valid:
            raise RegionDataError(N_("feature {number} ({code}) has an invalid geometry"), number=number, code=code)
        result[code] = geometry
    return result


def load_divisions(session: Session, divisions_csv: str, boundaries_geojson: str | None = None) -> dict[str, int]:
    """Insert or update the divisions (and district outlines); returns counts per level.

    Existing rows are updated in place, never deleted, so grids and records that point at them stay valid.
    """
    rows = read_divisions(divisions_csv)
    boundaries = read_boundaries(boundaries_geojson) if boundaries_geojson else {}
    districts = {r.code for r in rows if r.level == "district"}
    unknown = set(boundaries) - districts
    if unknown:
        raise RegionDataError(
            N_("boundaries for codes that are not districts: {codes}"), codes=", ".join(sorted(unknown))
        )
    existing = {r.code: r for r in session.scalars(select(Region))}
    # Parents first, so that every foreign key holds as the rows are inserted.
    for row in sorted(rows, key=lambda r: (LEVELS.index(r.level), r.code)):
        region = existing.get(row.code)
        if region is None:
            region = Region(code=row.code)
            session.add(region)
        region.name, region.level, region.parent_code = row.name, row.level, row.parent_code
        if row.code in boundaries:
            region.boundary = boundaries[row.code]
    session.flush()
    return dict(Counter(r.level for r in rows))


def load_builtin_divisions(session: Session) -> dict[str, int]:
    """Load the shipped Shanghai divisions and district outlines."""
    data = resources.files("shgov.core.regions") / "data"
    return load_divisions(
        session,
        (data / "shanghai_divisions.csv").read_text(encoding="utf-8"),
        (data / "shanghai_districts.geojson").read_text(encoding="utf-8"),
    )


def shape_bounds(geometry: dict[str, Any]) -> tuple[float, float, float, float]:
    """The (min lng, min lat, max lng, max lat) box of a GeoJSON geometry."""
    bounds: tuple[float, float, float, float] = shape(geometry).bounds
    return bounds


def region_count(session: Session) -> int:
    """How many divisions are loaded."""
    return int(session.scalar(select(func.count()).select_from(Region)) or 0)


def register_grid(session: Session, index: RegionIndex, community_code: str, cell: str, name: str = "") -> GridInfo:
    """Bind an H3 cell to a community as a grid with the next 15-digit code of that community."""
    _check_cell(index, community_code, cell)
    if cell in index.grids_by_cell or session.scalar(select(Grid).where(Grid.cell == cell)) is not None:
        raise RegionDataError(N_("cell {cell} is already a grid"), cell=cell)
    return _add_grids(session, index, [(cell, community_code, name)])[0]


@dataclass(frozen=True)
class GridPlan:
    """What ``register_grids`` did with a list of cell → community assignments."""

    created: int
    existing: int
    refused: dict[str, str]  # cell → why it was not registered


def register_grids(session: Session, index: RegionIndex, assignments: Iterable[tuple[str, str]]) -> GridPlan:
    """Bind many H3 cells to communities at once; cells that are grids already are left as they are,
    and every refused assignment is reported with its reason (nothing is dropped silently)."""
    todo: list[tuple[str, str, str]] = []
    refused: dict[str, str] = {}
    existing = 0
    seen: set[str] = set()
    for cell, community_code in assignments:
        if cell in index.grids_by_cell:
            existing += 1
            continue
        if cell in seen:
            refused[cell] = "the cell is assigned twice"
            continue
        seen.add(cell)
        try:
            _check_cell(index, community_code, cell)
        except (RegionDataError, CoordinateError) as exc:
            refused[cell] = str(exc)
            continue
        todo.append((cell, community_code, ""))
    created = _add_grids(session, index, todo, refused)
    return GridPlan(len(created), existing, refused)


def _check_cell(index: RegionIndex, community_code: str, cell: str) -> None:
    community = index.get(community_code)
    if community is None or community.level != "community":
        raise RegionDataError(N_("{community} is not a community"), community=community_code)
    if not h3.is_valid_cell(cell) or h3.get_resolution(cell) != GRID_RESOLUTION:
        raise RegionDataError(
            N_("{cell!r} is not an H3 cell of resolution {resolution}"), cell=cell, resolution=GRID_RESOLUTION
        )
    lat, lng = h3.cell_to_latlng(cell)
    located = index.locate(lng, lat)
    if not index.is_within(community.code, located.district.code):
        raise RegionDataError(
            N_("cell {cell} lies in {district}, not in the community's district"),
            cell=cell,
            district=located.district.name,
        )


def _add_grids(
    session: Session, index: RegionIndex, todo: list[tuple[str, str, str]], refused: dict[str, str] | None = None
) -> list[GridInfo]:
    """Insert checked grids with the next serials of their communities (up to 999 per community)."""
    communities = sorted({community for _, community, _ in todo})
    last: dict[str, int] = {}
    for start in range(0, len(communities), 500):
        chunk = communities[start : start + 500]
        rows = session.execute(
            select(Grid.community_code, func.max(Grid.code))
            .where(Grid.community_code.in_(chunk))
            .group_by(Grid.community_code)
        )
        last.update({community: int(code[-3:]) for community, code in rows})
    created: list[GridInfo] = []
    for cell, community, name in todo:
        serial = last.get(community, 0) + 1
        if serial > 999:
            if refused is None:
                raise RegionDataError(N_("community {community} already has 999 grids"), community=community)
            refused[cell] = f"community {community} already has 999 grids"
            continue
        last[community] = serial
        created.append(GridInfo(f"{community}{serial:03d}", cell, community, name))
    if created:
        session.execute(
            insert(Grid),
            [{"code": g.code, "cell": g.cell, "community_code": g.community_code, "name": g.name} for g in created],
        )
        session.flush()
    for grid in created:
        index.grids_by_cell[grid.cell] = grid

    if created:
        session.info.setdefault(_PENDING_GRIDS, []).append((index, [g.cell for g in created]))
    return created


# The index is shared by the process: grids added in a transaction that rolls back must leave it again.
_PENDING_GRIDS = "regions.pending_grids"


@event.listens_for(Session, "after_commit")
def _grids_committed(session: Session) -> None:
    session.info.pop(_PENDING_GRIDS, None)


@event.listens_for(Session, "after_transaction_end")
def _grids_rolled_back(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        for index, cells in session.info.pop(_PENDING_GRIDS, []):
            for cell in cells:
                index.grids_by_cell.pop(cell, None)
