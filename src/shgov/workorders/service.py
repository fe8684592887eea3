"""Work orders (一网统管): intake from every channel, classification, locating, dispatch by ordered rules,
the handling loop with time limits and escalation, and the reporter's follow-up."""

from __future__ import annotations

import io
import itertools
import json
import random
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from math import asin, cos, radians, sin, sqrt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import h3
from shapely.geometry import Point, shape
from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from shgov.core.calendar.service import add_working_days
from shgov.core.db import utcnow
from shgov.core.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from shgov.core.events import emit
from shgov.core.files import FileStore
from shgov.core.i18n import N_
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.identity.models import User
from shgov.core.identity.permissions import SYSTEM_ACTOR, Principal, Scope, register_action
from shgov.core.identity.service import (
    add_actions_to_role,
    assign_role,
    create_user,
    find_user,
    principal_by_username,
)
from shgov.core.notify import tell
from shgov.core.orgs.service import (
    department_code,
    department_codes,
    find_department,
    is_township_office,
    list_departments,
    township_office_code,
)
from shgov.core.regions.geo import CoordinateError
from shgov.core.regions.service import GRID_RESOLUTION, RegionIndex
from shgov.core.settings import Settings
from shgov.workorders import classifier, events

from .models import Category, IncidentTask, Playbook, RoutingRule, WorkOrder, WorkOrderEvent

HANDLE = register_action("workorders.order.handle", N_("Sign, handle and reply to the work orders of the unit"))
DISPATCH = register_action("workorders.order.dispatch", N_("Triage, dispatch, supervise and close work orders"))
MANAGE = register_action("workorders.rules.manage", N_("Edit work-order categories and routing rules"))
DATA = Path(__file__).parent / "data"

OPEN = ("triage", "dispatched", "signed", "returned", "replied")
CLOSED = ("closed", "visited", "merged")
# (status, action) → new status. "escalate" is the system's; the rest are people's.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("triage", "classify"): "dispatched",
    ("dispatched", "sign"): "signed",
    ("dispatched", "return"): "returned",
    ("returned", "redispatch"): "dispatched",
    ("dispatched", "transfer"): "dispatched",
    ("signed", "transfer"): "dispatched",
    ("signed", "extend"): "signed",
    ("signed", "reply"): "replied",
    ("replied", "close"): "closed",
    ("closed", "visit"): "visited",
    ("visited", "reopen"): "dispatched",
    ("replied", "rate"): "visited",
    ("closed", "rate"): "visited",
    **{(s, "supervise"): s for s in ("dispatched", "signed", "returned", "replied")},
    **{(s, "escalate"): s for s in ("dispatched", "signed", "returned")},
    **{(s, "merge"): "merged" for s in ("triage", "dispatched", "signed", "returned")},
}
STATUS_LABELS = {
    "triage": N_("awaiting triage"),
    "dispatched": N_("dispatched"),
    "signed": N_("signed for"),
    "returned": N_("returned by the unit"),
    "replied": N_("replied"),
    "closed": N_("closed"),
    "visited": N_("followed up"),
    "merged": N_("merged"),
}
LEVELS = ("township", "district", "city")


# -- categories and limits ----------------------------------------------------------------------------


def categories(session: Session, leaves_only: bool = False) -> list[Category]:
    """The active categories, in code order."""
    query = select(Category).where(Category.active.is_(True)).order_by(Category.code)
    if leaves_only:
        query = query.where(Category.level == 3)
    return list(session.scalars(query))


def get_category(session: Session, code: str, field_name: str = "category_code") -> Category:
    """An active category by code."""
    found = session.get(Category, code)
    if found is None or not found.active:
        raise InvalidError(N_("no category {code!r}"), field=field_name, code=code)
    return found


def limits_of(session: Session, category: Category) -> dict[str, Any]:
    """The time limits of a category: its own, else its parent's, else the root's."""
    chain: list[Category] = []
    node: Category | None = category
    while node is not None:
        chain.append(node)
        node = session.get(Category, node.parent_code) if node.parent_code else None
    merged: dict[str, Any] = {}
    for node in reversed(chain):
        merged.update(node.limits or {})
    return merged


def _end_of_working_day(settings: Settings, start: datetime, days: int) -> datetime:
    zone = ZoneInfo(settings.timezone)
    local = start.astimezone(zone).date()
    due = add_working_days(local, max(days, 0))
    return datetime.combine(due, time(23, 59, 59), zone).astimezone(UTC)


def _set_deadlines(settings: Settings, order: WorkOrder, start: datetime, router: Router) -> None:
    if order.category_code is None:
        return
    limits = router.limits(order.category_code)
    order.sign_due = start + timedelta(hours=float(limits.get("sign_hours", 4)))
    order.reply_due = router.end_of_working_day(settings, start, int(limits.get("reply_days", 5)))
    order.conclude_due = router.end_of_working_day(settings, start, int(limits.get("conclude_days", 13)))


def deadline_flag(order: WorkOrder, warn_hours: float = 24, now: datetime | None = None) -> str:
    """``overdue`` past the current step's limit, ``due_soon`` within ``warn_hours`` of it, else ``""``."""
    due = {"dispatched": order.sign_due, "signed": order.reply_due, "returned": order.sign_due}.get(order.status)
    if order.status == "replied":
        due = order.conclude_due
    if due is None:
        return ""
    moment = now or utcnow()
    if moment > due:
        return "overdue"
    return "due_soon" if moment > due - timedelta(hours=warn_hours) else ""


# -- intake -------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What a channel hands in: the problem, where it is, who reports it."""

    channel: str
    description: str
    lat: float | None = None
    lng: float | None = None
    address: str = ""
    category_code: str | None = None
    urgent: bool = False
    media: list[dict[str, Any]] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    reporter_user_id: uuid.UUID | None = None
    reporter_name: str = ""
    reporter_phone: str = ""
    reporter_email: str = ""
    source_ref: str = ""


@dataclass(frozen=True)
class Channel:
    """An intake channel: whether it must locate the problem and whether its category can be trusted."""

    name: str
    label: str
    needs_location: bool
    trusted_category: bool  # a sensor or an Open311 service code names the category itself


CHANNELS: dict[str, Channel] = {}


def register_channel(channel: Channel) -> None:
    """Add an intake channel (one registry for the hotline, photos, patrols, sensors, Open311 …)."""
    CHANNELS[channel.name] = channel


for _channel in (
    Channel("hotline", N_("12345 hotline"), needs_location=False, trusted_category=False),
    Channel("photo", N_("photo report (随申拍)"), needs_location=True, trusted_category=False),
    Channel("patrol", N_("patrol"), needs_location=True, trusted_category=True),
    Channel("sensor", N_("sensor alarm"), needs_location=True, trusted_category=True),
    Channel("open311", N_("Open311 client"), needs_location=True, trusted_category=True),
):
    register_channel(_channel)


@dataclass(frozen=True)
class Place:
    """Where an order is, as the divisions know it."""

    lat: float | None
    lng: float | None
    address: str
    district_code: str
    township_code: str | None
    community_code: str | None
    grid_code: str | None
    cell: str | None


def locate(index: RegionIndex, lat: float | None, lng: float | None, address: str) -> Place:
    """The divisions of a point (preferred) or of an address; refuses a place outside the city."""
    if lat is not None and lng is not None:
        try:
            found = index.locate(lng, lat)
        except CoordinateError as exc:
            raise InvalidError(N_("The place is not in the city: {reason}"), field="lat", reason=exc) from exc
        township = found.township.code if found.township else None
        return Place(
            lat,
            lng,
            address,
            found.district.code,
            township,
            found.community.code if found.community else None,
            found.grid.code if found.grid else None,
            found.cell,
        )
    if address.strip():
        parsed = index.parse_address(address)
        if parsed.district is None:
            raise InvalidError(
                N_("The address names no district: give the district and the township, or pick the place on the map"),
                field="address_string",
            )
        return Place(
            None,
            None,
            address,
            parsed.district.code,
            parsed.township.code if parsed.township else None,
            parsed.community.code if parsed.community else None,
            None,
            None,
        )
    raise InvalidError(
        N_("Say where the problem is: pick it on the map, send a photo taken there, or give the full address"),
        field="lat",
    )


