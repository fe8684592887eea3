"""Tenants and departments: the built-in Shanghai list and read functions.

Department codes are ``<tenant code>.<key>`` — e.g. ``310000.mz`` (市民政局) and ``310115.mz``
(浦东新区民政局) — so a code tells its tenant and its counterpart at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from shgov.core.orgs.models import Department, Tenant
from shgov.core.regions.service import RegionIndex

# (key, full name, short name, district name pattern or None when the district has no counterpart).
# ``{d}`` is the district's name (浦东新区), ``{s}`` its short form (浦东).
MUNICIPAL_DEPARTMENTS: tuple[tuple[str, str, str, str | None], ...] = (
    ("bgt", "上海市人民政府办公厅", "市政府办公厅", "{d}人民政府办公室"),
    ("fgw", "上海市发展和改革委员会", "市发展改革委", "{d}发展和改革委员会"),
    ("jxw", "上海市经济和信息化委员会", "市经济信息化委", None),
    ("swei", "上海市商务委员会", "市商务委", "{d}商务委员会"),
    ("jw", "上海市教育委员会", "市教委", "{d}教育局"),
    ("kw", "上海市科学技术委员会", "市科委", "{d}科学技术委员会"),
    ("mzzj", "上海市民族和宗教事务局", "市民宗局", None),
    ("ga", "上海市公安局", "市公安局", "上海市公安局{s}分局"),
    ("mz", "上海市民政局", "市民政局", "{d}民政局"),
    ("sf", "上海市司法局", "市司法局", "{d}司法局"),
    ("cz", "上海市财政局", "市财政局", "{d}财政局"),
    ("rs", "上海市人力资源和社会保障局", "市人社局", "{d}人力资源和社会保障局"),
    ("gh", "上海市规划和自然资源局", "市规划资源局", "{d}规划和自然资源局"),
    ("sthj", "上海市生态环境局", "市生态环境局", "{d}生态环境局"),
    ("zj", "上海市住房和城乡建设管理委员会", "市住建委", "{d}建设和管理委员会"),
    ("jt", "上海市交通委员会", "市交通委", None),
    ("nw", "上海市农业农村委员会", "市农业农村委", None),
    ("shui", "上海市水务局", "市水务局", None),
    ("wl", "上海市文化和旅游局", "市文化旅游局", "{d}文化和旅游局"),
    ("wj", "上海市卫生健康委员会", "市卫健委", "{d}卫生健康委员会"),
    ("tyjr", "上海市退役军人事务局", "市退役军人局", "{d}退役军人事务局"),
    ("yj", "上海市应急管理局", "市应急局", "{d}应急管理局"),
    ("sj", "上海市审计局", "市审计局", None),
    ("gzw", "上海市国有资产监督管理委员会", "市国资委", None),
    ("sc", "上海市市场监督管理局", "市市场监管局", "{d}市场监督管理局"),
    ("ty", "上海市体育局", "市体育局", "{d}体育局"),
    ("tj", "上海市统计局", "市统计局", "{d}统计局"),
    ("yb", "上海市医疗保障局", "市医保局", "{d}医疗保障局"),
    ("lh", "上海市绿化和市容管理局", "市绿化市容局", "{d}绿化和市容管理局"),
    ("fg", "上海市房屋管理局", "市房管局", "{d}住房保障和房屋管理局"),
    ("wb", "上海市人民政府外事办公室", "市政府外办", None),
    ("hzjl", "上海市人民政府合作交流办公室", "市政府合作交流办", None),
    ("jgsw", "上海市机关事务管理局", "市机管局", None),
    ("mf", "上海市民防办公室", "市民防办", None),
    ("lswz", "上海市粮食和物资储备局", "市粮食物资局", None),
    ("yp", "上海市药品监督管理局", "市药品监管局", None),
    ("zscq", "上海市知识产权局", "市知识产权局", None),
    ("cgzf", "上海市城市管理行政执法局", "市城管执法局", "{d}城市管理行政执法局"),
    ("dsj", "上海市大数据中心", "市大数据中心", "{d}大数据中心"),
    ("cy", "上海市城市运行管理中心", "市城运中心", "{d}城市运行管理中心"),
    ("swj", "国家税务总局上海市税务局", "市税务局", "国家税务总局上海市{s}税务局"),
    ("gjj", "上海市住房公积金管理中心", "市公积金中心", None),
    ("xf", "上海市消防救援总队", "市消防救援总队", "上海市{s}消防救援支队"),
    ("cl", "上海市残疾人联合会", "市残联", "{d}残疾人联合会"),
    ("da", "上海市档案局", "市档案局", "{d}档案局"),
)


@dataclass(frozen=True)
class DepartmentInfo:
    """A department as callers see it."""

    code: str
    key: str
    name: str
    short_name: str
    tenant_code: str
    counterpart_code: str | None

    @property
    def department_code(self) -> str:
        """The department's own code (so a department is scoped like the objects it owns)."""
        return self.code


