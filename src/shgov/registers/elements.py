"""一数一源: every element of every register, with its one authoritative source and the other
departments that deliver the same element (kept as references and compared for conflicts).

Declarations are data; the source department of a resource comes from the lake.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Element:
    """A data element of a register."""

    name: str
    source: tuple[str, str] | None  # (resource, column) of the authoritative department
    references: tuple[tuple[str, str], ...] = ()
    when_absent: str | None = None  # value when the authoritative source has no record (e.g. 未婚)
    description: str = ""


@dataclass(frozen=True)
class RegisterDef:
    """A register: its key, the resource whose records make up its population, and its elements."""

    code: str
    title: str
    key: str
    base: str
    elements: tuple[Element, ...]

    def element(self, name: str) -> Element | None:
        """The element called ``name``."""
        return next((e for e in self.elements if e.name == name), None)


PERSON = RegisterDef(
    code="person",
    title="自然人综合库",
    key="id_number",
    base="population",
    elements=(
        Element("name", ("population", "name"), (("employment", "name"), ("marriages", "name")), description="姓名"),
        Element("sex", ("population", "sex"), (("births", "sex"),), description="性别"),
        Element("birth_date", ("population", "birth_date"), (("births", "birth_date"),), description="出生日期"),
        Element("household_no", ("population", "household_no"), description="户号"),
        Element("relation", ("population", "relation"), description="与户主关系"),
        Element("district_code", ("population", "district_code"), description="户籍所在区"),
        Element("township_code", ("population", "township_code"), description="户籍所在街镇"),
        Element("community_code", ("population", "community_code"), description="户籍所在居村"),
        Element("address", ("population", "address"), (("employment", "address"),), description="住址"),
        Element(
            "marital_status",
            ("marriages", "marital_status"),
            (("population", "marital_status"),),
            when_absent="未婚",
            description="婚姻状况",
        ),
        Element("spouse_id_number", ("marriages", "spouse_id_number"), description="配偶身份证号"),
        Element("education", ("employment", "education"), description="学历"),
        Element("employment_status", ("employment", "employment_status"), description="就业状态"),
        Element("insurance_type", ("employment", "insurance_type"), description="参保类型"),
        Element(
            "disability_category", ("disabilities", "disability_category"), when_absent="无", description="残疾类别"
        ),
        Element("disability_level", ("disabilities", "disability_level"), description="残疾等级 (1 最重)"),
        Element("degree", ("graduates", "degree"), description="最高学位 (高校毕业生)"),
        Element("graduated_on", ("graduates", "graduated_on"), description="毕业日期"),
        Element("assistance_type", ("assistance", "assistance_type"), when_absent="无", description="社会救助类别"),
        Element("assistance_since", ("assistance", "since"), description="救助起始日期"),
        Element("phone", None, description="联系电话 (collected by several departments; no authoritative source yet)"),
    ),
)

ENTERPRISE = RegisterDef(
    code="enterprise",
    title="法人综合库",
    key="credit_code",
    base="enterprises",
    elements=(
        Element("name", ("enterprises", "name"), (("tax_registrations", "name"),), description="名称"),
        Element("industry_section", ("enterprises", "industry_section"), description="行业门类"),
        Element("registered_capital_fen", ("enterprises", "registered_capital_fen"), description="注册资本 (分)"),
        Element("legal_representative_id", ("enterprises", "legal_representative_id"), description="法定代表人"),
        Element(
            "legal_representative_name", ("enterprises", "legal_representative_name"), description="法定代表人姓名"
        ),
        Element("district_code", ("enterprises", "district_code"), description="登记所在区"),
        Element("address", ("enterprises", "address"), description="住所"),
        Element("established_on", ("enterprises", "established_on"), description="成立日期"),
        Element("status", ("enterprises", "status"), description="登记状态"),
        Element("tax_status", ("tax_registrations", "tax_status"), description="纳税状态"),
        Element("employees", ("tax_registrations", "employees"), description="从业人数"),
        Element("insured_now", ("enterprise_insurance", "insured_now"), description="参保职工人数"),
        Element("insured_last_year", ("enterprise_insurance", "insured_last_year"), description="上年末参保职工人数"),
        Element("insurance_arrears_months", ("enterprise_insurance", "arrears_months"), description="社保欠费月数"),
        Element("landlord_type", ("enterprise_leases", "landlord_type"), when_absent="无", description="承租房屋产权"),
        Element("monthly_rent_fen", ("enterprise_leases", "monthly_rent_fen"), description="月租金 (分)"),
        Element("revenue_fen", ("tax_returns", "revenue_fen"), description="上年营业收入 (分)"),
    ),
)

REGISTERS: dict[str, RegisterDef] = {r.code: r for r in (PERSON, ENTERPRISE)}

LICENCE_RESOURCES = (
    "licences_id_card",
    "licences_hukou",
    "licences_marriage",
    "licences_birth",
    "licences_social_security",
    "licences_business",
    "licences_food",
)


def coverage() -> dict[str, float]:
    """Share of each register's elements that have an authoritative source (the target is ≥ 80 %)."""
    result = {}
    for register in REGISTERS.values():
        with_source = sum(1 for e in register.elements if e.source is not None)
        result[register.code] = round(100.0 * with_source / len(register.elements), 1)
    all_elements = [e for r in REGISTERS.values() for e in r.elements]
    result["all"] = round(100.0 * sum(1 for e in all_elements if e.source) / len(all_elements), 1)
    return result
