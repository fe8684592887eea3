"""A mixed write load over real HTTP, shared by ``bench/bench_writes.py`` and ``tests/test_write_load.py``.

Each client is a closed loop (its next request goes out as soon as the previous answer is in) over a deck of
50 requests, shuffled per client and per round: 40 reads (20 % HTML pages, 80 % GET API calls: lists, the
caller's own account and objects it created) and 10 writes — 2 sign-ins (a real password grant each time),
2 work orders (one from the 12345 hotline, one through Open311 GeoReport v2), 2 case submissions (一网通办, a
form with one uploaded PDF), 2 desk ratings (好差评) and 2 sharing requests (1515). A client signs in once
per persona (citizen, operations operator, department administrator) before the clock starts and reuses
those tokens. A desk is rated once per rater and day (一次一评), so desks open (an administrator's PUT,
counted as a write) as the (rater, desk) pairs run out.

Everything a write acknowledged (2xx) is kept, so that ``verify`` can check afterwards that it is really
in the database. Only HTTP is used to prepare and drive the load; ``verify`` reads the database.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from shgov.cases.models import Case
from shgov.core.db import Database
from shgov.core.identity.demo import DEMO_ACCOUNTS, DEMO_PASSWORD
from shgov.core.identity.models import AccessToken
from shgov.core.identity.service import digest
from shgov.ratings.models import Rating
from shgov.sharing.models import SharingRequest
from shgov.workorders.models import WorkOrder

# 个人所得税专项附加扣除信息采集: no pre-conditions, and only the ID card to upload, so the demo citizen (who is
# not in the small demo city's person register) can apply to it again and again.
OFFERING = ("item", "310000-SWJ-0003")
CITIZEN = next(a for a in DEMO_ACCOUNTS if a.username == "citizen")
OPERATOR = "ops.operator"  # takes hotline calls (workorders.order.dispatch)
REQUESTER = "minzheng.admin"  # files sharing requests for 市民政局
ADMIN = "admin"  # opens desks and sets the rating rules
SHARED_RESOURCE = "tax_registrations"  # 税务局's register: 民政 may request it (never its own data)
DESK_TENANT, DESK_DEPARTMENT = "310115", "310115.mz"
TIMEOUT = 60.0  # a request slower than this counts as a transport error, not as a latency

# Points inside the central districts (lat, lng), jittered a little per report.
PLACES = (
    (31.2304, 121.4737),  # 人民广场
    (31.2397, 121.4998),  # 陆家嘴
    (31.1955, 121.4365),  # 徐家汇
    (31.2234, 121.4452),  # 静安寺
    (31.2220, 121.4180),  # 中山公园
    (31.2990, 121.5140),  # 五角场
    (31.2150, 121.5510),  # 世纪公园
    (31.2050, 121.5900),  # 张江
)
COMPLAINTS = (
    "小区门口垃圾满溢，气味很大，请尽快清运",
    "路灯不亮，晚上行人看不清路",
    "道路积水严重，车辆无法通行",
    "有人占道经营，影响行人通行",
    "夜间施工噪声扰民，已经持续一周",
    "井盖缺失，存在安全隐患",
    "违法停车堵住了消防通道",
    "餐馆油烟直排，楼上居民无法开窗",
)
RATING_LEVELS = (5, 5, 4, 5, 3, 5, 4, 2, 5, 4, 5, 1, 4, 5)

WRITES = ("signin", "hotline", "open311", "case", "rating", "sharing")
# Where each write's answer names what it made (a token, an id, Open311's request number).
ACKNOWLEDGED: dict[str, tuple[str | int, ...]] = {
    "signin": ("access_token",),
    "hotline": ("id",),
    "open311": (0, "service_request_id"),
    "case": ("id",),
    "rating": ("id",),
    "sharing": ("id",),
}
# One round of a client: 40 reads and 10 writes (80 % reads), shuffled.
DECK: tuple[str, ...] = (
    ("page:home",) * 4
    + ("page:services",) * 3
    + ("page:guide",) * 3
    + ("page:ratings",) * 2
    + ("page:regions",) * 2
    + ("page:opendata",) * 2
    + ("api:me",) * 4
    + ("api:items",) * 2
    + ("api:open311-services",) * 2
    + ("api:regions",) * 2
    + ("api:ratings-public",) * 2
    + ("api:catalog",) * 2
    + ("api:my-order",) * 3
    + ("api:my-request",) * 2
    + ("api:my-case",) * 3
    + ("api:my-sharing",) * 2
    + ("signin",) * 2
    + ("hotline", "open311")
    + ("case",) * 2
    + ("rating",) * 2
    + ("sharing",) * 2
)
assert sum(op in WRITES for op in DECK) * 5 == len(DECK)  # the 80 / 20 mix


def one_page_pdf() -> bytes:
    """A valid one-page PDF (the uploaded ID card: the material pre-check counts its pages)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def load_average() -> tuple[float, float, float]:
    """The machine's 1, 5 and 15 minute load averages (zeros where the system does not tell)."""
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Sample:
    """One answered (or failed) request."""

    op: str
    label: str  # method and path template, e.g. "POST /api/v1/workorders"
    write: bool
    status: int  # 0: no HTTP answer (connection error or timeout)
    ms: float