def _short_district(name: str) -> str:
    for suffix in ("新区", "区"):
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name.removesuffix(suffix)
    return name


def department_code(tenant_code: str, key: str) -> str:
    """The code of department ``key`` in ``tenant_code``."""
    return f"{tenant_code}.{key}"


def seed_organisations(session: Session, index: RegionIndex) -> dict[str, int]:
    """Create the tenants (city + districts) and the departments from the built-in list (idempotent)."""
    if index.city is None:
        raise ValueError("divisions must be loaded before organisations")
    city = index.city
    existing_tenants = {t.code for t in session.scalars(select(Tenant))}
    existing_departments = {d.code for d in session.scalars(select(Department))}
    tenants = departments = 0
    if city.code not in existing_tenants:
        session.add(Tenant(code=city.code, name=city.name, kind="city", parent_code=None))
        tenants += 1
    session.flush()
    for key, name, short, _pattern in MUNICIPAL_DEPARTMENTS:
        code = department_code(city.code, key)
        if code not in existing_departments:
            session.add(Department(code=code, key=key, name=name, short_name=short, tenant_code=city.code))
            departments += 1
    for district in index.children_of(city.code):
        if district.level != "district":
            continue
        if district.code not in existing_tenants:
            session.add(Tenant(code=district.code, name=district.name, kind="district", parent_code=city.code))
            tenants += 1
        session.flush()
        short_district = _short_district(district.name)
        for key, _name, short, pattern in MUNICIPAL_DEPARTMENTS:
            code = department_code(district.code, key)
            if pattern is None or code in existing_departments:
                continue
            full = pattern.format(d=district.name, s=short_district)
            session.add(
                Department(
                    code=code,
                    key=key,
                    name=full,
                    short_name=f"{short_district}{short.removeprefix('市')}",
                    tenant_code=district.code,
                    counterpart_code=department_code(city.code, key),
                )
            )
            departments += 1
        for township in index.children_of(district.code):
            code = township_office_code(district.code, township.code)
            if township.level != "township" or code in existing_departments:
                continue
            office = "街道办事处" if township.name.endswith("街道") else "人民政府"
            session.add(
                Department(
                    code=code,
                    key=code.split(".", 1)[1],
                    name=f"{district.name}{township.name}{office}",
                    short_name=township.name,
                    tenant_code=district.code,
                )
            )
            departments += 1
    session.flush()
    return {"tenants": tenants, "departments": departments}


TOWNSHIP_PREFIX = "jd"


def township_office_code(district_code: str, township_code: str) -> str:
    """The department code of a township's office (街道办事处 / 镇人民政府) within its district."""
    suffix = township_code.removeprefix(district_code) if township_code.startswith(district_code) else township_code
    return department_code(district_code, f"{TOWNSHIP_PREFIX}{suffix}")


def is_township_office(code: str) -> bool:
    """Whether a department code names a township's office."""
    return code.split(".", 1)[-1].startswith(TOWNSHIP_PREFIX)


def _info(row: Department) -> DepartmentInfo:
    return DepartmentInfo(row.code, row.key, row.name, row.short_name, row.tenant_code, row.counterpart_code)


def list_departments(session: Session, tenant_code: str | None = None) -> list[DepartmentInfo]:
    """Departments, optionally of one tenant, by code."""
    query = select(Department).order_by(Department.code)
    if tenant_code is not None:
        query = query.where(Department.tenant_code == tenant_code)
    return [_info(row) for row in session.scalars(query)]


def find_department(session: Session, code: str) -> DepartmentInfo | None:
    """The department with ``code``."""
    row = session.get(Department, code)
    return _info(row) if row else None


def department_codes(session: Session) -> set[str]:
    """The codes of every department (one query, for checking many codes at once)."""
    return set(session.scalars(select(Department.code)))


def tenant_parents(session: Session) -> dict[str, str | None]:
    """Each tenant's parent tenant (the city has none)."""
    return {t.code: t.parent_code for t in session.scalars(select(Tenant))}


def list_tenants(session: Session) -> list[tuple[str, str, str]]:
    """(code, name, kind) of every tenant, by code."""
    return [(t.code, t.name, t.kind) for t in session.scalars(select(Tenant).order_by(Tenant.code))]