class Models:
    """The trained classifier of a data folder, loaded once and reloaded when retrained."""

    def __init__(self) -> None:
        self._loaded: dict[Path, tuple[float, classifier.Classifier | None]] = {}

    def get(self, settings: Settings) -> classifier.Classifier | None:
        """The classifier, or None before one is trained."""
        path = model_path(settings)
        stamp = path.stat().st_mtime if path.exists() else -1.0
        cached = self._loaded.get(path)
        if cached is None or cached[0] != stamp:
            cached = (stamp, classifier.load(path))
            self._loaded[path] = cached
        return cached[1]


MODELS = Models()


def model_path(settings: Settings) -> Path:
    """Where the classifier is stored."""
    return settings.data_dir / "models" / "workorders-classifier.joblib"


def suggest(settings: Settings, text: str, k: int = 3) -> list[tuple[str, float]]:
    """The most likely categories of a text with calibrated confidence ([] before a model is trained)."""
    model = MODELS.get(settings)
    return model.top(text, k) if model is not None and text.strip() else []


def _number(now: datetime) -> str:
    return f"GD{now:%Y%m%d}{secrets.token_hex(4).upper()}"


def _history(
    session: Session, order: WorkOrder, actor: Principal | None, action: str, before: str | None, note: str = ""
) -> None:
    session.add(
        WorkOrderEvent(
            order_id=order.id,
            actor_id=actor.user_id if actor else None,
            actor_name=actor.display_name if actor else SYSTEM_ACTOR,
            action=action,
            from_status=before,
            to_status=order.status,
            unit=order.lead_unit,
            note=note,
        )
    )


def _tell(session: Session, order: WorkOrder, subject: str, body: str = "") -> None:
    link = f"/my/reports/{order.id}"
    tell(session, order.reporter_user_id, f"【工单 {order.number}】{subject}", body, link, "workorders.order")


@dataclass
class Outcome:
    """What became of one report of a batch: its order, or why it was refused."""

    order: WorkOrder | None = None
    error: InvalidError | ConflictError | None = None


class Router:
    """Categories, limits, rules and departments loaded once for a unit of work (a batch dispatches fast)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.categories = {c.code: c for c in session.scalars(select(Category))}
        self.rules = rules(session)
        self.playbooks = list(session.scalars(select(Playbook).where(Playbook.active.is_(True))))
        self._limits: dict[str, dict[str, Any]] = {}
        self._departments: set[str] | None = None
        self._ends: dict[tuple[str, int], datetime] = {}

    def end_of_working_day(self, settings: Settings, start: datetime, days: int) -> datetime:
        """The end of the ``days``-th working day after ``start``'s day (cached per day)."""
        key = (start.astimezone(ZoneInfo(settings.timezone)).date().isoformat(), days)
        if key not in self._ends:
            self._ends[key] = _end_of_working_day(settings, start, days)
        return self._ends[key]

    def category(self, code: str, field_name: str = "category_code") -> Category:
        """An active category by code."""
        found = self.categories.get(code)
        if found is None or not found.active:
            raise InvalidError(N_("no category {code!r}"), field=field_name, code=code)
        return found

    def leaf(self, code: str) -> Category:
        """An active leaf category (orders are filed under leaves only)."""
        found = self.category(code)
        if found.level != 3:
            raise InvalidError(N_("{code} is not a leaf category"), field="category_code", code=found.code)
        return found

    def limits(self, code: str) -> dict[str, Any]:
        """The category's time limits (cached)."""
        if code not in self._limits:
            self._limits[code] = limits_of(self.session, self.category(code))
        return self._limits[code]

    def has_department(self, code: str) -> bool:
        """Whether the department exists (the codes are loaded once, on first use)."""
        if self._departments is None:
            self._departments = department_codes(self.session)
        return code in self._departments


def _checked(router: Router, index: RegionIndex, report: Report) -> tuple[Channel, str, Place | None, Category | None]:
    channel = CHANNELS.get(report.channel)
    if channel is None:
        raise InvalidError(N_("unknown channel {channel!r}"), field="channel", channel=report.channel)
    description = report.description.strip()
    if len(description) < 4:
        raise InvalidError(
            N_("Describe the problem (at least {min_length} characters)"), field="description", min_length=4
        )
    if len(description) > 4000:
        raise InvalidError(
            N_("The description has at most {max_length} characters"), field="description", max_length=4000
        )
    place = None
    if channel.needs_location or report.lat is not None or report.address:
        place = locate(index, report.lat, report.lng, report.address)
    category = router.leaf(report.category_code) if report.category_code else None
    return channel, description, place, category


def intake_many(
    session: Session,
    settings: Settings,
    index: RegionIndex,
    reports: list[Report],
    actor: Principal | None = None,
    check_duplicates: bool = True,
) -> list[Outcome]:
    """Take reports in as one batch: each is checked and located; those without a category are classified
    together; each is flagged against open orders nearby, dispatched by the rules (or queued for triage) and
    stored. A refused report is reported with its reason and leaves nothing behind; the others go on."""
    router = Router(session)
    outcomes = [Outcome() for _ in reports]
    accepted: list[tuple[int, Channel, str, Place | None, Category | None]] = []
    for i, report in enumerate(reports):
        try:
            accepted.append((i, *_checked(router, index, report)))
        except InvalidError as exc:
            outcomes[i].error = exc
    model = MODELS.get(settings)
    unclassified = [
        (i, f"{text} {place.address if place else ''}") for i, _c, text, place, cat in accepted if cat is None
    ]
    guesses: dict[int, tuple[str, float]] = {}
    if model is not None and unclassified:
        probabilities = model.probabilities([text for _i, text in unclassified])
        classes = model.classes
        for (i, _text), row in zip(unclassified, probabilities, strict=True):
            best = int(row.argmax())
            guesses[i] = (str(classes[best]), float(row[best]))
    now = utcnow()
    nearby = None
    if check_duplicates:
        points = [(p.lat, p.lng) for _i, _c, _t, p, _cat in accepted if p and p.lat is not None and p.lng is not None]
        nearby = NearbyOpen(session, settings, points, now) if points else None
    for i, channel, description, place, category in accepted:
        report = reports[i]
        order = WorkOrder(
            id=uuid.uuid4(),
            number=_number(now),
            channel=channel.name,
            source_ref=report.source_ref,
            description=description,
            urgent=report.urgent,
            lat=place.lat if place else None,
            lng=place.lng if place else None,
            address=(place.address if place else report.address)[:300],
            district_code=place.district_code if place else None,
            township_code=place.township_code if place else None,
            community_code=place.community_code if place else None,
            grid_code=place.grid_code if place else None,
            cell=place.cell if place else None,
            tenant_code=place.district_code if place else settings.city_code,
            status="triage",
            media=report.media,
            attributes=report.attributes,
            reporter_user_id=report.reporter_user_id,
            reporter_name=report.reporter_name[:100],
            reporter_phone=report.reporter_phone[:20],
            reporter_email=report.reporter_email[:200],
            created_at=now,
            updated_at=now,
        )
        if category is not None:
            order.category_code, order.category_confidence, order.classified_by = category.code, 1.0, "reporter"
        elif i in guesses:
            code, confidence = guesses[i]
            order.category_confidence = confidence
            if confidence >= settings.workorders.triage_confidence:
                order.category_code, order.classified_by = code, "model"
        if nearby is not None and order.lat is not None and order.lng is not None:
            repeats = nearby.find(order.lat, order.lng, description, order.category_code)
            if repeats:
                order.attributes = {**order.attributes, "likely_duplicates": [d.number for d in repeats]}
            nearby.add(order)
        session.add(order)
        outcomes[i].order = order
    with session.no_autoflush:  # nothing below reads what it writes: one flush inserts each order as dispatched
        _dispatch_new(session, settings, actor, router, accepted, outcomes)
    session.flush()
    return outcomes


