"""Built-in roles and the demo city's accounts (one per role)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from shgov.core.identity import permissions as perm
from shgov.core.identity.models import User
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import assign_role, create_user, define_role

# Roles are data: these are the starting set, which administrators change at run time. Later modules
# add their actions to them when they land.
BUILTIN_ROLES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("platform_admin", "平台管理员", "Platform administrator", ("*",)),
    ("auditor", "安全审计员", "Security auditor", (perm.AUDIT_READ, perm.AUDIT_VERIFY)),
    (
        "district_admin",
        "区管理员",
        "District administrator",
        (
            perm.USER_READ,
            perm.USER_READ_PERSONAL,
            perm.USER_MANAGE,
            perm.ROLE_ASSIGN,
            perm.GRID_MANAGE,
            perm.CLIENT_MANAGE,
        ),
    ),
    (
        "department_admin",
        "部门管理员",
        "Department administrator",
        (perm.USER_READ, perm.USER_MANAGE, perm.ROLE_ASSIGN, perm.GRANT_MANAGE, perm.CLIENT_MANAGE),
    ),
    ("window_clerk", "窗口受理人员", "Window clerk", (perm.USER_READ, perm.USER_PROOF)),
    ("case_worker", "审批经办人员", "Case worker", (perm.USER_READ,)),
    ("data_officer", "数据专员", "Data officer", ()),
    ("ops_operator", "城运值班员", "Operations centre operator", (perm.USER_READ, perm.GRID_MANAGE)),
)

DEMO_PASSWORD = "Shgov@2026demo"  # noqa: S105 - printed for the demo; dev only


@dataclass(frozen=True)
class DemoAccountSpec:
    """One demo sign-in."""

    username: str
    display_name: str
    kind: str
    role: str
    tenant_code: str | None
    department_code: str | None
    include_subtenants: bool = False
    id_number: str | None = None
    credit_code: str | None = None
    phone: str | None = None


DEMO_ACCOUNTS: tuple[DemoAccountSpec, ...] = (
    DemoAccountSpec("admin", "平台管理员", "staff", "platform_admin", "310000", "310000.dsj"),
    DemoAccountSpec("auditor", "审计员 王敏", "staff", "auditor", "310000", "310000.dsj", include_subtenants=True),
    DemoAccountSpec("pudong.admin", "浦东新区管理员 李强", "staff", "district_admin", "310115", None),
    DemoAccountSpec("huangpu.admin", "黄浦区管理员 陈静", "staff", "district_admin", "310101", None),
    DemoAccountSpec("minzheng.admin", "市民政局管理员 赵磊", "staff", "department_admin", "310000", "310000.mz"),
    DemoAccountSpec("pudong.window", "浦东新区民政局窗口 刘芳", "staff", "window_clerk", "310115", "310115.mz"),
    DemoAccountSpec("pudong.caseworker", "浦东新区人社局经办 周杰", "staff", "case_worker", "310115", "310115.rs"),
    DemoAccountSpec(
        "data.officer",
        "市大数据中心数据专员 孙悦",
        "staff",
        "data_officer",
        "310000",
        "310000.dsj",
        include_subtenants=True,
    ),
    DemoAccountSpec(
        "ops.operator",
        "市城运中心值班员 吴昊",
        "staff",
        "ops_operator",
        "310000",
        "310000.cy",
        include_subtenants=True,
    ),
    DemoAccountSpec(
        "citizen",
        "张伟",
        "citizen",
        "citizen",
        None,
        None,
        id_number="31010419900307123X",
        phone="13812345678",
    ),
    DemoAccountSpec(
        "enterprise",
        "上海申城示范科技有限公司",
        "enterprise",
        "enterprise",
        None,
        None,
        credit_code="91310115MA1K4LXE3Y",
    ),
)


def seed_roles(session: Session) -> int:
    """Create or refresh the built-in roles."""
    for code, name, name_en, actions in BUILTIN_ROLES:
        define_role(session, code, name, actions, name_en)
    return len(BUILTIN_ROLES)


def seed_demo_accounts(session: Session) -> int:
    """Create the demo accounts that do not exist yet; returns how many were created."""
    created = 0
    for spec in DEMO_ACCOUNTS:
        if session.scalar(select(User.id).where(User.username == spec.username)) is not None:
            continue
        user = create_user(
            session,
            kind=spec.kind,
            username=spec.username,
            display_name=spec.display_name,
            password=DEMO_PASSWORD,
            tenant_code=spec.tenant_code,
            department_code=spec.department_code,
            id_number=spec.id_number,
            credit_code=spec.credit_code,
            phone=spec.phone,
        )
        if spec.kind == "staff":
            assign_role(session, user.id, spec.role, _scope_of(spec))
        created += 1
    return created


def _scope_of(spec: DemoAccountSpec) -> Scope:
    # Platform administrators act everywhere; district administrators and city-wide roles within their
    # tenant (and its districts where said); department staff within their department.
    if spec.role == "platform_admin":
        return Scope(None, None)
    if spec.department_code is None or spec.include_subtenants:
        return Scope(spec.tenant_code, None, spec.include_subtenants)
    return Scope(spec.tenant_code, spec.department_code)


def demo_accounts() -> list[tuple[str, str, str]]:
    """(username, password, role) of every demo account, for the console and the dev sign-in page."""
    names = {code: name for code, name, _en, _actions in BUILTIN_ROLES} | {
        "citizen": "市民",
        "enterprise": "企业用户",
    }
    return [(spec.username, DEMO_PASSWORD, names[spec.role]) for spec in DEMO_ACCOUNTS]
