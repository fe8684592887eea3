"""The built-in resources: what each department delivers, with its schema, key and quality rules.

These are the resources of the demo city's departments. Until the catalog owns resource schemas,
they are seeded from here and can be changed in the database like any other data.
"""

from __future__ import annotations

from typing import Any

S, INT, NUM, D, T = "string", "integer", "number", "date", "datetime"


def _cols(*spec: tuple[str, str, bool]) -> list[dict[str, Any]]:
    return [{"name": name, "type": kind, "required": required} for name, kind, required in spec]


SEX = {"rule": "in_set", "column": "sex", "values": ["男", "女"]}
MARITAL = ["未婚", "已婚", "离婚", "丧偶"]
DISABILITIES = ["视力", "听力", "言语", "肢体", "智力", "精神", "多重"]

_DEPARTMENT_RESOURCES: tuple[dict[str, Any], ...] = (
    {
        "code": "population",
        "title": "户籍人口信息",
        "department_code": "310000.ga",
        "update_cycle_days": 1,
        "columns": _cols(
            ("id_number", S, True),
            ("name", S, True),
            ("sex", S, True),
            ("birth_date", D, True),
            ("household_no", S, True),
            ("relation", S, False),
            ("district_code", S, True),
            ("township_code", S, True),
            ("community_code", S, True),
            ("address", S, True),
            ("marital_status", S, False),
            ("updated_at", T, True),
        ),
        "key": ["id_number"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "id_number", "column": "id_number"},
            {"rule": "not_null", "column": "name"},
            SEX,
            {"rule": "date_range", "column": "birth_date", "min": "1900-01-01", "max": "today"},
            {"rule": "region", "column": "district_code", "level": "district"},
            {"rule": "region", "column": "community_code", "level": "community"},
            {"rule": "in_set", "column": "marital_status", "values": MARITAL},
            {"rule": "timeliness", "column": "updated_at", "days": 30},
        ],
    },
    {
        "code": "marriages",
        "title": "婚姻登记信息",
        "department_code": "310000.mz",
        "update_cycle_days": 1,
        "columns": _cols(
            ("id_number", S, True),
            ("name", S, True),
            ("marital_status", S, True),
            ("spouse_id_number", S, False),
            ("registered_on", D, False),
            ("updated_at", T, True),
        ),
        "key": ["id_number"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "id_number", "column": "id_number"},
            {"rule": "id_number", "column": "spouse_id_number", "hard": False},
            {"rule": "in_set", "column": "marital_status", "values": MARITAL},
            {"rule": "reference", "column": "id_number", "resource": "population", "to": "id_number"},
        ],
    },
    {
        "code": "births",
        "title": "出生医学证明信息",
        "department_code": "310000.wj",
        "update_cycle_days": 1,
        "columns": _cols(
            ("child_id_number", S, True),
            ("child_name", S, True),
            ("birth_date", D, True),
            ("sex", S, True),
            ("parent_id_number", S, False),
            ("birth_place", S, False),
            ("updated_at", T, True),
        ),
        "key": ["child_id_number"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "id_number", "column": "child_id_number"},
            SEX,
            {"rule": "date_range", "column": "birth_date", "min": "1990-01-01", "max": "today"},
            {"rule": "reference", "column": "parent_id_number", "resource": "population", "to": "id_number"},
        ],
    },
    {
        "code": "employment",
        "title": "就业与社保参保信息",
        "department_code": "310000.rs",
        "update_cycle_days": 7,
        "columns": _cols(
            ("id_number", S, True),
            ("name", S, True),
            ("employment_status", S, True),
            ("insurance_type", S, True),
            ("education", S, False),
            ("address", S, False),
            ("updated_at", T, True),
        ),
        "key": ["id_number"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "id_number", "column": "id_number"},
            {"rule": "in_set", "column": "employment_status", "values": ["就业", "失业", "退休", "在学"]},
            {"rule": "in_set", "column": "insurance_type", "values": ["城镇职工", "城乡居民", "未参保"]},
            {"rule": "not_null", "column": "education", "hard": False},
            {"rule": "reference", "column": "id_number", "resource": "population", "to": "id_number"},
        ],
    },
    {
        "code": "enterprises",
        "title": "企业登记信息",
        "department_code": "310000.sc",
        "update_cycle_days": 1,
        "columns": _cols(
            ("credit_code", S, True),
            ("name", S, True),
            ("industry_section", S, True),
            ("registered_capital_fen", INT, True),
            ("legal_representative_id", S, False),
            ("legal_representative_name", S, False),
            ("district_code", S, True),
            ("address", S, True),
            ("established_on", D, True),
            ("status", S, True),
            ("updated_at", T, True),
        ),
        "key": ["credit_code"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "credit_code", "column": "credit_code"},
            {"rule": "not_null", "column": "name"},
            {"rule": "pattern", "column": "industry_section", "regex": "^[A-T]$"},
            {"rule": "range", "column": "registered_capital_fen", "min": 0},
            {"rule": "not_null", "column": "legal_representative_id", "hard": False},
            {"rule": "reference", "column": "legal_representative_id", "resource": "population", "to": "id_number"},
            {"rule": "region", "column": "district_code", "level": "district"},
            {"rule": "in_set", "column": "status", "values": ["存续", "注销", "吊销"]},
        ],
    },
    {
        "code": "standard_addresses",
        "title": "标准地址信息",
        "department_code": "310000.gh",
        "update_cycle_days": 30,
        "columns": _cols(
            ("address", S, True),
            ("district_code", S, True),
            ("lng", NUM, False),
            ("lat", NUM, False),
            ("updated_at", T, True),
        ),
        "key": ["address"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "not_null", "column": "address"},
            {"rule": "region", "column": "district_code", "level": "district"},
            # WGS-84 / CGCS2000 degrees; the box is the city's with a margin, so swapped pairs fail.
            {"rule": "range", "column": "lng", "min": 120.8, "max": 122.3},
            {"rule": "range", "column": "lat", "min": 30.6, "max": 31.95},
            {"rule": "not_null", "column": "lng", "hard": False},
        ],
    },
    {
        "code": "tax_registrations",
        "title": "税务登记信息",
        "department_code": "310000.swj",
        "update_cycle_days": 30,
        "columns": _cols(
            ("credit_code", S, True),
            ("name", S, True),
            ("tax_status", S, True),
            ("employees", INT, False),
            ("updated_at", T, True),
        ),
        "key": ["credit_code"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "credit_code", "column": "credit_code"},
            {"rule": "in_set", "column": "tax_status", "values": ["正常", "非正常"]},
            {"rule": "range", "column": "employees", "min": 0},
            {"rule": "reference", "column": "credit_code", "resource": "enterprises", "to": "credit_code"},
        ],
    },
)