@dataclass(frozen=True)
class Pair:
    """The ``n``-th rating of the run: who rates which desk, and whether this rating opens the desk."""

    n: int
    rater: str
    desk: int
    opens: bool


@dataclass
class City:
    """What the load needs to know about the served city, found over HTTP before the clock starts."""

    base_url: str
    tokens: dict[str, str]  # every demo account's token (the raters, the administrator)
    resource_code: str
    items: list[str]
    service_codes: list[str]
    form: dict[str, str]
    materials: list[str]
    pdf: bytes
    desk_prefix: str
    desks: dict[int, asyncio.Future[bool]] = field(default_factory=dict)
    ratings_given: int = 0
    sign_ins: int = 0

    def take_pair(self) -> Pair:
        """The next (rater, desk) pair never rated before; raters take turns so that none reaches the hourly
        limit long before the others. The first to take a desk's pair opens that desk."""
        raters = sorted(self.tokens)
        n = self.ratings_given
        self.ratings_given += 1
        desk = n // len(raters)
        opens = desk not in self.desks
        if opens:
            self.desks[desk] = asyncio.get_running_loop().create_future()
        return Pair(n, self.tokens[raters[n % len(raters)]], desk, opens)

    def desk_code(self, desk: int) -> str:
        """The code of the ``desk``-th desk of this run."""
        return f"{self.desk_prefix}-{desk}"


class SetupError(RuntimeError):
    """The served city does not offer what the load needs (named in the message)."""


async def _sign_in(http: httpx.AsyncClient, username: str) -> str:
    answer = await http.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": username, "password": DEMO_PASSWORD}
    )
    if answer.status_code != 200:
        raise SetupError(f"{username} cannot sign in: {answer.status_code} {answer.text[:300]}")
    return str(answer.json()["access_token"])