def _dispatch_new(
    session: Session,
    settings: Settings,
    actor: Principal | None,
    router: Router,
    accepted: list[tuple[int, Channel, str, Place | None, Category | None]],
    outcomes: list[Outcome],
) -> None:
    for i, channel, _description, _place, _category in accepted:
        stored = outcomes[i].order
        assert stored is not None  # noqa: S101 - set in the loop above
        order = stored
        _history(session, order, actor, "accept", None, f"渠道：{channel.label}")
        if order.category_code is not None:
            order.urgent = order.urgent or router.category(order.category_code).urgent
            try:
                _dispatch(session, settings, order, actor, "classify", router, new=True)
            except ConflictError as exc:
                outcomes[i].error = exc  # no rule matches: the order waits in triage, and the caller is told
        _tell(session, order, "已受理", "我们已收到您反映的问题，将尽快处理。")
        emit(session, events.OrderReceived(order_id=order.id, channel=channel.name))


def intake(
    session: Session, settings: Settings, index: RegionIndex, report: Report, actor: Principal | None = None
) -> WorkOrder:
    """Take one report in: check it, locate it, classify it, dispatch it (or queue it for triage)."""
    outcome = intake_many(session, settings, index, [report], actor)[0]
    if outcome.order is None:
        assert outcome.error is not None  # noqa: S101 - an outcome holds an order or an error
        raise outcome.error
    return outcome.order


# -- photos ---------------------------------------------------------------------------------------------

PHOTO_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MAX_PHOTOS = 5


@dataclass(frozen=True)
class Photo:
    """A checked photo: its type, size in pixels and, when the camera recorded it, where it was taken."""

    media_type: str
    width: int
    height: int
    lat: float | None
    lng: float | None


