"""Authorisation matrix (issue #26, point 8): every demo account against every operation of the OpenAPI document
whose path names an object, with real ids, judged by an oracle built from the role assignments and the
objects' owner columns read straight from the database — never from the application's own visibility code.

A leak is a 2xx answer, or an answer carrying the object's personal data, to an account that the oracle does
not entitle. Operations are discovered from the document: a path parameter this file cannot classify fails
the test, so a new endpoint is covered (or explicitly declared not to name an owned object) automatically.
"""

from __future__ import annotations

import io
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from fastapi import FastAPI
from pypdf import PdfWriter
from sqlalchemy import text

from shgov.core.db import Database
from shgov.core.identity.demo import DEMO_ACCOUNTS
from shgov.core.identity.service import create_user
from shgov.core.regions.service import RegionIndex
from shgov.lake.service import read_current
from shgov.lake.synthetic import CityConfig, generate
from shgov.registers import licences
from tests.conftest import served_lake

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)

METHODS = ("get", "put", "post", "patch", "delete")
MIN_ATTEMPTS = 500
IDS_PER_KIND = 2
SQUARE = {"lat": 31.2304, "lng": 121.4737}  # 人民广场, 黄浦区 310101
REPORTER_PHONE = "13900004321"
BIRTH_FORM = {"child_name": "王小宝", "child_sex": "女", "child_birth_date": "2026-11-20", "bank_name": "上海银行"}
OTHER_CITIZEN = "matrix.parent"  # a married resident of Pudong in the test's register: not one of the demo's

# Path parameters that do not name an owned object: formats, reference vocabularies, versions, public
# catalogues (regions, services, open data, Open311 service codes). (context, name) or ("*", name).
NOT_OWNED: frozenset[tuple[str, str]] = frozenset(
    {
        ("*", "fmt"),
        ("*", "extension"),
        ("*", "version"),
        ("*", "kind"),
        ("*", "register"),
        ("*", "element"),
        ("calendar", "year"),
        ("regions", "code"),
        ("services", "code"),
        ("offerings", "code"),
        ("opendata", "name"),
        ("action", "name"),
        ("open311", "service_code"),
        ("workorders", "key"),
        ("benefits-mine", "code"),
    }
)


Scopes = tuple[tuple[str | None, str | None], ...]


@dataclass(frozen=True)
class Owner:
    """Who an object belongs to: districts/departments and people; ``staff_read`` when every staff member
    may read it by design (the shared resource catalogue); ``public`` when anyone may reach it by design
    (Open311 requests, rating a desk) so only its personal data is judged."""

    scopes: tuple[tuple[str | None, str | None], ...] = ()  # (tenant, department)
    people: tuple[str, ...] = ()  # user ids, ID numbers or credit codes
    personal: tuple[str, ...] = ()  # strings that must not reach a non-entitled caller
    staff_read: bool = False
    anyone_read: bool = False
    public: bool = False


@dataclass
class Account:
    """A demo account as the oracle sees it: its own keys and its role scopes."""

    username: str
    kind: str
    people: set[str] = field(default_factory=set)
    scopes: list[tuple[str | None, str | None, bool]] = field(default_factory=list)

    @property
    def platform(self) -> bool:
        """Holds a role assigned city-wide without a tenant (the platform administrator)."""
        return any(tenant is None and department is None for tenant, department, _ in self.scopes)