async def prepare_city(base_url: str) -> City:
    """Sign every demo account in once, raise the raters' hourly limit for the desks the load opens (the
    anti-manipulation rule would otherwise refuse the 11th rating of an account in an hour), and find the
    resource to request, the Open311 services and what the application form needs."""
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as http:
        tokens = {a.username: await _sign_in(http, a.username) for a in DEMO_ACCOUNTS}
        rules = await http.put(
            f"/api/v1/ratings/rules/{DESK_TENANT}", json={"hourly_limit": 1000}, headers=_auth(tokens[ADMIN])
        )
        if rules.status_code != 200:
            raise SetupError(f"cannot set the rating rules: {rules.status_code} {rules.text[:300]}")
        entries = await http.get("/api/v1/catalog/entries?status=published", headers=_auth(tokens[REQUESTER]))
        entry = next((e for e in entries.json() if e.get("lake_resource") == SHARED_RESOURCE), None)
        if entry is None:
            raise SetupError(f"no published catalog entry for {SHARED_RESOURCE}: {entries.status_code}")
        items = [i["name"] for i in entry["items"] if i["name"] in ("credit_code", "name", "employees")]
        services = (await http.get("/open311/v2/services.json")).json()
        codes = []
        for service in services[:12]:
            definition = await http.get(f"/open311/v2/services/{service['service_code']}.json")
            attributes = definition.json().get("attributes", []) if definition.status_code == 200 else [None]
            if not any(a is None or a.get("required") for a in attributes):
                codes.append(str(service["service_code"]))
        if not codes:
            raise SetupError("no Open311 service without required attributes")
        kind, code = OFFERING
        prep = await http.get(f"/api/v1/offerings/{kind}/{code}/prepare", headers=_auth(tokens[CITIZEN.username]))
        if prep.status_code != 200 or not prep.json()["precheck"]["passed"]:
            raise SetupError(f"the citizen cannot apply for {code}: {prep.status_code} {prep.text[:300]}")
        known = {
            "applicant_name": CITIZEN.display_name,
            "applicant_id_number": CITIZEN.id_number or "",
            "applicant_phone": CITIZEN.phone or "",
            "applicant_address": "上海市黄浦区人民大道200号",
        }
        form = {}
        for section in prep.json()["sections"]:
            for f in section["fields"]:
                if f["code"] in known:
                    form[f["code"]] = known[f["code"]]
                elif f["required"] and f["code"] not in prep.json()["prefilled"]:
                    raise SetupError(f"the form of {code} asks for {f['code']}, which the load does not fill")
        materials = [m["key"] for m in prep.json()["materials"] if m["necessity"] == "必须" and not m["licence_no"]]
    return City(
        base_url=base_url,
        tokens=tokens,
        resource_code=str(entry["code"]),
        items=items or [entry["items"][0]["name"]],
        service_codes=codes,
        form=form,
        materials=materials,
        pdf=one_page_pdf(),
        desk_prefix=f"WL{uuid.uuid4().hex[:6].upper()}",
    )