# What the benefit policies (免申即享) read besides the base deliveries.
_BENEFIT_RESOURCES: tuple[dict[str, Any], ...] = (
    {
        "code": "disabilities",
        "title": "残疾人证信息",
        "department_code": "310000.cl",
        "update_cycle_days": 7,
        "columns": _cols(
            ("id_number", S, True),
            ("disability_category", S, True),
            ("disability_level", INT, True),
            ("certified_on", D, True),
            ("updated_at", T, True),
        ),
        "key": ["id_number"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "id_number", "column": "id_number"},
            {"rule": "in_set", "column": "disability_category", "values": DISABILITIES},
            {"rule": "range", "column": "disability_level", "min": 1, "max": 4},
            {"rule": "reference", "column": "id_number", "resource": "population", "to": "id_number"},
        ],
    },
    {
        "code": "graduates",
        "title": "高校毕业生信息",
        "department_code": "310000.jw",
        "update_cycle_days": 30,
        "columns": _cols(
            ("id_number", S, True),
            ("school", S, True),
            ("degree", S, True),
            ("graduated_on", D, True),
            ("updated_at", T, True),
        ),
        "key": ["id_number"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "id_number", "column": "id_number"},
            {"rule": "in_set", "column": "degree", "values": ["专科", "本科", "硕士", "博士"]},
            {"rule": "date_range", "column": "graduated_on", "min": "1950-01-01", "max": "today"},
        ],
    },
    {
        "code": "assistance",
        "title": "社会救助对象信息",
        "department_code": "310000.mz",
        "update_cycle_days": 7,
        "columns": _cols(
            ("id_number", S, True),
            ("assistance_type", S, True),
            ("since", D, True),
            ("updated_at", T, True),
        ),
        "key": ["id_number"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "id_number", "column": "id_number"},
            {"rule": "in_set", "column": "assistance_type", "values": ["低保", "低收入", "特困"]},
            {"rule": "reference", "column": "id_number", "resource": "population", "to": "id_number"},
        ],
    },
    {
        "code": "enterprise_insurance",
        "title": "单位参保信息",
        "department_code": "310000.rs",
        "update_cycle_days": 30,
        "columns": _cols(
            ("credit_code", S, True),
            ("insured_now", INT, True),
            ("insured_last_year", INT, True),
            ("arrears_months", INT, True),
            ("updated_at", T, True),
        ),
        "key": ["credit_code"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "credit_code", "column": "credit_code"},
            {"rule": "range", "column": "insured_now", "min": 0},
            {"rule": "range", "column": "insured_last_year", "min": 0},
            {"rule": "range", "column": "arrears_months", "min": 0},
            {"rule": "reference", "column": "credit_code", "resource": "enterprises", "to": "credit_code"},
        ],
    },
    {
        "code": "enterprise_leases",
        "title": "国有房屋租赁信息",
        "department_code": "310000.gzw",
        "update_cycle_days": 30,
        "columns": _cols(
            ("credit_code", S, True),
            ("landlord_type", S, True),
            ("monthly_rent_fen", INT, True),
            ("lease_until", D, True),
            ("updated_at", T, True),
        ),
        "key": ["credit_code"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "credit_code", "column": "credit_code"},
            {"rule": "in_set", "column": "landlord_type", "values": ["国有", "集体"]},
            {"rule": "range", "column": "monthly_rent_fen", "min": 0},
        ],
    },
    {
        "code": "tax_returns",
        "title": "企业所得税年度申报信息",
        "department_code": "310000.swj",
        "update_cycle_days": 365,
        "columns": _cols(
            ("credit_code", S, True),
            ("tax_year", INT, True),
            ("revenue_fen", INT, True),
            ("updated_at", T, True),
        ),
        "key": ["credit_code"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "credit_code", "column": "credit_code"},
            {"rule": "range", "column": "revenue_fen", "min": 0},
        ],
    },
)