def _degrees(value: Any, ref: Any) -> float | None:
    try:
        d, m, s = (float(part) for part in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    degrees = d + m / 60 + s / 3600
    return -degrees if str(ref).upper() in ("S", "W") else degrees


def check_photo(data: bytes, name: str, max_bytes: int) -> Photo:
    """Refuse a file that is not a JPEG, PNG or WebP picture or is too large; read its EXIF GPS position."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InvalidError(N_('The photo "{name}" is an empty file'), field="photos", name=name)
    if len(data) > max_bytes:
        raise InvalidError(
            N_('The photo "{name}" is {size:.1f} MB, over the limit of {limit:.1f} MB'),
            field="photos",
            name=name,
            size=len(data) / 1024 / 1024,
            limit=max_bytes / 1024 / 1024,
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format or ""
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            gps = image.getexif().get_ifd(0x8825) if kind == "JPEG" else {}
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidError(
            N_('The photo "{name}" cannot be opened as a picture (upload JPG, PNG or WebP photos)'),
            field="photos",
            name=name,
        ) from exc
    if not kind:
        raise InvalidError(
            N_('The photo "{name}" is of an unknown format: upload JPG, PNG or WebP photos'), field="photos", name=name
        )
    if kind not in PHOTO_TYPES:
        raise InvalidError(
            N_('The photo "{name}" is in {kind} format: upload JPG, PNG or WebP photos'),
            field="photos",
            name=name,
            kind=kind,
        )
    lat = _degrees(gps.get(2), gps.get(1)) if gps else None
    lng = _degrees(gps.get(4), gps.get(3)) if gps else None
    return Photo(PHOTO_TYPES[kind], width, height, lat, lng)


@dataclass(frozen=True)
class Upload:
    """A file as a form handed it in."""

    data: bytes
    name: str


def photo_report(
    session: Session,
    settings: Settings,
    index: RegionIndex,
    store: FileStore,
    principal: Principal,
    report: Report,
    uploads: list[Upload],
    photos_required: bool = True,
) -> WorkOrder:
    """随申拍 and patrols: check every photo, take the position from the device or else from the first photo
    with EXIF GPS, take the report in and only then store the photos (a refused report leaves nothing)."""
    if photos_required and not uploads:
        raise InvalidError(N_("Upload at least one photo of the scene"), field="photos")
    if len(uploads) > MAX_PHOTOS:
        raise InvalidError(N_("Upload at most {count} photos"), field="photos", count=MAX_PHOTOS)
    checked = [(u, check_photo(u.data, u.name or "photo", settings.max_upload_bytes)) for u in uploads]
    if report.lat is None and report.lng is None:
        located = next((p for _u, p in checked if p.lat is not None and p.lng is not None), None)
        if located is not None:
            report.lat, report.lng = located.lat, located.lng
    order = intake(session, settings, index, report, principal)
    order.media = [
        {
            "digest": store.put(u.data, u.name, max_bytes=settings.max_upload_bytes, field="photos").digest,
            "media_type": photo.media_type,
            "name": u.name,
        }
        for u, photo in checked
    ]
    session.flush()
    return order


# -- duplicates -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Duplicate:
    """An open order that a new report probably repeats."""

    order_id: uuid.UUID
    number: str
    metres: float
    similarity: float


def _bigrams(text_: str) -> set[str]:
    chars = [c for c in text_ if not c.isspace() and c not in "，。、！？,.!?；;：:（）()"]
    return {a + b for a, b in itertools.pairwise(chars)}


def _jaccard(left: set[str], right: set[str]) -> float:
    return len(left & right) / len(left | right) if left and right else 0.0


def similarity(a: str, b: str) -> float:
    """Character-bigram Jaccard similarity of two texts (0–1), robust to Chinese without segmentation."""
    return _jaccard(_bigrams(a), _bigrams(b))


def metres_between(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres."""
    dlat, dlng = radians(lat2 - lat1), radians(lng2 - lng1)
    h = sin(dlat / 2) ** 2 + cos(radians(lat1)) * cos(radians(lat2)) * sin(dlng / 2) ** 2
    return 2 * 6_371_000 * asin(sqrt(h))


@dataclass
class _Candidate:
    order_id: uuid.UUID
    number: str
    lat: float
    lng: float
    category_code: str | None
    description: str
    _grams: set[str] | None = None

    @property
    def grams(self) -> set[str]:
        """The description's bigrams, computed when first compared (most candidates are too far away)."""
        if self._grams is None:
            self._grams = _bigrams(self.description)
        return self._grams


class NearbyOpen:
    """The open, recent orders around a set of points, loaded with one query, to check a whole batch for
    duplicates (orders of the batch itself are added as they are made)."""

    def __init__(
        self,
        session: Session,
        settings: Settings,
        points: list[tuple[float, float]],
        now: datetime | None = None,
    ) -> None:
        self.config = settings.workorders
        edge = h3.average_hexagon_edge_length(GRID_RESOLUTION, "m") * 1.5
        self.rings = max(1, int(self.config.duplicate_metres // edge) + 1)
        self.by_cell: dict[str, list[_Candidate]] = {}
        cells = sorted({c for lat, lng in points for c in h3.grid_disk(self.cell_of(lat, lng), self.rings)})
        since = (now or utcnow()) - timedelta(hours=self.config.duplicate_hours)
        columns = (
            WorkOrder.id,
            WorkOrder.number,
            WorkOrder.lat,
            WorkOrder.lng,
            WorkOrder.category_code,
            WorkOrder.description,
            WorkOrder.cell,
        )
        postgres = session.get_bind().dialect.name == "postgresql"
        # PostgreSQL takes the cells as one array (a long IN list costs more to send and parse than to
        # run); SQLite allows a limited number of bound parameters per statement
        step = max(1, len(cells)) if postgres else 900
        for start in range(0, len(cells), step):
            chunk = cells[start : start + step]
            in_cells = (
                WorkOrder.cell == any_(bindparam("cells", chunk, type_=ARRAY(String)))
                if postgres
                else WorkOrder.cell.in_(chunk)
            )
            query = select(*columns).where(in_cells, WorkOrder.status.in_(OPEN), WorkOrder.created_at >= since)
            with session.no_autoflush:
                for row in session.execute(query):
                    if row.lat is not None and row.lng is not None and row.cell:
                        candidate = _Candidate(row.id, row.number, row.lat, row.lng, row.category_code, row.description)
                        self.by_cell.setdefault(row.cell, []).append(candidate)

    @staticmethod
    def cell_of(lat: float, lng: float) -> str:
        """The grid cell of a point."""
        return str(h3.latlng_to_cell(lat, lng, GRID_RESOLUTION))

    def add(self, order: WorkOrder) -> None:
        """Count a new order of the batch as a candidate for the reports after it."""
        if order.lat is None or order.lng is None or order.cell is None:
            return
        candidate = _Candidate(order.id, order.number, order.lat, order.lng, order.category_code, order.description)
        self.by_cell.setdefault(order.cell, []).append(candidate)

    def find(
        self, lat: float, lng: float, text_: str, category_code: str | None = None, exclude: uuid.UUID | None = None
    ) -> list[Duplicate]:
        """Candidates within ``duplicate_metres`` whose text is similar enough (the same category counts
        towards it), most similar first."""
        grams = _bigrams(text_)
        found = []
        for cell in h3.grid_disk(self.cell_of(lat, lng), self.rings):
            for other in self.by_cell.get(cell, ()):
                if other.order_id == exclude:
                    continue
                metres = metres_between(lat, lng, other.lat, other.lng)
                if metres > self.config.duplicate_metres:
                    continue
                bonus = 0.15 if category_code and category_code == other.category_code else 0
                score = _jaccard(grams, other.grams) + bonus
                if score >= self.config.duplicate_similarity:
                    found.append(Duplicate(other.order_id, other.number, round(metres, 1), round(min(score, 1.0), 3)))
        return sorted(found, key=lambda d: (-d.similarity, d.metres))[:10]


def likely_duplicates(
    session: Session,
    settings: Settings,
    lat: float,
    lng: float,
    text_: str,
    category_code: str | None = None,
    exclude: uuid.UUID | None = None,
    now: datetime | None = None,
) -> list[Duplicate]:
    """Open orders within ``duplicate_metres`` and ``duplicate_hours`` whose text is similar (the same
    category counts towards it), most similar first. Candidates come from the H3 cells around the point."""
    return NearbyOpen(session, settings, [(lat, lng)], now).find(lat, lng, text_, category_code, exclude)


@dataclass(frozen=True)
class HotSpot:
    """Many orders of one category in one place within the window."""

    cell: str
    category_code: str
    count: int
    lat: float
    lng: float
    district_code: str | None
    numbers: list[str]


HOT_SPOT_RESOLUTION = 8  # H3 cells of about 0.7 km²


def hot_spots(
    session: Session,
    since: datetime,
    min_count: int = 3,
    district_code: str | None = None,
    resolution: int = HOT_SPOT_RESOLUTION,
) -> list[HotSpot]:
    """Clusters of orders by place (an H3 cell a level coarser than the grid) × category since ``since``,
    largest first; merged orders count once, in the order they were merged into."""
    query = select(WorkOrder).where(
        WorkOrder.created_at >= since, WorkOrder.cell.is_not(None), WorkOrder.status != "merged"
    )
    if district_code:
        query = query.where(WorkOrder.district_code == district_code)
    groups: dict[tuple[str, str], list[WorkOrder]] = {}
    for order in session.scalars(query):
        if order.category_code is None or order.lat is None or order.lng is None:
            continue
        cell = h3.latlng_to_cell(order.lat, order.lng, resolution)
        groups.setdefault((cell, order.category_code), []).append(order)
    spots = []
    for (cell, category), orders in groups.items():
        if len(orders) < min_count:
            continue
        lat, lng = h3.cell_to_latlng(cell)
        districts = [o.district_code for o in orders if o.district_code]
        spots.append(
            HotSpot(
                cell,
                category,
                len(orders),
                lat,
                lng,
                max(set(districts), key=districts.count) if districts else None,
                [o.number for o in orders][:50],
            )
        )
    return sorted(spots, key=lambda h: (-h.count, h.cell))


def near_duplicate_groups(records: list[tuple[str, datetime, str]], hours: float, threshold: float) -> list[list[str]]:
    """Groups of records (id, time, text) whose texts are at least ``threshold`` similar and which arrived
    within ``hours`` of one another — for evaluating the duplicate rule on message history without places."""
    ordered = sorted(records, key=lambda r: r[1])
    grams = [_bigrams(text_) for _id, _at, text_ in ordered]
    parent = list(range(len(ordered)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    window = timedelta(hours=hours)
    for i in range(len(ordered)):
        for j in range(i + 1, len(ordered)):
            if ordered[j][1] - ordered[i][1] > window:
                break
            if _jaccard(grams[i], grams[j]) >= threshold:
                parent[root(j)] = root(i)
    groups: dict[int, list[str]] = {}
    for i, record in enumerate(ordered):
        groups.setdefault(root(i), []).append(record[0])
    return sorted((g for g in groups.values() if len(g) > 1), key=len, reverse=True)


# -- dispatch -----------------------------------------------------------------------------------------


def rules(session: Session) -> list[RoutingRule]:
    """The active routing rules in the order they are tried."""
    return list(session.scalars(select(RoutingRule).where(RoutingRule.active.is_(True)).order_by(RoutingRule.position)))


def matching_rule(ordered: list[RoutingRule], order: WorkOrder) -> RoutingRule | None:
    """The first of the ``ordered`` rules whose category, area and keywords all match the order."""
    areas = [c for c in (order.district_code, order.township_code, order.community_code) if c]
    for rule in ordered:
        if rule.category_prefix and not (order.category_code or "").startswith(rule.category_prefix):
            continue
        if rule.area_prefix and not any(a.startswith(rule.area_prefix) for a in areas):
            continue
        if rule.keywords and not any(k in order.description for k in rule.keywords):
            continue
        return rule
    return None


def unit_for(settings: Settings, order: WorkOrder, level: str, key: str, router: Router) -> str:
    """The unit that handles ``key`` at ``level`` where the order is (a district without the department
    falls back to the city's; a township unit without a known township to the district's ops centre)."""
    if (level == "township" or key == "street") and order.district_code:
        if order.township_code:
            office = township_office_code(order.district_code, order.township_code)
            if router.has_department(office):
                return office
        level, key = "district", "cy" if key == "street" else key
    if level == "district" and order.district_code:
        code = department_code(order.district_code, key)
        if router.has_department(code):
            return code
    return department_code(settings.city_code, key)


def unit_tenant(unit: str) -> str:
    """The tenant a unit belongs to (a township's office belongs to its district)."""
    return unit.split(".", 1)[0]


def unit_level(unit: str, settings: Settings) -> str:
    """Whether a unit works at city, district or township level."""
    if unit_tenant(unit) == settings.city_code:
        return "city"
    return "township" if is_township_office(unit) else "district"


def _dispatch(
    session: Session,
    settings: Settings,
    order: WorkOrder,
    actor: Principal | None,
    action: str,
    router: Router,
    new: bool = False,
) -> None:
    rule = matching_rule(router.rules, order)
    if rule is None:
        raise ConflictError(N_("no routing rule matches this order; add a catch-all rule"), field="category_code")
    before = order.status
    order.lead_unit = unit_for(settings, order, rule.lead_level, rule.lead_department_key, router)
    order.assisting_units = [unit_for(settings, order, rule.lead_level, k, router) for k in rule.assisting]
    order.rule_id, order.rule_name = rule.id, rule.name
    order.status = "dispatched"
    _set_deadlines(settings, order, utcnow(), router)
    _history(session, order, actor, action, before, f"派单规则：{rule.name}")
    _open_playbook(session, settings, order, actor, router, new)
    _tell(session, order, "已派单", "您反映的问题已交由承办单位处理。")


# -- playbooks (高效处置一件事) ---------------------------------------------------------------------------


def playbook_for(playbooks: list[Playbook], category_code: str | None) -> Playbook | None:
    """The active playbook whose category prefix is the longest match for ``category_code``."""
    if not category_code:
        return None
    found = [p for p in playbooks if p.active and category_code.startswith(p.category_prefix)]
    return max(found, key=lambda p: len(p.category_prefix)) if found else None


def _open_playbook(
    session: Session, settings: Settings, order: WorkOrder, actor: Principal | None, router: Router, new: bool
) -> None:
    playbook = playbook_for(router.playbooks, order.category_code)
    if playbook is None:
        return
    if not new and session.scalar(select(IncidentTask.id).where(IncidentTask.order_id == order.id)):
        return  # a re-dispatched incident keeps its tasks
    now = utcnow()
    units = []
    for task in playbook.tasks:
        unit = unit_for(settings, order, task.get("level", "district"), task["department_key"], router)
        units.append(unit)
        session.add(
            IncidentTask(
                order_id=order.id,
                key=task["key"],
                name=task["name"],
                unit=unit,
                due_at=now + timedelta(hours=float(task.get("hours", 4))),
            )
        )
    order.assisting_units = sorted({*order.assisting_units, *units} - {order.lead_unit or ""})
    order.attributes = {**order.attributes, "playbook": playbook.code}
    _history(
        session, order, actor, "supervise", order.status, f"启动高效处置：{playbook.name}（{len(units)} 个单位并联）"
    )


def incident_tasks(session: Session, order_id: uuid.UUID) -> list[IncidentTask]:
    """The parallel tasks of an incident, in the playbook's order."""
    return list(
        session.scalars(select(IncidentTask).where(IncidentTask.order_id == order_id).order_by(IncidentTask.id))
    )


def complete_task(
    session: Session, settings: Settings, order: WorkOrder, key: str, actor: Principal, note: str
) -> IncidentTask:
    """A unit reports its part of an incident done; when every part is done the incident is replied."""
    session.refresh(order, with_for_update=True)
    task = session.scalar(select(IncidentTask).where(IncidentTask.order_id == order.id, IncidentTask.key == key))
    if task is None:
        raise NotFoundError(N_("no task {key!r} in this incident"), field="key", key=key)
    if not actor.allows(HANDLE, unit_tenant(task.unit), task.unit):
        raise ForbiddenError(N_("this task belongs to another unit"), field="key")
    if task.status == "done":
        raise ConflictError(N_("{task} is already done"), field="key", task=task.name)
    if order.status not in ("dispatched", "signed"):
        raise ConflictError(
            N_("an incident that is {status} takes no more reports"), field="order_id", status=order.status
        )
    if len(note.strip()) < 2:
        raise InvalidError(N_("Say how it was handled"), field="note")
    task.status, task.done_at, task.done_by, task.note = "done", utcnow(), actor.display_name, note.strip()
    session.flush()
    _history(session, order, actor, "supervise", order.status, f"{task.name}：{task.note}")
    tasks = incident_tasks(session, order.id)
    if all(t.status == "done" for t in tasks):
        before = order.status
        order.reply = "；".join(f"{t.name}：{t.note}" for t in tasks)
        order.replied_at = utcnow()
        order.status = "replied"
        _history(session, order, None, "reply", before, "各单位处置完毕")
        _tell(session, order, "已答复", order.reply)
    return task


# -- the handling loop ----------------------------------------------------------------------------------


def get_order(session: Session, order_id: uuid.UUID) -> WorkOrder:
    """An order by id, for the platform's own work (events, timers); 404 when there is none. A caller's
    request loads its order through ``find_order`` and the access rule (``workorders.access``)."""
    order = find_order(session, order_id)
    if order is None:
        raise NotFoundError(N_("no such work order"), field="order_id")
    return order


def find_order(session: Session, order_id: uuid.UUID) -> WorkOrder | None:
    """An order by id, or None."""
    return session.get(WorkOrder, order_id)


def is_unit_member(principal: Principal, order: WorkOrder, action: str = HANDLE) -> bool:
    """Whether the principal acts for the order's lead unit (or an assisting unit)."""
    for unit in [order.lead_unit, *order.assisting_units]:
        if unit is None:
            continue
        if principal.allows(action, unit_tenant(unit), unit):
            return True
    return False


def may_see(principal: Principal, order: WorkOrder) -> bool:
    """The reporter, the operations centre of the order's district (or the city), and its units."""
    if order.reporter_user_id is not None and order.reporter_user_id == principal.user_id:
        return True
    if principal.allows(DISPATCH, order.tenant_code, None):
        return True
    return is_unit_member(principal, order)


@dataclass(frozen=True)
class Step:
    """A person's step on an order."""

    action: str
    note: str = ""
    category_code: str | None = None  # classify, redispatch
    unit: str | None = None  # transfer
    days: int = 0  # extend
    satisfaction: int | None = None  # visit
    target: uuid.UUID | None = None  # merge


UNIT_ACTIONS = ("sign", "return", "extend", "reply")
CENTRE_ACTIONS = ("classify", "redispatch", "transfer", "supervise", "close", "visit", "reopen", "merge")
REPORTER_ACTIONS = ("rate", "reopen")  # the citizen rates the answer and, unsatisfied, may ask once to reopen


def is_reporter(principal: Principal, order: WorkOrder) -> bool:
    """Whether the principal reported the order (signed in when reporting)."""
    return order.reporter_user_id is not None and order.reporter_user_id == principal.user_id


def actions_for(principal: Principal, order: WorkOrder, settings: Settings) -> list[str]:
    """The steps the principal may take on the order now (what a page offers)."""
    allowed = []
    for action in (*UNIT_ACTIONS, *CENTRE_ACTIONS, "rate"):
        if (order.status, action) not in TRANSITIONS or action in allowed:
            continue
        if action in UNIT_ACTIONS:
            ok = is_unit_member(principal, order)
        elif action == "rate":
            ok = is_reporter(principal, order)
        else:
            ok = principal.allows(DISPATCH, order.tenant_code, None) or (
                action == "reopen" and is_reporter(principal, order)
            )
        if ok and not (action == "reopen" and (order.reopened >= 1 or (order.satisfaction or 5) > 2)):
            allowed.append(action)
    return allowed


def act(session: Session, settings: Settings, order: WorkOrder, actor: Principal, step: Step) -> WorkOrder:
    """Apply a step: the unit signs, returns, asks for more time, replies; the centre classifies,
    re-dispatches, transfers, supervises, closes, records the follow-up, reopens or merges."""
    session.refresh(order, with_for_update=True)
    if step.action in UNIT_ACTIONS:
        if not is_unit_member(actor, order):
            raise ForbiddenError(N_("this order belongs to another unit"), field="order_id")
    elif step.action in REPORTER_ACTIONS and is_reporter(actor, order):
        pass
    elif step.action == "rate":
        raise ForbiddenError(N_("only the reporter rates the answer"), field="action")
    elif step.action in CENTRE_ACTIONS:
        if not actor.allows(DISPATCH, order.tenant_code, None):
            raise ForbiddenError(N_("only the operations centre does this"), field="action")
    else:
        raise InvalidError(N_("unknown action {action!r}"), field="action", action=step.action)
    key = (order.status, step.action)
    if key not in TRANSITIONS:
        raise ConflictError(
            N_("an order that is {status} does not allow {action!r}"),
            field="action",
            status=order.status,
            action=step.action,
        )
    before = order.status
    handler = _HANDLERS.get(step.action)
    if handler is not None:
        handler(session, settings, order, actor, step)
    if step.action not in ("classify", "redispatch", "transfer", "reopen"):  # those record their dispatch
        order.status = TRANSITIONS[key]
        _history(session, order, actor, step.action, before, step.note.strip())
    session.flush()
    followup = step.action in ("visit", "rate")  # the follow-up's satisfaction is kept for the ratings module
    emit(
        session,
        events.OrderStep(
            action=step.action,
            order_id=order.id,
            status=order.status,
            satisfaction=order.satisfaction if followup else None,
            channel=order.channel if followup else None,
            unit=order.lead_unit if followup else None,
        ),
    )
    return order


def _short(step: Step) -> bool:
    """Whether the step's note is too short to say anything (a reason or a reply needs one)."""
    return len(step.note.strip()) < 2


def _sign(session: Session, settings: Settings, order: WorkOrder, actor: Principal, step: Step) -> None:
    order.signed_at = utcnow()


def _return(session: Session, settings: Settings, order: WorkOrder, actor: Principal, step: Step) -> None:
    if _short(step):
        raise InvalidError(N_("Give the reason for returning the order"), field="note")
    limits = limits_of(session, get_category(session, order.category_code or ""))
    dispatched = session.scalar(
        select(WorkOrderEvent.at)
        .where(WorkOrderEvent.order_id == order.id, WorkOrderEvent.to_status == "dispatched")
        .order_by(WorkOrderEvent.id.desc())
        .limit(1)
    )
    if dispatched and utcnow() > _end_of_working_day(settings, dispatched, int(limits.get("return_days", 2))):
        raise ConflictError(
            N_("The time for returning this order has passed: handle it or ask for a transfer"), field="action"
        )
    order.returns += 1


def _extend(session: Session, settings: Settings, order: WorkOrder, actor: Principal, step: Step) -> None:
    if _short(step):
        raise InvalidError(N_("Give the reason for the extension"), field="note")
    limits = limits_of(session, get_category(session, order.category_code or ""))
    allowed = int(limits.get("extension_days", 10))
    if not 1 <= step.days <= allowed:
        raise InvalidError(N_("An extension is 1 to {allowed} working days"), field="days", allowed=allowed)
    start = order.reply_due or utcnow()
    order.reply_due = _end_of_working_day(settings, start, step.days)
    order.conclude_due = max(order.conclude_due or order.reply_due, order.reply_due)


def _reply(session: Session, settings: Settings, order: WorkOrder, actor: Principal, step: Step) -> None:
    if _short(step):
        raise InvalidError(N_("Write the reply"), field="note")
    order.reply = step.note.strip()
    order.replied_at = utcnow()
    _tell(session, order, "已答复", order.reply)


def _close(session: Session, settings: Settings, order: WorkOrder, actor: Principal, step: Step) -> None:
    order.closed_at = utcnow()
    _tell(session, order, "已办结", "请对处理结果作出评价。")


def _visit(session: Session, settings: Settings, order: WorkOrder, actor: Principal, step: Step) -> None:
    if step.satisfaction is None or not 1 <= step.satisfaction <= 5:
        raise InvalidError(N_("Satisfaction is from 1 (very dissatisfied) to 5 (very satisfied)"), field="satisfaction")
    order.satisfaction = step.satisfaction
    order.closed_at = order.closed_at or utcnow()  # the reporter's own rating of a reply closes it too


def _reroute(session: Session, settings: Settings, order: WorkOrder, actor: Principal, step: Step) -> None:
    if step.action == "reopen":
        if order.reopened >= 1 or (order.satisfaction or 5) > 2:
            raise ConflictError(
                N_("Only an order rated unsatisfactory is handled again, and only once"), field="action"
            )
        order.reopened += 1
        order.replied_at = order.closed_at = None
        order.reply = ""
    router = Router(session)
    if step.category_code:
        category = router.leaf(step.category_code)
        order.category_code, order.category_confidence, order.classified_by = category.code, 1.0, "triage"
    if order.category_code is None:
        raise InvalidError(N_("Choose the order's category"), field="category_code")
    if step.action == "transfer":
        if not step.unit:
            raise InvalidError(N_("Choose the unit to transfer to"), field="unit")
        # only to a unit serving the order's district (or the city's): never into another district's hands
        if step.unit not in {code for code, _name in transfer_targets(session, settings, order)}:
            raise InvalidError(
                N_("Cannot transfer to {unit}: choose a unit of this district or of the city"),
                field="unit",
                unit=step.unit,
            )
        before = order.status
        order.lead_unit = step.unit
        order.status = "dispatched"
        _set_deadlines(settings, order, utcnow(), router)
        _history(session, order, actor, "transfer", before, step.note.strip() or f"转派至 {step.unit}")
        return
    _dispatch(session, settings, order, actor, step.action, router)


def _merge(session: Session, settings: Settings, order: WorkOrder, actor: Principal, step: Step) -> None:
    if step.target is None or step.target == order.id:
        raise InvalidError(N_("Choose the order to merge into"), field="target")
    # The target is an existing order that the merge writes to: the same answer when it does not exist as
    # when the actor may not know it does, and only its own operations centre merges into it.
    target = find_order(session, step.target)
    if target is None or not may_see(actor, target):
        raise NotFoundError(N_("no such work order"), field="target")
    if not actor.allows(DISPATCH, target.tenant_code, None):
        raise ForbiddenError(
            N_("Order {number} belongs to another operations centre: it cannot be merged into"),
            field="target",
            number=target.number,
        )
    if target.status not in OPEN:
        raise ConflictError(
            N_("Order {number} is concluded: it cannot be merged into"), field="target", number=target.number
        )
    order.merged_into = target.id
    _history(session, target, actor, "supervise", target.status, f"合并工单 {order.number}")


_HANDLERS: dict[str, Callable[[Session, Settings, WorkOrder, Principal, Step], None]] = {
    "sign": _sign,
    "return": _return,
    "extend": _extend,
    "reply": _reply,
    "close": _close,
    "visit": _visit,
    "rate": _visit,
    "classify": _reroute,
    "redispatch": _reroute,
    "transfer": _reroute,
    "reopen": _reroute,
    "merge": _merge,
}


def escalate_overdue(session: Session, settings: Settings, now: datetime | None = None) -> list[WorkOrder]:
    """Raise every overdue open order one level (township → district → city) and tell the new unit."""
    moment = now or utcnow()
    router = Router(session)
    raised = []
    for order in session.scalars(select(WorkOrder).where(WorkOrder.status.in_(("dispatched", "signed", "returned")))):
        if deadline_flag(order, now=moment) != "overdue" or order.lead_unit is None:
            continue
        level = unit_level(order.lead_unit, settings)
        if level == "city":
            continue
        upper = LEVELS[LEVELS.index(level) + 1]
        order.lead_unit = unit_for(settings, order, upper, "cy", router)
        order.escalation += 1
        _set_deadlines(settings, order, moment, router)
        _history(
            session, order, None, "escalate", order.status, f"超期，升级至{'区' if upper == 'district' else '市'}级"
        )
        raised.append(order)
    return raised


def add_note(session: Session, order_id: uuid.UUID, note: str) -> WorkOrder:
    """Record what another part of the system learnt about an order (its sensor warning eased or cleared …) in
    the order's history; the order's status and deadlines are unchanged."""
    if not note.strip():
        raise InvalidError(N_("a note needs text"), field="note")
    order = get_order(session, order_id)
    _history(session, order, None, "note", order.status, note.strip())
    return order


def history(session: Session, order_id: uuid.UUID) -> list[WorkOrderEvent]:
    """An order's history, oldest first."""
    return list(
        session.scalars(select(WorkOrderEvent).where(WorkOrderEvent.order_id == order_id).order_by(WorkOrderEvent.id))
    )


def orders_for(
    session: Session, principal: Principal, settings: Settings, status: str = "open", limit: int = 500
) -> list[WorkOrder]:
    """The orders a principal may see: their district's (operations centre) or their unit's."""
    query = select(WorkOrder).order_by(WorkOrder.created_at.desc()).limit(limit * 4)
    if status == "open":
        query = query.where(WorkOrder.status.in_(OPEN))
    elif status:
        query = query.where(WorkOrder.status == status)
    return [o for o in session.scalars(query) if may_see(principal, o)][:limit]


def reported_by(session: Session, user_id: uuid.UUID, limit: int = 200) -> list[WorkOrder]:
    """A person's own reports, newest first."""
    query = (
        select(WorkOrder)
        .where(WorkOrder.reporter_user_id == user_id)
        .order_by(WorkOrder.created_at.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def order_by_number(session: Session, number: str) -> WorkOrder | None:
    """An order by its number (GD…)."""
    return session.scalar(select(WorkOrder).where(WorkOrder.number == number.strip().upper()))


def transfer_targets(session: Session, settings: Settings, order: WorkOrder) -> list[tuple[str, str]]:
    """Units an order can be transferred to: the departments and township offices of its district, then the
    city's departments."""
    tenants = [t for t in (order.district_code, settings.city_code) if t]
    return [(d.code, d.short_name) for tenant in tenants for d in list_departments(session, tenant)]


def department_keys(session: Session, settings: Settings) -> list[tuple[str, str]]:
    """The department keys a rule may name (the city's departments), and ``street`` for the township office."""
    return [("street", "街道/镇")] + [(d.key, d.short_name) for d in list_departments(session, settings.city_code)]


# -- routing rules as data (the admin page and API edit them) -------------------------------------------


@dataclass
class RuleSpec:
    """What an official writes for a rule: which orders it takes (all the conditions must hold; empty ones
    match everything) and which unit leads, at which level, with which assisting units."""

    name: str
    lead_level: str
    lead_department_key: str
    category_prefix: str = ""
    area_prefix: str = ""
    keywords: list[str] = field(default_factory=list)
    assisting: list[str] = field(default_factory=list)
    active: bool = True


def check_rule(session: Session, settings: Settings, index: RegionIndex, spec: RuleSpec) -> RuleSpec:
    """The rule cleaned, or a refusal naming the field: an unknown category or area, a level or department
    that does not exist."""
    spec.name = spec.name.strip()
    if not 2 <= len(spec.name) <= 100:
        raise InvalidError(
            N_("A rule's name has {min_length} to {max_length} characters"), field="name", min_length=2, max_length=100
        )
    spec.category_prefix = spec.category_prefix.strip()
    if spec.category_prefix and not any(c.startswith(spec.category_prefix) for c in Router(session).categories):
        raise InvalidError(N_("No category starts with {prefix}"), field="category_prefix", prefix=spec.category_prefix)
    spec.area_prefix = spec.area_prefix.strip()
    if spec.area_prefix and not any(code.startswith(spec.area_prefix) for code in index.regions):
        raise InvalidError(N_("No division starts with {prefix}"), field="area_prefix", prefix=spec.area_prefix)
    if spec.lead_level not in LEVELS:
        raise InvalidError(N_("The lead level is city, district or township"), field="lead_level")
    spec.keywords = sorted({k.strip() for k in spec.keywords if k.strip()})
    spec.lead_department_key = spec.lead_department_key.strip()
    spec.assisting = [k.strip() for k in spec.assisting if k.strip()]
    known = {key for key, _name in department_keys(session, settings)}
    for name, keys in (("lead_department_key", [spec.lead_department_key]), ("assisting", spec.assisting)):
        unknown = [k for k in keys if k not in known]
        if "" in unknown:
            raise InvalidError(N_("Choose a department"), field=name)
        if unknown:
            raise InvalidError(N_("Unknown departments: {departments}"), field=name, departments=", ".join(unknown))
    return spec


def save_rule(
    session: Session, settings: Settings, index: RegionIndex, spec: RuleSpec, rule_id: int | None = None
) -> RoutingRule:
    """Create a rule (tried last) or change one in place; the position of an existing rule is kept."""
    spec = check_rule(session, settings, index, spec)
    if rule_id is None:
        last = session.scalar(select(RoutingRule.position).order_by(RoutingRule.position.desc()).limit(1))
        rule = RoutingRule(position=(last or 0) + 10)
        session.add(rule)
    else:
        found = session.get(RoutingRule, rule_id)
        if found is None:
            raise NotFoundError(N_("no such rule"), field="rule_id")
        rule = found
    for name, value in vars(spec).items():
        setattr(rule, name, value)
    session.flush()
    return rule


def delete_rule(session: Session, rule_id: int) -> None:
    """Remove a rule (the orders it dispatched keep its name in their history)."""
    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFoundError(N_("no such rule"), field="rule_id")
    session.delete(rule)
    session.flush()


def move_rule(session: Session, rule_id: int, offset: int) -> list[RoutingRule]:
    """Move a rule ``offset`` places earlier (negative) or later in the order they are tried."""
    ordered = list(session.scalars(select(RoutingRule).order_by(RoutingRule.position, RoutingRule.id)))
    at = next((i for i, r in enumerate(ordered) if r.id == rule_id), None)
    if at is None:
        raise NotFoundError(N_("no such rule"), field="rule_id")
    rule = ordered.pop(at)
    ordered.insert(min(max(at + offset, 0), len(ordered)), rule)
    for position, each in enumerate(ordered, start=1):
        each.position = position * 10
    session.flush()
    return ordered


def all_rules(session: Session) -> list[RoutingRule]:
    """Every rule, active or not, in the order they are tried."""
    return list(session.scalars(select(RoutingRule).order_by(RoutingRule.position, RoutingRule.id)))


@dataclass(frozen=True)
class RouteTrial:
    """Which rule would take an order and which units would get it."""

    rule: RoutingRule | None
    lead_unit: str | None
    assisting_units: list[str]


def try_route(
    session: Session, settings: Settings, index: RegionIndex, category_code: str, text_: str, area: str
) -> RouteTrial:
    """Dispatch an imagined order without storing it (to test the rules before relying on them)."""
    router = Router(session)
    category = router.leaf(category_code)
    region = index.get(area.strip()) if area.strip() else None
    if area.strip() and region is None:
        raise InvalidError(N_("no division {code!r}"), field="area", code=area)
    chain = [*index.ancestors(region.code), region] if region else []
    by_level = {r.level: r.code for r in chain}
    probe = WorkOrder(
        category_code=category.code,
        description=text_,
        district_code=by_level.get("district"),
        township_code=by_level.get("township"),
        community_code=by_level.get("community"),
        assisting_units=[],
    )
    rule = matching_rule(router.rules, probe)
    if rule is None:
        return RouteTrial(None, None, [])
    return RouteTrial(
        rule,
        unit_for(settings, probe, rule.lead_level, rule.lead_department_key, router),
        [unit_for(settings, probe, rule.lead_level, k, router) for k in rule.assisting],
    )


def unit_names(session: Session, units: list[str | None]) -> dict[str, str]:
    """Department names of units, for pages."""
    names = {}
    for unit in {u for u in units if u}:
        found = find_department(session, unit)
        names[unit] = found.short_name if found else unit
    return names


# -- the demo -------------------------------------------------------------------------------------------


def load_categories(session: Session, rows: list[dict[str, Any]]) -> int:
    """Create or update categories (parents before children)."""
    for row in sorted(rows, key=lambda r: (int(r["level"]), r["code"])):
        if row.get("parent_code") and session.get(Category, row["parent_code"]) is None:
            raise InvalidError(N_("category {code} names an unknown parent"), field="parent_code", code=row["code"])
        existing = session.get(Category, row["code"])
        if existing is None:
            session.add(Category(**row))
        else:
            for name, value in row.items():
                setattr(existing, name, value)
        session.flush()
    return len(rows)


def load_rules(session: Session, rows: list[dict[str, Any]]) -> int:
    """Replace the routing rules with ``rows`` (ordered by position)."""
    for rule in session.scalars(select(RoutingRule)):
        session.delete(rule)
    session.flush()
    for row in rows:
        if row.get("lead_level") not in LEVELS:
            raise InvalidError(
                N_("rule {name!r}: lead_level is city, district or township"), field="rules", name=row.get("name")
            )
        session.add(RoutingRule(**row))
    session.flush()
    return len(rows)


def demo_examples(session: Session) -> tuple[list[str], list[str]]:
    """Generated training examples (the project's own words) for every leaf category."""
    openings = ("", "您好，", "反映一下：", "市民来电：", "请相关部门处理，")
    places = ("小区门口", "路口", "菜场旁边", "学校附近", "地铁站出口", "我家楼下", "公园边上")
    endings = ("", "已经好几天了", "希望尽快解决", "影响很大", "多次反映没有结果")
    texts, labels = [], []
    for category in categories(session, leaves_only=True):
        for i in range(30):
            keyword = category.keywords[i % len(category.keywords)] if category.keywords else category.name
            other = category.keywords[(i + 1) % len(category.keywords)] if category.keywords else ""
            texts.append(
                f"{openings[i % 5]}{places[i % 7]}{keyword}问题，{category.name}，{other}{endings[(i // 5) % 5]}"
            )
            labels.append(category.code)
    return texts, labels


def seed_demo(session: Session, settings: Settings) -> dict[str, int]:
    """The category tree, the routing rules, the roles' actions and a classifier trained on examples."""
    count = load_categories(session, json.loads((DATA / "categories.json").read_text()))
    rule_count = load_rules(session, json.loads((DATA / "rules.json").read_text()))
    for row in json.loads((DATA / "playbooks.json").read_text()):
        session.merge(Playbook(**row))
    add_actions_to_role(session, "ops_operator", (DISPATCH, HANDLE))
    add_actions_to_role(session, "case_worker", (HANDLE,))
    texts, labels = demo_examples(session)
    classifier.save(classifier.train(texts, labels), model_path(settings))
    staff = _demo_staff(session, settings)
    orders = _demo_orders(session, settings, texts, labels, settings.workorders.demo_orders)
    return {"categories": count, "rules": rule_count, "examples": len(texts), "staff": staff, "orders": orders}


def _demo_units(settings: Settings) -> list[tuple[str, str, str, str | None, str]]:
    # (username, name, role, department or None for district-wide, tenant)
    lujiazui = township_office_code("310115", "310115005")
    return [
        ("pudong.ops", "浦东新区城运中心值班员 顾晓", "ops_operator", None, "310115"),
        ("pudong.jianguan", "浦东新区建设和管理委员会 钱进", "case_worker", "310115.zj", "310115"),
        ("lujiazui.jd", "陆家嘴街道城运分中心 沈琳", "case_worker", lujiazui, "310115"),
    ]


def demo_accounts(settings: Settings) -> list[tuple[str, str, str]]:
    """The operations demo's accounts: a district centre operator, a district unit and a township office."""
    return [(u, DEMO_PASSWORD, name.split(" ")[0]) for u, name, _r, _d, _t in _demo_units(settings)]


def _demo_staff(session: Session, settings: Settings) -> int:
    created = 0
    for username, name, role, department, tenant in _demo_units(settings):
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            continue
        if department is not None and find_department(session, department) is None:
            continue  # another city's divisions: no such office
        user = create_user(
            session,
            kind="staff",
            username=username,
            display_name=name,
            password=DEMO_PASSWORD,
            tenant_code=tenant,
            department_code=department,
        )
        assign_role(session, user.id, role, Scope(tenant, department))
        created += 1
    return created


def _demo_orders(session: Session, settings: Settings, texts: list[str], labels: list[str], count: int) -> int:
    """A fortnight of orders across the districts in every state, so the centre's pages show a city at work."""
    admin = principal_by_username(session, "admin")
    index = RegionIndex.from_session(session)
    if admin is None or not index.boundaries or count == 0:
        return 0
    rng = random.Random(12345)  # noqa: S311 - the same demo city every time, nothing secret
    outlines = {code: shape(geometry) for code, geometry in sorted(index.boundaries.items())}
    codes = list(outlines)
    reports = []
    for i in range(count):
        outline = outlines[codes[i % len(codes)] if i % 3 else "310115" if "310115" in outlines else codes[0]]
        west, south, east, north = outline.bounds
        while True:
            lng, lat = rng.uniform(west, east), rng.uniform(south, north)
            if outline.contains(Point(lng, lat)):
                break
        # A few calls say too little for the classifier: they wait in the triage queue.
        text_ = "有个情况想反映一下，麻烦尽快来看看" if i % 45 == 7 else texts[rng.randrange(len(texts))]
        reports.append(
            Report(channel=rng.choice(("hotline", "hotline", "photo", "patrol")), description=text_, lat=lat, lng=lng)
        )
    outcomes = intake_many(session, settings, index, reports, admin, check_duplicates=False)
    made = 0
    for outcome in outcomes:
        order = outcome.order
        if order is None:
            continue
        made += 1
        # Most orders are recent, a long tail reaches back a fortnight (and some of those run overdue).
        _backdate(session, order, timedelta(hours=min(rng.expovariate(1 / 30), 14 * 24)))
        fate = rng.random()
        if order.status != "dispatched" or fate < 0.3:
            continue
        act(session, settings, order, admin, Step("sign"))
        if fate < 0.5:
            continue
        act(session, settings, order, admin, Step("reply", note="已到现场处置，问题已解决。"))
        if fate < 0.65:
            continue
        act(session, settings, order, admin, Step("close"))
        act(session, settings, order, admin, Step("visit", satisfaction=rng.choice((2, 3, 4, 4, 5, 5, 5))))
    return made


def _backdate(session: Session, order: WorkOrder, age: timedelta) -> None:
    # The demo's orders arrived over the past days: every time they carry moves back together.
    for name in ("created_at", "sign_due", "reply_due", "conclude_due"):
        value = getattr(order, name)
        if value is not None:
            setattr(order, name, value - age)
    for event in history(session, order.id):
        event.at = event.at - age
    session.flush()


# -- what the API and the pages share: a signed-in reporter's report, the centre's district -------------


def reporter_report(session: Session, principal: Principal, channel: str, values: dict[str, str]) -> Report:
    """A signed-in person's report from form fields (``description``, ``lat``, ``lng``, ``address``,
    ``category_code``), with their name and phone for the answer."""
    user = find_user(session, principal.user_id)
    return Report(
        channel=channel,
        description=values.get("description", ""),
        lat=_coordinate(values.get("lat"), "lat"),
        lng=_coordinate(values.get("lng"), "lng"),
        address=values.get("address", "")[:300],
        category_code=values.get("category_code") or None,
        reporter_user_id=principal.user_id,
        reporter_name=principal.display_name,
        reporter_phone=(user.phone or "") if user else "",
    )


def _coordinate(value: str | None, name: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise InvalidError(N_("{name} must be a number (WGS-84 degrees)"), field=name, name=name) from exc


def centre_district(principal: Principal, district: str | None) -> str | None:
    """The district an operations-centre view shows: any (or the city, None) for a city-wide operator, and
    always the operator's own for a district's."""
    if not principal.has_action(DISPATCH):
        raise ForbiddenError(N_("this view is for the operations centre"), field="district")
    if principal.city_wide(DISPATCH):
        return district or None
    tenants = [t for t in principal.tenants_for(DISPATCH) or () if t]
    if district in tenants:
        return district
    if len(tenants) != 1:
        raise ForbiddenError(N_("name the district you serve"), field="district")
    return tenants[0]