def context_of(path: str) -> str:
    """The bounded context a path belongs to (its first segment after ``/api/v1``)."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        parts = parts[2:]
    elif parts[:1] == ["api"]:
        parts = parts[1:]
    head = parts[0]
    if head == "benefits" and "mine" in parts:
        return "benefits-mine"
    return head


def path_names(path: str) -> list[str]:
    """Every ``{name}`` of a path template (including ones the document forgot to declare)."""
    return re.findall(r"{([^}]+)}", path)


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation whose path has a parameter."""
    for path, item in doc["paths"].items():
        if not path_names(path):
            continue
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def minimal(doc: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> Any:
    """The smallest value that the schema accepts, as far as one can build it blindly."""
    schema = _resolve(doc, schema)
    if depth > 6:
        return None
    for option in schema.get("anyOf", ()) or schema.get("oneOf", ()):
        if _resolve(doc, option).get("type") != "null":
            return minimal(doc, option, depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: minimal(doc, props[name], depth + 1) for name in schema.get("required", ()) if name in props}
    if kind == "array":
        count = int(schema.get("minItems", 0))
        return [minimal(doc, schema.get("items", {}), depth + 1) for _ in range(count)]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    if fmt == "uuid":
        return str(uuid.UUID(int=1))
    if fmt == "date":
        return "2026-11-24"
    if fmt == "date-time":
        return "2026-11-24T08:00:00Z"
    return "核查" * max(1, int(schema.get("minLength", 1)))


def request_body(doc: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    """httpx keyword arguments for a minimal body of an operation (JSON or form), or none."""
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return {"json": minimal(doc, content["application/json"].get("schema", {}))}
    for media in ("multipart/form-data", "application/x-www-form-urlencoded"):
        if media in content:
            value = minimal(doc, content[media].get("schema", {}))
            return {"data": {k: str(v) for k, v in (value or {}).items() if not isinstance(v, (dict, list))}}
    return {}


class World:
    """The objects of the test database and their owners, read with plain SQL."""

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.session(write=False) as session:
            self.parents: dict[str, str | None] = dict(
                session.execute(text("select code, parent_code from tenants")).all()
            )

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """Rows of a query, as mappings."""
        with self.db.session(write=False) as session:
            return list(session.execute(text(sql), params).mappings().all())

    def covers(self, tenant: str | None, child: str | None) -> bool:
        """Whether ``child`` is ``tenant`` or lies under it."""
        while child is not None:
            if child == tenant:
                return True
            child = self.parents.get(child)
        return False


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


def _hex(value: Any) -> str:
    return uuid.UUID(str(value)).hex if value is not None else ""


def collect(world: World, extra: dict[str, Any]) -> dict[tuple[str, str], list[tuple[dict[str, str], Owner]]]:
    """Real values for each (context, parameter) with the owner of the object they name."""
    out: dict[tuple[str, str], list[tuple[dict[str, str], Owner]]] = {}

    def add(key: tuple[str, str], values: dict[str, str], owner: Owner) -> None:
        out.setdefault(key, []).append((values, owner))

    demo = {a.username for a in DEMO_ACCOUNTS}
    for row in world.rows("select id, username, tenant_code, department_code, id_number, phone from users"):
        if row["username"] in demo and row["username"] not in ("citizen", "pudong.window"):
            continue
        personal = tuple(v for v in (row["id_number"], row["phone"]) if v)
        owner = Owner(((row["tenant_code"], row["department_code"]),), (_hex(row["id"]),), personal)
        add(("identity", "user_id"), {"user_id": str(uuid.UUID(str(row["id"])))}, owner)
    for row in world.rows("select id, owner_department_code, grantee_department_code from access_grants"):
        scopes: Scopes = ((None, row["owner_department_code"]), (None, row["grantee_department_code"]))
        add(("identity", "grant_id"), {"grant_id": str(row["id"])}, Owner(scopes))
    add(("identity", "code"), {"code": "case_worker"}, Owner())  # roles are the platform's
    for row in world.rows("select code, department_code, tenant_code from lake_resources"):
        add(("lake", "code"), {"code": row["code"]}, Owner(((row["tenant_code"], row["department_code"]),)))
    for row in world.rows("select id, department_code, tenant_code from lake_loads"):
        add(("lake", "load_id"), {"load_id": str(row["id"])}, Owner(((row["tenant_code"], row["department_code"]),)))
    citizen_id = extra["citizen_id_number"]
    add(
        ("registers", "id_number"),
        {"id_number": citizen_id},
        Owner((("310000", "310000.ga"),), (citizen_id,), (extra["citizen_phone"],)),
    )
    add(
        ("registers", "credit_code"),
        {"credit_code": extra["credit_code"]},
        Owner((("310000", "310000.scjgj"),), (extra["credit_code"],)),
    )
    for row in world.rows(
        "select id, filer_id, filer_department_code, department_code, tenant_code, record_key from disputes"
    ):
        owner = Owner(
            ((row["tenant_code"], row["department_code"]), (None, row["filer_department_code"])),
            (_hex(row["filer_id"]),),
            (row["record_key"],),
        )
        add(("disputes", "dispute_id"), {"dispute_id": str(row["id"])}, owner)
        for att in world.rows("select id from dispute_attachments where dispute_id = :d", d=row["id"]):
            add(("disputes", "attachment_id"), {"dispute_id": str(row["id"]), "attachment_id": str(att["id"])}, owner)
    for row in world.rows("select code, provider_department_code, tenant_code from catalog_resources"):
        prefix, serial = row["code"].split("/")
        owner = Owner(((row["tenant_code"], row["provider_department_code"]),), staff_read=True)
        add(("catalog", "prefix"), {"prefix": prefix, "serial": serial}, owner)
        add(
            ("sharing", "prefix"),
            {"prefix": prefix, "serial": serial},
            Owner(((row["tenant_code"], row["provider_department_code"]),)),
        )
    for table in ("demands", "duties"):
        for row in world.rows(f"select id, department_code from catalog_{table}"):
            add(
                ("catalog", "entry_id"),
                {"kind": table, "entry_id": str(row["id"])},
                Owner(((None, row["department_code"]),)),
            )
    for row in world.rows(
        "select g.resource_code, g.owner_department_code, g.grantee_department_code, g.grantee_tenant_code "
        "from sharing_grants g where g.status = 'active'"
    ):
        prefix, serial = row["resource_code"].split("/")
        owner = Owner(
            ((None, row["owner_department_code"]), (row["grantee_tenant_code"], row["grantee_department_code"])),
            personal=(citizen_id,),
        )
        add(("share", "prefix"), {"prefix": prefix, "serial": serial, "key": citizen_id}, owner)
    for row in world.rows(
        "select id, owner_department_code, owner_tenant_code, requester_department_code, requester_tenant_code "
        "from sharing_requests"
    ):
        scopes = (
            (row["owner_tenant_code"], row["owner_department_code"]),
            (row["requester_tenant_code"], row["requester_department_code"]),
        )
        add(("sharing", "request_id"), {"request_id": str(row["id"])}, Owner(scopes))
    for row in world.rows(
        "select id, owner_department_code, grantee_department_code, grantee_tenant_code from sharing_grants"
    ):
        scopes = (
            (None, row["owner_department_code"]),
            (row["grantee_tenant_code"], row["grantee_department_code"]),
        )
        add(("sharing", "grant_id"), {"grant_id": str(row["id"])}, Owner(scopes))
    for row in world.rows("select id from sharing_notifications"):
        add(("sharing", "notification_id"), {"notification_id": str(row["id"])}, Owner())
    for row in world.rows("select id, applicant_user_id, applicant_key, tenant_code from cases"):
        tasks = world.rows("select tenant_code, department_code from case_tasks where case_id = :c", c=row["id"])
        scopes = ((row["tenant_code"], None), *((t["tenant_code"], t["department_code"]) for t in tasks))
        owner = Owner(scopes, (_hex(row["applicant_user_id"]), row["applicant_key"]), (row["applicant_key"],))
        add(("cases", "case_id"), {"case_id": str(row["id"])}, owner)
        add(("ratings", "case_id"), {"case_id": str(row["id"])}, Owner(people=owner.people))
    for row in world.rows("select id, tenant_code, department_code from case_tasks"):
        add(("tasks", "task_id"), {"task_id": str(row["id"])}, Owner(((row["tenant_code"], row["department_code"]),)))
    for row in world.rows("select licence_no, holder_id, issuer_department from issued_licences"):
        owner = Owner(((None, row["issuer_department"]),), (row["holder_id"],), (row["holder_id"],))
        add(("licences", "licence_no"), {"licence_no": row["licence_no"]}, owner)
    for row in world.rows(
        "select id, number, token, tenant_code, district_code, lead_unit, assisting_units, reporter_user_id, "
        "reporter_phone from work_orders order by created_at desc"
    ):
        units = (
            [row["lead_unit"], *(row["assisting_units"] or [])]
            if isinstance(row["assisting_units"], list)
            else [row["lead_unit"]]
        )
        scopes = ((row["tenant_code"], None), (row["district_code"], None), *((None, u) for u in units if u))
        personal = (row["reporter_phone"],) if row["reporter_phone"] else ()
        owner = Owner(scopes, (_hex(row["reporter_user_id"]),), personal)
        add(("workorders", "order_id"), {"order_id": str(row["id"]), "key": "x"}, owner)
        # public by design: only personal data is judged (the reporter tells the requests apart when picking)
        published = Owner(people=owner.people, personal=personal, public=True)
        add(("open311", "service_request_id"), {"service_request_id": row["number"]}, published)
        if row["token"]:
            add(("open311", "token"), {"token": row["token"]}, published)
    for row in world.rows("select id from wo_routing_rules order by id"):
        add(("workorders", "rule_id"), {"rule_id": str(row["id"])}, Owner())
    for row in world.rows("select code, department_code from benefit_policies"):
        # a policy's rules are published for everyone to read; only its department changes or runs it
        owner = Owner(((None, row["department_code"]),), anyone_read=True)
        add(("benefits", "code"), {"code": row["code"], "version": "1"}, owner)
    for row in world.rows(
        "select g.id, g.entity_key, p.department_code from benefit_grants g "
        "join benefit_policies p on p.code = g.policy_code order by g.id"
    ):
        owner = Owner(((None, row["department_code"]),), (row["entity_key"],), (row["entity_key"],))
        add(("benefits", "grant_id"), {"grant_id": str(row["id"])}, owner)
    for row in world.rows("select code, department_code, tenant_code from rating_desks"):
        add(("ratings", "code"), {"code": row["code"]}, Owner(((row["tenant_code"], row["department_code"]),)))
    for row in world.rows("select id, department_code, tenant_code from rectifications"):
        owner = Owner(((row["tenant_code"], row["department_code"]),))
        add(("ratings", "rectification_id"), {"rectification_id": str(row["id"])}, owner)
    for row in world.rows("select code from service_items order by code"):
        add(("ratings", "item_code"), {"item_code": row["code"]}, Owner())
    # a tenant's rating deadlines are configuration without personal data, read by staff city-wide
    add(("ratings", "scope"), {"scope": "310115"}, Owner((("310115", None),), staff_read=True))
    add(("ratings", "scope"), {"scope": "*"}, Owner(staff_read=True))
    for row in world.rows("select id, department_code, tenant_code from sensor_devices order by id"):
        add(("sensing", "device_id"), {"device_id": row["id"]}, Owner(((row["tenant_code"], row["department_code"]),)))
    return out


def accounts(world: World) -> list[Account]:
    """Every demo account with its keys and role scopes, read from the database."""
    found = []
    for spec in DEMO_ACCOUNTS:
        user = world.rows("select id, kind, id_number, credit_code from users where username = :u", u=spec.username)[0]
        account = Account(spec.username, user["kind"])
        account.people = {_hex(user["id"])} | {v for v in (user["id_number"], user["credit_code"]) if v}
        for role in world.rows(
            "select tenant_code, department_code, include_subtenants from role_assignments where user_id = :u",
            u=user["id"],
        ):
            account.scopes.append((role["tenant_code"], role["department_code"], bool(role["include_subtenants"])))
        found.append(account)
    # the narrowly scoped first, the platform administrator last: an entitled write may remove an object
    return sorted(found, key=lambda a: (a.platform, len(a.scopes) and a.kind == "staff"))


def entitled(world: World, account: Account, owner: Owner, method: str) -> bool:
    """The oracle: may this account reach this object at all (an over-approximation of every right)."""
    if account.platform or owner.public:
        return True
    if account.people & {p for p in owner.people if p}:
        return True
    if method == "get" and (owner.anyone_read or (owner.staff_read and account.kind == "staff")):
        return True
    for tenant, department, below in account.scopes:
        for obj_tenant, obj_department in owner.scopes:
            # an object owned by a department alone lies in that department's tenant (code before the dot)
            home = obj_tenant or (obj_department.split(".")[0] if obj_department else None)
            if department is not None:
                if department == obj_department:
                    return True
            elif home is not None and (tenant == home or (below and world.covers(tenant, home))):
                return True
    return False


def build_objects(client: httpx.Client, tokens: dict[str, str], other: str, app: FastAPI, db: Database) -> None:
    """Objects the seed has none of, made by their owners through the API (a licence through its service):
    work orders and Open311 requests of a district's centre and of two citizens, a case with its tasks, two
    licences, a dispute with evidence — of the demo citizen's and of ``other``, a citizen of another district
    (who alone has a record in the register to dispute), so that every account meets real objects of other
    districts and of other people."""
    admin = auth(tokens["admin"])
    body = {
        "channel": "hotline",
        "description": "人民广场路口路灯不亮",
        "caller_name": "李先生",
        "caller_phone": REPORTER_PHONE,
        **SQUARE,
    }
    made = client.post("/api/v1/workorders", json=body, headers=admin)
    assert made.status_code == 201, made.text
    for person in ("citizen", other):  # Open311 requests of two citizens: each has its token
        posted = client.post(
            "/open311/v2/requests.json",
            data={
                "api_key": tokens[person],
                "service_code": "01.01.001",
                "description": "小区门口垃圾满溢",
                "phone": REPORTER_PHONE,
                "lat": str(SQUARE["lat"]),
                "long": str(SQUARE["lng"]),
            },
        )
        assert posted.status_code == 201, posted.text
    with db.session(write=False) as session:
        keys = dict(
            session.execute(
                text("select username, id_number from users where username in ('citizen', :o)"), {"o": other}
            ).all()
        )
    for person in (other,):  # a dispute about one's own record (the demo citizen has none in the register)
        filed = client.post(
            "/api/v1/disputes",
            json={
                "register": "person",
                "record_key": keys[person],
                "element": "address",
                "proposed_value": "黄浦区南京东路街道1号",
                "reason": "已搬家",
            },
            headers=auth(tokens[person]),
        )
        assert filed.status_code == 201, filed.text
        evidence = client.post(
            f"/api/v1/disputes/{filed.json()['id']}/evidence",
            files=[("file", ("居住证明.pdf", pdf(), "application/pdf"))],
            headers=auth(tokens[person]),
        )
        assert evidence.status_code == 201, evidence.text
    applied = client.post(  # the other citizen's birth bundle: a case of their district, with its tasks
        "/api/v1/offerings/bundle/birth/applications",
        data={**BIRTH_FORM, "client_token": "authz-matrix"},
        files={"material:name:医疗机构分娩记录": ("分娩记录.pdf", pdf(), "application/pdf")},
        headers=auth(tokens[other]),
    )
    assert applied.status_code == 201, applied.text
    with db.session() as session:  # a licence of each citizen, by a department of a district
        for person, department in (("citizen", "310101.wj"), (other, "310115.wj")):
            licences.issue(
                session,
                app.state.settings,
                licence_type="出生医学证明",
                holder_id=keys[person],
                holder_name=person,
                issuer_department=department,
                issuer_name=department,
                particulars={"child_name": "王小宝"},
                source_ref=f"authz-matrix:{person}",
            )


def other_citizen(lake_dir: Path, db: Database) -> None:
    """Give ``OTHER_CITIZEN`` to a married resident of Pudong of the register at ``lake_dir`` (an age at which
    the birth bundle is theirs to apply for)."""
    married = read_current(lake_dir, "marriages")
    population = read_current(lake_dir, "population")
    assert married is not None
    assert population is not None
    person = (
        population.join(married.filter(pl.col("marital_status") == "已婚"), on="id_number")
        .filter(
            (pl.col("district_code") == "310115")
            & (pl.col("birth_date") > date(1986, 1, 1))
            & (pl.col("birth_date") < date(2000, 1, 1))
        )
        .row(0, named=True)
    )
    with db.session() as session:
        create_user(
            session,
            kind="citizen",
            username=OTHER_CITIZEN,
            display_name=person["name"],
            password=uuid.uuid4().hex + "Aa#1",
            id_number=person["id_number"],
            phone="13900002222",
        )


def auth(token: str) -> dict[str, str]:
    """The header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def pdf() -> bytes:
    """A one-page PDF that opens (the services check what they are given)."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@dataclass(frozen=True)
class Attempt:
    """One request of the matrix and its verdict."""

    account: str
    method: str
    path: str
    values: str
    status: int
    entitled: bool
    leak: str


def test_no_account_reaches_an_object_it_is_not_entitled_to(
    app: FastAPI,
    db: Database,
    client: httpx.Client,
    token_for: Callable[[str], str],
    region_index: RegionIndex,
    tmp_path: Path,
) -> None:
    # a lake and registers of this test's own (whatever other tests did to the shared database's register
    # versions before), with a citizen account for one of its people
    city = generate(region_index, CityConfig(persons=900, enterprises=120, seed=26, defect_rate=0.0))
    other_citizen(served_lake(tmp_path, db, city, region_index, app, ("person", "enterprise", "licence")), db)
    doc = app.openapi()
    world = World(db)
    people = accounts(world)
    tokens = {a.username: token_for(a.username) for a in (*people, Account(OTHER_CITIZEN, "citizen"))}
    build_objects(client, tokens, OTHER_CITIZEN, app, db)
    citizen = next(s for s in DEMO_ACCOUNTS if s.username == "citizen")
    enterprise = next(s for s in DEMO_ACCOUNTS if s.username == "enterprise")
    objects = collect(
        world,
        {
            "citizen_id_number": citizen.id_number,
            "citizen_phone": citizen.phone,
            "credit_code": enterprise.credit_code,
        },
    )

    unclassified: list[str] = []
    plan: list[tuple[str, str, dict[str, Any], list[tuple[dict[str, str], Owner]]]] = []
    tried: dict[tuple[str, str], list[Owner]] = {}
    for method, path, operation in operations(doc):
        ctx = context_of(path)
        owned = [n for n in path_names(path) if (ctx, n) not in NOT_OWNED and ("*", n) not in NOT_OWNED]
        if not owned:
            continue
        keys = [(ctx, n) for n in owned if (ctx, n) in objects or (ctx, n) in KNOWN_EMPTY]
        if not keys:
            unclassified.append(f"{method.upper()} {path}: {owned}")
            continue
        instances = pick([inst for key in keys[-1:] for inst in objects.get(key, [])])
        plan.append((method, path, operation, instances))
        tried.setdefault(keys[-1], []).extend(owner for _values, owner in instances)
    assert unclassified == [], "operations naming an object this matrix cannot source ids for"
    # every account meets real objects of these kinds that belong to someone else than the demo's own people
    demo_people = set().union(*(a.people for a in people))
    strangers = {key: [o for o in tried.get(key, []) if not demo_people & set(o.people)] for key in OTHERS_REAL}
    assert all(strangers.values()), f"kinds tried without another person's real object: {strangers}"

    # reads first, then writes, deletes last: an entitled write should not hide a later unentitled read
    order = {"get": 0, "put": 1, "patch": 1, "post": 2, "delete": 3}
    plan.sort(key=lambda p: order[p[0]])
    attempts: list[Attempt] = []
    no_ids: list[str] = []
    for method, path, operation, instances in plan:
        if not instances:
            no_ids.append(f"{method.upper()} {path}")
            instances = [({}, Owner())]
        kwargs = request_body(doc, operation)
        for values, owner in instances:
            url = fill(doc, path, values)
            for account in people:
                answer = client.request(
                    method.upper(), url, headers={"Authorization": f"Bearer {tokens[account.username]}"}, **kwargs
                )
                allowed = entitled(world, account, owner, method)
                leak = ""
                if not allowed:
                    if 200 <= answer.status_code < 300 and not owner.public:
                        leak = "2xx"
                    # a value the caller typed into the URL may come back (a problem's ``instance``): not a leak
                    found = [p for p in owner.personal if p and p in answer.text and p not in url]
                    if found:
                        leak = (leak + " personal:" + ",".join(found)).strip()
                attempts.append(Attempt(account.username, method.upper(), path, url, answer.status_code, allowed, leak))

    leaks = [a for a in attempts if a.leak]
    refused = Counter(a.status for a in attempts if not a.entitled and not a.leak)
    print(f"\n{len(attempts)} attempts, {len(leaks)} leaks; non-entitled answers: {dict(sorted(refused.items()))}")
    print("operations without a real id (probed with a made-up one):", no_ids)
    odd = [a for a in attempts if not a.entitled and not a.leak and a.status not in (401, 403, 404, 405, 409, 422)]
    for a in odd:
        print(f"  non-entitled answer {a.status}: {a.account} {a.method} {a.values}")
    for a in leaks:
        print(f"  LEAK {a.account:<18} {a.method:<6} {a.values:<90} {a.status} {a.leak}")
    assert len(attempts) >= MIN_ATTEMPTS
    assert leaks == []


# Kinds that every account must meet as real objects of another person (issue #26, point 8).
OTHERS_REAL: frozenset[tuple[str, str]] = frozenset(
    {
        ("cases", "case_id"),
        ("tasks", "task_id"),
        ("licences", "licence_no"),
        ("disputes", "dispute_id"),
        ("disputes", "attachment_id"),
        ("open311", "service_request_id"),
        ("open311", "token"),
        ("workorders", "order_id"),
    }
)

# (context, parameter) pairs that name owned objects which the demo may hold none of; probed with made-up ids.
# Cases, tasks, licences, disputes and Open311 requests are not among them: build_objects makes real ones.
KNOWN_EMPTY: frozenset[tuple[str, str]] = frozenset(
    {
        ("identity", "grant_id"),
        ("sharing", "notification_id"),
    }
)


def pick(instances: list[tuple[dict[str, str], Owner]]) -> list[tuple[dict[str, str], Owner]]:
    """A few objects of a kind: first ones of different districts/departments and people, then ones that differ
    in either (two citizens' disputes share their department, two Open311 requests share their publicity)."""
    chosen: list[tuple[dict[str, str], Owner]] = []
    scopes_seen: set[Scopes] = set()
    people_seen: set[tuple[str, ...]] = set()
    for strict in (True, False):
        for values, owner in instances:
            if len(chosen) == IDS_PER_KIND:
                return chosen
            people = tuple(p for p in owner.people if p)
            new_scopes, new_people = owner.scopes not in scopes_seen, people not in people_seen
            if (values, owner) in chosen or not ((new_scopes and new_people) if strict else (new_scopes or new_people)):
                continue
            chosen.append((values, owner))
            scopes_seen.add(owner.scopes)
            people_seen.add(people)
    return chosen


def fill(doc: dict[str, Any], path: str, values: dict[str, str]) -> str:
    """The path with real values, and a harmless filler for parameters that name no owned object."""
    fillers = {
        "fmt": "json",
        "extension": "json",
        "version": "1",
        "kind": values.get("kind", "bundle"),
        "register": "person",
        "element": "address",
        "key": values.get("key", "x"),
    }
    for name in path_names(path):
        value = values.get(name) or fillers.get(name) or str(uuid.UUID(int=7))
        path = path.replace("{" + name + "}", value)
    return path