@dataclass
class LoadResult:
    """The figures of one run: every request, and every acknowledged write by kind."""

    clients: int
    seconds: float
    samples: list[Sample]
    acked: dict[str, set[str]]
    examples: dict[tuple[int, str], str]  # the first body of each unexpected (status, request)
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def requests(self) -> int:
        """Requests answered (or failed) inside the run."""
        return len(self.samples)

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def writes(self) -> int:
        """Writes the server acknowledged (2xx)."""
        return sum(1 for s in self.samples if s.write and 200 <= s.status < 300)

    @property
    def write_rate(self) -> float:
        """Acknowledged writes per second."""
        return self.writes / self.seconds if self.seconds else 0.0

    def latency(self, writes_only: bool = False) -> tuple[float, float]:
        """p50 and p99 in ms, of every request or of the writes."""
        times = sorted(s.ms for s in self.samples if s.write or not writes_only)
        if not times:
            return (0.0, 0.0)
        return times[len(times) // 2], times[max(0, -(-len(times) * 99 // 100) - 1)]

    @property
    def server_errors(self) -> int:
        """Answers with a 5xx status."""
        return sum(1 for s in self.samples if s.status >= 500)

    @property
    def unexpected(self) -> Counter[tuple[int, str]]:
        """(status, request) → count, of every answer that was not the expected success (5xx included;
        status 0 is a request that got no HTTP answer)."""
        return Counter((s.status, s.label) for s in self.samples if not 200 <= s.status < 300)

    def by_op(self) -> Counter[str]:
        """Requests per kind of operation."""
        return Counter(s.op for s in self.samples)

    def failures(self) -> str:
        """The unexpected answers, one line each: status, request, count, the first body."""
        lines = []
        for (status, label), count in sorted(self.unexpected.items()):
            example = self.examples.get((status, label), "").replace("\n", " ")[:300]
            lines.append(f"{status} {label} ×{count}: {example}")
        return "\n".join(lines)


class _Client:
    """One closed-loop client with its own connection and its personas' tokens."""

    def __init__(self, n: int, city: City, seed: int) -> None:
        self.n = n
        self.city = city
        self.rng = random.Random(seed * 1_000 + n)
        self.http = httpx.AsyncClient(
            base_url=city.base_url, timeout=TIMEOUT, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)
        )
        self.citizen = self.operator = self.requester = ""
        self.orders: list[str] = []
        self.requests: list[str] = []
        self.cases: list[str] = []
        self.sharing: list[str] = []

    async def sign_in(self) -> None:
        """Sign in once per persona; the tokens are reused for the whole run."""
        self.citizen = await _sign_in(self.http, CITIZEN.username)
        self.operator = await _sign_in(self.http, OPERATOR)
        self.requester = await _sign_in(self.http, REQUESTER)

    async def close(self) -> None:
        """Close the connection."""
        await self.http.aclose()

    def _latest(self, made: list[str]) -> str | None:
        return made[-1 - self.rng.randrange(min(len(made), 5))] if made else None

    def request_for(self, op: str) -> tuple[str, str, Callable[[], Awaitable[httpx.Response]]]:
        """(op, label, call) of one deck entry: reads of the client's own objects fall back to its account
        until it has made one."""
        http, rng = self.http, self.rng
        kind, code = OFFERING
        pages = {
            "page:home": "/",
            "page:services": "/services",
            "page:guide": f"/services/{kind}s/{code}",
            "page:ratings": "/ratings",
            "page:regions": "/regions",
            "page:opendata": "/opendata",
        }
        if op in pages:
            return op, f"GET {pages[op]}", lambda: http.get(pages[op], headers={"Accept": "text/html"})
        lists = {
            "api:items": ("/api/v1/services/items", None),
            "api:open311-services": ("/open311/v2/services.json", None),
            "api:regions": ("/api/v1/regions?parent=310000", None),
            "api:ratings-public": ("/api/v1/ratings/public", None),
            "api:catalog": ("/api/v1/catalog/entries?status=published", self.requester),
        }
        if op in lists:
            path, token = lists[op]
            headers = _auth(token) if token else {}
            return op, f"GET {path}", lambda: http.get(path, headers=headers)
        own: dict[str, tuple[list[str], str, str]] = {
            "api:my-order": (self.orders, "/api/v1/workorders/{id}", self.operator),
            "api:my-request": (self.requests, "/open311/v2/requests/{id}.json", self.citizen),
            "api:my-case": (self.cases, "/api/v1/cases/{id}", self.citizen),
            "api:my-sharing": (self.sharing, "/api/v1/sharing/requests/{id}", self.requester),
        }
        if op in own:
            made, template, token = own[op]
            latest = self._latest(made)
            if latest is not None:
                path = template.replace("{id}", latest)
                return op, f"GET {template}", lambda: http.get(path, headers=_auth(token))
            op = "api:me"
        if op == "api:me":
            token = (self.citizen, self.operator, self.requester)[rng.randrange(3)]
            return op, "GET /api/v1/identity/me", lambda: http.get("/api/v1/identity/me", headers=_auth(token))
        return self._write(op)

    def _write(self, op: str) -> tuple[str, str, Callable[[], Awaitable[httpx.Response]]]:
        http, rng, city = self.http, self.rng, self.city
        lat, lng = PLACES[rng.randrange(len(PLACES))]
        lat, lng = lat + rng.uniform(-0.003, 0.003), lng + rng.uniform(-0.003, 0.003)
        complaint = f"{COMPLAINTS[rng.randrange(len(COMPLAINTS))]}（第{rng.randrange(1, 500)}号附近）"
        if op == "signin":
            username = DEMO_ACCOUNTS[city.sign_ins % len(DEMO_ACCOUNTS)].username
            city.sign_ins += 1
            form = {"grant_type": "password", "username": username, "password": DEMO_PASSWORD}
            return op, "POST /api/v1/auth/token", lambda: http.post("/api/v1/auth/token", data=form)
        if op == "hotline":
            body = {"channel": "hotline", "description": complaint, "lat": lat, "lng": lng, "caller_name": "王先生"}
            headers = _auth(self.operator)
            return op, "POST /api/v1/workorders", lambda: http.post("/api/v1/workorders", json=body, headers=headers)
        if op == "open311":
            report = {
                "api_key": self.citizen,
                "service_code": city.service_codes[rng.randrange(len(city.service_codes))],
                "lat": f"{lat:.6f}",
                "long": f"{lng:.6f}",
                "description": complaint,
            }
            return op, "POST /open311/v2/requests.json", lambda: http.post("/open311/v2/requests.json", data=report)
        if op == "case":
            kind, code = OFFERING
            path = f"/api/v1/offerings/{kind}/{code}/applications"
            values = {**city.form, "channel": "online", "client_token": uuid.uuid4().hex}
            files = {f"material:{key}": ("居民身份证.pdf", city.pdf, "application/pdf") for key in city.materials}
            headers = _auth(self.citizen)
            return (
                op,
                "POST /api/v1/offerings/{kind}/{code}/applications",
                lambda: http.post(path, data=values, files=files, headers=headers),
            )
        if op == "sharing":
            body = {
                "resource_code": city.resource_code,
                "items": city.items,
                "purpose": "社会救助对象的经营情况核对",
                "scenario": f"低保复核（第{rng.randrange(1, 10_000)}批）",
            }
            headers = _auth(self.requester)
            return (
                op,
                "POST /api/v1/sharing/requests",
                lambda: http.post("/api/v1/sharing/requests", json=body, headers=headers),
            )
        raise ValueError(f"unknown operation {op!r}")

    def rate(self, pair: Pair) -> tuple[str, str, Callable[[], Awaitable[httpx.Response]]]:
        """(op, label, call) of a desk rating by ``pair``'s rater."""
        level = RATING_LEVELS[self.rng.randrange(len(RATING_LEVELS))]
        body: dict[str, Any] = {
            "level": level,
            "channel": "window",
            "scores": {"attitude": level, "efficiency": max(1, level - 1)},
        }
        if level <= 2:  # a bad rating says why
            body["comment"] = "等候时间太长，窗口只开了一个"
        # Each rating comes from its own address, as citizens' phones do behind the city's proxy (the server
        # trusts X-Forwarded-For from the loopback): the per-address hourly limit is about one network.
        n = pair.n
        headers = {**_auth(pair.rater), "X-Forwarded-For": f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"}
        path = f"/api/v1/ratings/desks/{self.city.desk_code(pair.desk)}"
        return "rating", "POST /api/v1/ratings/desks/{code}", lambda: self.http.post(path, json=body, headers=headers)

    async def open_desk(self, desk: int) -> httpx.Response:
        """Open the ``desk``-th desk of the run (the administrator's PUT)."""
        code = self.city.desk_code(desk)
        body = {"name": f"压测窗口 {desk}", "department_code": DESK_DEPARTMENT, "tenant_code": DESK_TENANT}
        return await self.http.put(f"/api/v1/ratings/desks/{code}", json=body, headers=_auth(self.city.tokens[ADMIN]))

    def acknowledge(self, op: str, answer: httpx.Response, acked: dict[str, set[str]]) -> None:
        """Keep what a 2xx write answered: what ``verify`` looks for afterwards, what later reads ask for."""
        value: Any = answer.json()
        for key in ACKNOWLEDGED[op]:
            value = value[key]
        acked[op].add(str(value))
        own = {"hotline": self.orders, "open311": self.requests, "case": self.cases, "sharing": self.sharing}
        if op in own:
            own[op].append(str(value))


async def _timed(
    op: str, label: str, write: bool, call: Callable[[], Awaitable[httpx.Response]]
) -> tuple[Sample, httpx.Response | None, str]:
    started = time.perf_counter()
    try:
        answer = await call()
    except httpx.HTTPError as exc:
        failed = Sample(op, label, write, 0, (time.perf_counter() - started) * 1000)
        return failed, None, f"{type(exc).__name__}: {exc}"
    return Sample(op, label, write, answer.status_code, (time.perf_counter() - started) * 1000), answer, ""


async def run_load(city: City, clients: int, seconds: float, *, seed: int = 1, min_rounds: int = 0) -> LoadResult:
    """Run ``clients`` closed-loop clients for ``seconds`` (and until each has done ``min_rounds`` whole
    decks, so that every kind of request is made however slow the machine); the clock starts once every
    client has signed in."""
    pool = [_Client(n, city, seed) for n in range(clients)]
    samples: list[Sample] = []
    examples: dict[tuple[int, str], str] = {}
    acked: dict[str, set[str]] = {kind: set() for kind in (*WRITES, "desk")}
    try:
        await asyncio.gather(*(c.sign_in() for c in pool))
        load_before = load_average()
        started = time.perf_counter()
        deadline = started + seconds

        def record(sample: Sample, answer: httpx.Response | None, text: str) -> None:
            samples.append(sample)
            if not 200 <= sample.status < 300:
                examples.setdefault((sample.status, sample.label), text or (answer.text if answer else ""))

        async def loop(client: _Client) -> None:
            rounds = 0
            while time.perf_counter() < deadline or rounds < min_rounds:
                deck = list(DECK)
                client.rng.shuffle(deck)
                for entry in deck:
                    if rounds >= min_rounds and time.perf_counter() >= deadline:
                        return
                    if entry == "rating":
                        pair = client.city.take_pair()
                        if not await _desk_open(client, pair, record, acked):
                            continue
                        op, label, call = client.rate(pair)
                    else:
                        op, label, call = client.request_for(entry)
                    sample, answer, text = await _timed(op, label, op in WRITES, call)
                    record(sample, answer, text)
                    if answer is not None and 200 <= answer.status_code < 300 and op in WRITES:
                        client.acknowledge(op, answer, acked)
                rounds += 1

        await asyncio.gather(*(loop(c) for c in pool))
        elapsed = time.perf_counter() - started
        load_after = load_average()
    finally:
        await asyncio.gather(*(c.close() for c in pool))
    return LoadResult(clients, elapsed, samples, acked, examples, load_before, load_after)


Recorder = Callable[[Sample, httpx.Response | None, str], None]


async def _desk_open(client: _Client, pair: Pair, record: Recorder, acked: dict[str, set[str]]) -> bool:
    """Whether the desk of ``pair`` is open, opening it first when the pair says so (the other raters of
    that desk wait for it); False when it could not be opened (the failed PUT is recorded)."""
    opened = client.city.desks[pair.desk]
    if pair.opens:
        sample, answer, text = await _timed(
            "desk", "PUT /api/v1/ratings/desks/{code}", True, lambda: client.open_desk(pair.desk)
        )
        record(sample, answer, text)
        ok = answer is not None and 200 <= answer.status_code < 300
        if ok:
            acked["desk"].add(client.city.desk_code(pair.desk))
        opened.set_result(ok)
    return await opened


def run(
    base_url: str, clients: int, seconds: float, *, seed: int = 1, min_rounds: int = 0, city: City | None = None
) -> LoadResult:
    """Prepare the city (unless given) and run the load, in a fresh event loop."""

    async def go() -> LoadResult:
        ready = city or await prepare_city(base_url)
        return await run_load(ready, clients, seconds, seed=seed, min_rounds=min_rounds)

    return asyncio.run(go())


def _present(session: Session, column: Any, values: Iterable[Any]) -> set[str]:
    """The ``values`` found in ``column``, asked 500 at a time (SQLite's limit on bound parameters)."""
    wanted = list(values)
    found: set[str] = set()
    for at in range(0, len(wanted), 500):
        found.update(str(v) for v in session.scalars(select(column).where(column.in_(wanted[at : at + 500]))))
    return found


def verify(db: Database, acked: Mapping[str, set[str]]) -> dict[str, tuple[int, int]]:
    """kind → (writes acknowledged, of those found in the database)."""
    with db.session() as session:
        tokens = {digest(raw): raw for raw in acked.get("signin", set())}
        found = {
            "signin": len(_present(session, AccessToken.token_hash, tokens)),
            "hotline": len(_present(session, WorkOrder.id, (uuid.UUID(i) for i in acked.get("hotline", ())))),
            "open311": len(_present(session, WorkOrder.number, acked.get("open311", ()))),
            "case": len(_present(session, Case.id, (uuid.UUID(i) for i in acked.get("case", ())))),
            "rating": len(_present(session, Rating.id, (uuid.UUID(i) for i in acked.get("rating", ())))),
            "sharing": len(_present(session, SharingRequest.id, (uuid.UUID(i) for i in acked.get("sharing", ())))),
        }
    return {kind: (len(acked.get(kind, ())), count) for kind, count in found.items()}
