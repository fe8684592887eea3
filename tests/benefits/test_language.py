"""The policy language: checked against the schema with positions, compiled to SQL that DuckDB and PostgreSQL
evaluate identically, exact to the fen, with missing data explained rather than crashing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb
import pytest
from sqlalchemy import Connection, create_engine, text

from shgov.benefits.language import (
    Checked,
    Compiled,
    Dates,
    Entity,
    PolicyError,
    Relation,
    Schema,
    Source,
    check,
    compile_many,
    compile_policy,
)

SCHEMA = Schema(
    {
        "person": Entity(
            "person",
            "id_number",
            {
                "id_number": "text",
                "name": "text",
                "birth_date": "date",
                "household_no": "text",
                "district_code": "text",
                "disability_level": "int",
                "monthly_income": "decimal",
                "employer_code": "text",
                "graduated": "bool",
            },
            {"household": Relation("person", "household_no", "household_no")},
        ),
        "enterprise": Entity(
            "enterprise",
            "credit_code",
            {
                "credit_code": "text",
                "established_on": "date",
                "employees_last_year": "int",
                "rent": "decimal",
                "status": "text",
                "rep_id": "text",
            },
            {
                "employees": Relation("person", "credit_code", "employer_code"),
                "representative": Relation("person", "rep_id", "id_number", one=True),
            },
        ),
    }
)
COLUMNS = {
    "person": [
        ("id_number", "VARCHAR(18)"),
        ("name", "VARCHAR(40)"),
        ("birth_date", "DATE"),
        ("household_no", "VARCHAR(20)"),
        ("district_code", "VARCHAR(6)"),
        ("disability_level", "BIGINT"),
        ("monthly_income", "DECIMAL(18,2)"),
        ("employer_code", "VARCHAR(18)"),
        ("graduated", "BOOLEAN"),
    ],
    "enterprise": [
        ("credit_code", "VARCHAR(18)"),
        ("established_on", "DATE"),
        ("employees_last_year", "BIGINT"),
        ("rent", "DECIMAL(18,2)"),
        ("status", "VARCHAR(10)"),
        ("rep_id", "VARCHAR(18)"),
    ],
}
D = dt.date
ROWS: dict[str, list[tuple[Any, ...]]] = {
    "person": [
        ("P1", "百岁", D(1925, 3, 1), "H1", "310115", None, None, None, False),
        ("P2", "闰日", D(2000, 2, 29), "H1", "310115", 1, "3333.33", "E1", True),
        ("P3", "新生", D(2026, 5, 20), "H1", "310115", None, None, None, False),
        ("P4", "无生日", None, "H2", "310101", 2, "1000.00", "E1", False),
        ("P5", "八十", D(1946, 11, 24), "H2", "310101", None, "0.00", "E2", True),
        ("P6", "七十九", D(1946, 11, 25), "H3", "310104", None, "-12.34", "E2", None),
    ],
    "enterprise": [
        ("E1", D(2020, 1, 1), 2, "10000.00", "存续", "P2"),
        ("E2", D(2025, 12, 31), 0, "3333.33", "存续", "NOBODY"),
        ("E3", None, None, None, "注销", None),
    ],
}
DATES = Dates(D(2026, 11, 24), D(2026, 1, 1), D(2026, 12, 31))
POLICIES = {
    "elderly": Source(
        "elderly",
        "person",
        ("age(birth_date) >= 80",),
        "if age(birth_date) >= 100 then 1500 elif age(birth_date) >= 90 then 750.50 else 75.25",
    ),
    "newborn_household": Source(
        "newborn_household",
        "person",
        ("count(household where age(birth_date) < 1) >= 1", 'district_code in ["310115", "310101"]'),
        "1000 / 3",
    ),
    "low_income_disabled": Source(
        "low_income_disabled",
        "person",
        ("disability_level <= 2 and monthly_income < 2000.00 * 1.5", "not missing(disability_level)"),
        'monthly_income * 0.1 + amount("elderly")',
    ),
    "rent_relief": Source(
        "rent_relief",
        "enterprise",
        (
            'status == "存续"',
            "months_between(established_on, as_of) >= 12",
            "any(employees where graduated)",
            "count(employees) >= employees_last_year",
        ),
        "least(rent / 3, 5000) + sum(employees.monthly_income where monthly_income > 0) * 0.05",
    ),
    "young_representative": Source(
        "young_representative",
        "enterprise",
        ("any(representative where age(birth_date) < 35)", "all(representative where graduated)"),
        "count(representative) * 100 + sum(representative.monthly_income)"
        " + coalesce(min(representative.disability_level), 0)",
    ),
    "any_graduate_household": Source(
        "any_graduate_household",
        "person",
        ('all(household where policy("elderly") or age(birth_date) < 90)', "days_between(birth_date, as_of) > 0"),
        "-year(birth_date) + year(as_of) + 0.0001",
    ),
}


def _resolve(code: str) -> Source | None:
    return POLICIES.get(code)


def _checked(code: str) -> Checked:
    return check(SCHEMA, POLICIES[code], _resolve)


def _duckdb() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for table, columns in COLUMNS.items():
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns)})")
        marks = ", ".join("?" for _ in columns)
        con.executemany(f"INSERT INTO {table} VALUES ({marks})", ROWS[table])
    return con


@pytest.fixture(scope="module")
def postgres(postgresql_database: str) -> Iterator[Connection]:
    engine = create_engine(postgresql_database.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        for table, columns in COLUMNS.items():
            conn.execute(text(f"CREATE TEMPORARY TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns)})"))
            names = [c for c, _ in columns]
            conn.execute(
                text(f"INSERT INTO {table} VALUES ({', '.join(':' + n for n in names)})"),
                [dict(zip(names, row, strict=True)) for row in ROWS[table]],
            )
        yield conn
    engine.dispose()


def _run_duckdb(compiled: Compiled) -> dict[str, dict[str, Any]]:
    con = _duckdb()
    cursor = con.execute(compiled.sql)
    names = [d[0] for d in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def _run_postgres(conn: Connection, compiled: Compiled) -> dict[str, dict[str, Any]]:
    result = conn.execute(text(compiled.sql))
    return {row[0]: dict(row._mapping) for row in result}


def _compiled(code: str, dialect: str) -> Compiled:
    return compile_policy(_checked(code), SCHEMA, dialect, {"person": "person", "enterprise": "enterprise"}, DATES)  # type: ignore[arg-type]


def test_ages_amounts_and_missing_values_evaluate_exactly_in_duckdb() -> None:
    elderly = _run_duckdb(_compiled("elderly", "duckdb"))
    assert {k: (r["eligible"], r["amount_fen"]) for k, r in elderly.items()} == {
        "P1": (True, 150_000),  # 101 years old
        "P2": (False, None),
        "P3": (False, None),
        "P4": (False, None),  # no birth date: the condition is unknown, not true
        "P5": (True, 7_525),  # 80 today
        "P6": (False, None),  # 80 tomorrow
    }
    assert elderly["P4"]["c0"] is None
    newborn = _run_duckdb(_compiled("newborn_household", "duckdb"))
    assert {k for k, r in newborn.items() if r["eligible"]} == {"P1", "P2", "P3"}
    assert newborn["P1"]["amount_fen"] == 33_333  # 1000 / 3 = 333.3333 → 333.33
    disabled = _run_duckdb(_compiled("low_income_disabled", "duckdb"))
    assert {k: r["amount_fen"] for k, r in disabled.items() if r["eligible"]} == {"P4": 10_000}
    relief = _run_duckdb(_compiled("rent_relief", "duckdb"))
    # E1: rent/3 = 3333.3333, plus 5 % of 3333.33 + 1000.00 = 216.6665 → 3549.9998 → 3550.00
    assert relief["E1"]["eligible"] is True
    assert relief["E1"]["amount_fen"] == 355_000
    assert relief["E2"]["eligible"] is False  # founded less than 12 months ago
    assert relief["E3"]["eligible"] is False
    assert relief["E3"]["c1"] is None
    young = _run_duckdb(_compiled("young_representative", "duckdb"))
    # E1's representative P2 is 26 and graduated: 1 × 100 + 3333.33 + level 1
    assert (young["E1"]["eligible"], young["E1"]["amount_fen"]) == (True, 343_433)
    assert young["E2"]["eligible"] is False  # the representative is not in the register
    assert young["E3"]["c0"] is False


def test_duckdb_and_postgresql_give_the_same_results(postgres: Connection) -> None:
    for code in POLICIES:
        left = _run_duckdb(_compiled(code, "duckdb"))
        right = _run_postgres(postgres, _compiled(code, "postgresql"))
        assert left.keys() == right.keys()
        for key in left:
            assert {k: _plain(v) for k, v in left[key].items()} == {k: _plain(v) for k, v in right[key].items()}, (
                code,
                key,
            )


def _plain(value: Any) -> Any:
    return int(value) if hasattr(value, "as_integer_ratio") and not isinstance(value, bool | float) else value


def test_one_entity_is_evaluated_by_the_same_query_with_the_values_it_saw() -> None:
    compiled = _compiled("low_income_disabled", "duckdb")
    row = _duckdb().execute(compiled.one_entity_sql, {"key": "P4"}).fetchall()
    assert len(row) == 1
    by_label = {c.label: value for c, value in zip(compiled.columns, row[0][1:], strict=True)}
    assert by_label["disability_level"] == 2
    assert by_label["monthly_income"] == 100_000  # shown in fen
    assert by_label["disability_level <= 2 and monthly_income < 2000.00 * 1.5"] is True
    kinds = [c.kind for c in compiled.columns]
    assert kinds.count("condition") == 2
    assert kinds[-2:] == ["eligible", "amount"]


@pytest.mark.parametrize(
    ("conditions", "amount", "message", "where"),
    [
        (("age(birth_date) >= ",), "0", "ends too early", (1, 20)),
        (("age(birth_date) >= 80 and",), "0", "ends too early", (1, 26)),
        (("age(birth_dat) >= 80",), "0", "unknown field 'birth_dat'", (1, 5)),
        (("district_code == 310115",), "0", "cannot compare text with int", (1, 1)),
        (("age(birth_date) + 1",), "0", "must be true or false", (1, 1)),
        (("disability_level > 1",), '"many"', "amount must be a number", (1, 1)),
        (("monthly_income / 0 > 1",), "0", "division by zero", (1, 18)),
        (('birth_date > date("2024-02-30")',), "0", "not a date", (1, 19)),
        (('birth_date > date("1700-01-01")',), "0", "date out of range", (1, 19)),
        (("count(children) > 1",), "0", "no relation 'children'", (1, 7)),
        (("sum(household.name) > 1",), "0", "needs a number field", (1, 15)),
        (("frobnicate(birth_date)",), "0", "unknown function 'frobnicate'", (1, 1)),
        (('policy("nope")',), "0", "no policy 'nope'", (1, 8)),
        (('policy("rent_relief")',), "0", "is about enterprise, not person", (1, 1)),
        (("graduated < true",), "0", "does not order true/false", (1, 1)),
        (("disability_level in []",), "0", "the list is empty", (1, 21)),
        (("district_code in [name]",), "0", "must be constants", (1, 19)),
        (("age(birth_date) >= 80 @",), "0", "unexpected character '@'", (1, 23)),
        (('(if graduated then 1 else "x") == 1',), "0", "different types", (1, 2)),
    ],
)
def test_a_bad_policy_is_refused_with_the_place_of_the_error(
    conditions: tuple[str, ...], amount: str, message: str, where: tuple[int, int]
) -> None:
    with pytest.raises(PolicyError) as caught:
        check(SCHEMA, Source("new", "person", conditions, amount), _resolve)
    assert message in caught.value.message
    assert (caught.value.line, caught.value.column) == where, str(caught.value)


def test_circular_references_are_refused() -> None:
    policies = {
        "a": Source("a", "person", ('policy("b")',)),
        "b": Source("b", "person", ('amount("c") > 0',)),
        "c": Source("c", "person", ("true",), 'amount("a")'),
    }
    with pytest.raises(PolicyError) as caught:
        check(SCHEMA, policies["a"], policies.get)
    assert "circular reference: a → b → c → a" in str(caught.value)
    with pytest.raises(PolicyError, match="circular reference: self → self"):
        check(SCHEMA, Source("self", "person", ('policy("self")',)), lambda code: None)


def test_text_literals_cannot_break_out_of_the_query(postgres: Connection) -> None:
    """Quotes end nothing; a colon or a percent sign is text on PostgreSQL too (not a parameter)."""
    breaking = Source("quote", "person", ('name == "x\' OR 1=1 --"',))
    compiled = compile_policy(check(SCHEMA, breaking, _resolve), SCHEMA, "duckdb", {"person": "person"}, DATES)
    assert not any(r["eligible"] for r in _run_duckdb(compiled).values())
    marks = Source("marks", "person", ('name in [":key", "a::b", "50%", "\\:x", "闰日"] or name == "%(key)s"',))
    checked = check(SCHEMA, marks, _resolve)
    for dialect in ("duckdb", "postgresql"):
        query = compile_policy(checked, SCHEMA, dialect, {"person": "person"}, DATES)  # type: ignore[arg-type]
        rows = _run_duckdb(query) if dialect == "duckdb" else _run_postgres(postgres, query)
        assert {k for k, r in rows.items() if r["eligible"]} == {"P2"}, dialect
        one = postgres.execute(text(query.one_entity_sql), {"key": "P2"}) if dialect == "postgresql" else None
        assert one is None or one.mappings().one()["eligible"] is True


def test_aggregates_of_one_relation_share_one_grouping(postgres: Connection) -> None:
    """Every aggregate the policies take of the household is computed by one GROUP BY and one join, and
    the policies evaluated together give what each gives alone."""
    codes = ["newborn_household", "any_graduate_household", "elderly"]
    together = [(_checked(code), DATES) for code in codes]
    tables = {"person": "person", "enterprise": "enterprise"}
    for dialect in ("duckdb", "postgresql"):
        sql = compile_many(together, SCHEMA, dialect, tables)  # type: ignore[arg-type]
        assert sql.count("GROUP BY") == 1, dialect
        rows = _duckdb().execute(sql).fetchall() if dialect == "duckdb" else postgres.execute(text(sql)).all()
        for i, code in enumerate(codes):
            alone = _run_duckdb(_compiled(code, "duckdb"))
            assert {r[0]: (r[1 + 2 * i], r[2 + 2 * i]) for r in rows} == {
                k: (v["eligible"], v["amount_fen"]) for k, v in alone.items()
            }, (dialect, code)


def _half_away(value: Decimal, places: str) -> Decimal:
    return value.quantize(Decimal(places), rounding=ROUND_HALF_UP)  # ROUND_HALF_UP rounds .5 away from zero


# incomes either side of where a scaled value stops fitting 64 bits (DuckDB then divides 128-bit integers)
INCOMES = ["0.01", "-0.05", "2.50", "-2.50", "1000.00", "46116860184.27", "46116860184.28", "-46116860184.28"]
INCOMES += ["922337203685477.58", "-922337203685477.58", "9999999999999999.99", "-9999999999999999.99"]


def _incomes_duckdb() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE person (id_number VARCHAR, monthly_income DECIMAL(18,2), household_no VARCHAR)")
    con.executemany("INSERT INTO person VALUES (?, ?, 'H')", [(f"P{i}", v) for i, v in enumerate(INCOMES)])
    return con


def test_numbers_of_every_size_round_exactly_on_both_engines(postgres: Connection) -> None:
    """Every step rounds to 1/10⁴ half away from zero, the amount to the fen, whatever the magnitude: values
    that fit 64 bits and values that do not give what exact decimal arithmetic gives."""
    source = Source("big", "person", ("true",), "monthly_income / 3 + monthly_income * 1.0005 - monthly_income / -7")
    checked = check(SCHEMA, source, _resolve)
    expected = {}
    for i, raw in enumerate(INCOMES):
        x = Decimal(raw)
        steps = _half_away(x / 3, "0.0001") + _half_away(x * Decimal("1.0005"), "0.0001")
        expected[f"P{i}"] = int(_half_away(steps - _half_away(x / -7, "0.0001"), "0.01") * 100)
    postgres.execute(text("CREATE TEMPORARY TABLE incomes (LIKE person)"))
    postgres.execute(
        text("INSERT INTO incomes (id_number, monthly_income) VALUES (:k, CAST(:v AS NUMERIC))"),
        [{"k": f"P{i}", "v": v} for i, v in enumerate(INCOMES)],
    )
    for dialect in ("duckdb", "postgresql"):
        table = "person" if dialect == "duckdb" else "incomes"
        compiled = compile_policy(checked, SCHEMA, dialect, {"person": table}, DATES)  # type: ignore[arg-type]
        if dialect == "duckdb":
            con = _incomes_duckdb()
            rows = {r[0]: r[-1] for r in con.execute(compiled.sql).fetchall()}
            one = {k: con.execute(compiled.one_entity_sql, {"key": k}).fetchall()[0][-1] for k in expected}
        else:
            rows = {r[0]: r[-1] for r in postgres.execute(text(compiled.sql)).all()}
            one = {k: postgres.execute(text(compiled.one_entity_sql), {"key": k}).one()[-1] for k in expected}
        assert rows == expected, dialect
        assert one == expected, dialect


def test_nested_roundings_compile_to_a_query_that_grows_linearly() -> None:
    """Each rounding reads its operand twice; the operand is computed once (in a layer below), so nesting
    does not double the query per level, and the result is still exact."""
    amount = "monthly_income"
    for _ in range(12):
        amount = f"least({amount} / 3, 1000000.00)"
    checked = check(SCHEMA, Source("deep", "person", ("true",), amount), _resolve)
    compiled = compile_policy(checked, SCHEMA, "duckdb", {"person": "person"}, DATES)
    assert len(compiled.sql) < 30_000
    x = Decimal("3333.33")
    for _ in range(12):
        x = min(_half_away(x / 3, "0.0001"), Decimal(1000000))
    rows = {r[0]: r[-1] for r in _duckdb().execute(compiled.sql).fetchall()}
    assert rows["P2"] == int(_half_away(x, "0.01") * 100)


def test_one_entity_gives_the_row_the_whole_population_gives(postgres: Connection) -> None:
    """The correlated one-entity form and the grouped, joined, layered population form agree everywhere."""
    for code in POLICIES:
        for dialect in ("duckdb", "postgresql"):
            compiled = _compiled(code, dialect)
            if dialect == "duckdb":
                con = _duckdb()
                whole = {r[0]: r for r in con.execute(compiled.sql).fetchall()}
                for key, row in whole.items():
                    assert con.execute(compiled.one_entity_sql, {"key": key}).fetchall() == [row], (code, key)
            else:
                whole = {r[0]: tuple(r) for r in postgres.execute(text(compiled.sql)).all()}
                for key, row in whole.items():
                    one = postgres.execute(text(compiled.one_entity_sql), {"key": key}).one()
                    assert tuple(one) == row, (code, key, dialect)