_LICENCE_RESOURCES: tuple[dict[str, Any], ...] = tuple(
    {
        "code": code,
        "title": title,
        "department_code": department,
        "update_cycle_days": 1,
        "columns": _cols(
            ("licence_no", S, True),
            ("licence_type", S, True),
            ("holder_id", S, True),
            ("holder_name", S, True),
            ("issued_on", D, True),
            ("expires_on", D, False),
            ("trust_level", S, True),
            ("updated_at", T, True),
        ),
        "key": ["licence_no"],
        "updated_column": "updated_at",
        "rules": [
            {"rule": "not_null", "column": "holder_id"},
            {"rule": "in_set", "column": "trust_level", "values": ["A", "B", "C", "D"]},
            {"rule": "date_range", "column": "issued_on", "min": "1950-01-01", "max": "today"},
        ],
    }
    for code, title, department in (
        ("licences_id_card", "居民身份证电子证照", "310000.ga"),
        ("licences_hukou", "户口簿电子证照", "310000.ga"),
        ("licences_marriage", "结婚证电子证照", "310000.mz"),
        ("licences_birth", "出生医学证明电子证照", "310000.wj"),
        ("licences_social_security", "社会保障卡电子证照", "310000.rs"),
        ("licences_business", "营业执照电子证照", "310000.sc"),
        ("licences_food", "食品经营许可证电子证照", "310000.sc"),
    )
)

BUILTIN_RESOURCES: tuple[dict[str, Any], ...] = (*_DEPARTMENT_RESOURCES, *_BENEFIT_RESOURCES, *_LICENCE_RESOURCES)
