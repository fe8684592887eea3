"""The 21 demo benefit policies as an OpenFisca tax-benefit system — the yardstick of bench_benefits.

Runs in the bench's own environment (``.venv-bench``, with openfisca-core), never in SH-GOV's: it imports
neither shgov nor polars. It reads the register files bench_benefits wrote, builds one simulation of persons
in households and one of enterprises, computes every policy's eligibility and amount (in fen, with the same
rounding as SH-GOV's language: round half away from zero at 1/10⁴ yuan, then to the fen), writes them to
Parquet and prints its timings as JSON.

OpenFisca knows one person entity per system, so enterprises are the person entity of a second system; the
legal representative's birth date, which SH-GOV reads through a relation, is joined to the enterprise
before the simulation is built (outside the timed computation).

Usage: python openfisca_benefits.py PERSON.parquet ENTERPRISE.parquet OUT_DIR AS_OF
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from openfisca_core.entities import build_entity
from openfisca_core.periods import ETERNITY, MONTH
from openfisca_core.simulations import SimulationBuilder
from openfisca_core.taxbenefitsystems import TaxBenefitSystem
from openfisca_core.variables import Variable

AS_OF = np.datetime64(sys.argv[4] if len(sys.argv) > 4 else "2026-11-24", "D")
PERSON_POLICIES = (
    "elderly_nutrition",
    "centenarian_gift",
    "childcare_subsidy",
    "newborn_family",
    "large_family",
    "severe_disability_care",
    "hardship_disability_living",
    "elderly_disability_topup",
    "subsistence_price_subsidy",
    "children_in_hardship",
    "graduate_employment",
    "graduate_job_search",
    "unemployed_training",
    "older_jobseeker_aid",
)
ENTERPRISE_POLICIES = (
    "stable_jobs_refund",
    "hiring_subsidy",
    "small_business_rent_relief",
    "startup_subsidy",
    "tech_sme_rnd",
    "catering_retail_relief",
    "disabled_employment_fee_waiver",
)

PERSON_COLUMNS = ("birth_date", "graduated_on", "disability_level", "sex", "relation", "employment_status")
PERSON_COLUMNS += ("insurance_type", "disability_category", "degree", "assistance_type")
ENTERPRISE_COLUMNS = ("status", "industry_section", "tax_status", "landlord_type", "employees", "insured_now")
ENTERPRISE_COLUMNS += ("insured_last_year", "insurance_arrears_months", "monthly_rent_fen", "revenue_fen")
ENTERPRISE_COLUMNS += ("established_on",)

Person = build_entity(key="person", plural="persons", label="A resident", is_person=True)
Household = build_entity(
    key="household",
    plural="households",
    label="同户",
    roles=[{"key": "member", "plural": "members", "label": "A member"}],
)
Enterprise = build_entity(key="enterprise", plural="enterprises", label="An enterprise", is_person=True)


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    years = days.astype("datetime64[Y]")
    months = days.astype("datetime64[M]")
    return (
        years.astype(np.int64) + 1970,
        (months - years.astype("datetime64[M]")).astype(np.int64) + 1,
        (days - months.astype("datetime64[D]")).astype(np.int64) + 1,
    )


def years_between(start: np.ndarray, end: np.datetime64) -> np.ndarray:
    """Whole years from start to end (a 29 February birthday counts from 1 March)."""
    y1, m1, d1 = _ymd(start)
    y2, m2, d2 = _ymd(np.array([end]))
    return (y2 - y1) - ((m2 * 100 + d2) < (m1 * 100 + d1))


def months_between(start: np.ndarray, end: np.datetime64) -> np.ndarray:
    """Whole months from start to end."""
    y1, m1, d1 = _ymd(start)
    y2, m2, d2 = _ymd(np.array([end]))
    return ((y2 - y1) * 12 + (m2 - m1)) - (d2 < d1)


def _input(name: str, entity: object, kind: type, default: object = None) -> type:
    attributes = {"value_type": kind, "entity": entity, "definition_period": ETERNITY, "label": name}
    if default is not None:
        attributes["default_value"] = default
    return type(name, (Variable,), attributes)


PERSON_INPUTS = {
    "birth_date": "date",
    "has_birth_date": bool,
    "sex": str,
    "relation": str,
    "employment_status": str,
    "insurance_type": str,
    "disability_category": str,
    "disability_level": int,
    "has_disability_level": bool,
    "degree": str,
    "graduated_on": "date",
    "has_graduated_on": bool,
    "assistance_type": str,
}
ENTERPRISE_INPUTS = {
    "status": str,
    "industry_section": str,
    "employees": int,
    "tax_status": str,
    "insured_now": int,
    "insured_last_year": int,
    "insurance_arrears_months": int,
    "landlord_type": str,
    "monthly_rent_fen": int,
    "revenue_yuan_floor": int,  # revenue_fen // 100, capped to what an OpenFisca int holds
    "revenue_cents": int,  # revenue_fen % 100
    "established_on": "date",
    "has_established_on": bool,
    "representative_birth_date": "date",
    "has_representative": bool,
}


def _date_kind() -> type:
    import datetime

    return datetime.date


def _variable(name: str, entity: object, kind: type, formula: object) -> type:
    return type(
        name,
        (Variable,),
        {"value_type": kind, "entity": entity, "definition_period": MONTH, "label": name, "formula": formula},
    )


def person_system() -> TaxBenefitSystem:
    """Persons in households, and the 14 person policies."""
    system = TaxBenefitSystem([Person, Household])
    for name, kind in PERSON_INPUTS.items():
        system.add_variable(_input(name, Person, _date_kind() if kind == "date" else kind))

    def age(person, period):
        return years_between(person("birth_date", period), AS_OF)

    def known_age(person, period):
        return person("has_birth_date", period)

    def is_baby(person, period):
        return person("has_birth_date", period) & (person("age", period) < 1)

    def is_minor(person, period):
        return person("has_birth_date", period) & (person("age", period) < 18)

    def babies(household, period):
        return household.sum(household.members("is_baby", period))

    def minors(household, period):
        return household.sum(household.members("is_minor", period))

    system.add_variable(_variable("age", Person, int, age))
    system.add_variable(_variable("known_age", Person, bool, known_age))
    system.add_variable(_variable("is_baby", Person, bool, is_baby))
    system.add_variable(_variable("is_minor", Person, bool, is_minor))
    system.add_variable(_variable("household_babies", Household, int, babies))
    system.add_variable(_variable("household_minors", Household, int, minors))

    def policy(code: str, eligible: object, amount: object) -> None:
        system.add_variable(_variable(f"{code}__eligible", Person, bool, eligible))
        system.add_variable(_variable(f"{code}__amount", Person, int, amount))

    def old(threshold: int):
        return lambda p, t: p("known_age", t) & (p("age", t) >= threshold)

    policy(
        "elderly_nutrition",
        old(80),
        lambda p, t: (
            np.select([p("age", t) >= 100, p("age", t) >= 90], [60_000, 18_000], 7_500)
            * p("elderly_nutrition__eligible", t)
        ),
    )
    policy("centenarian_gift", old(100), lambda p, t: 100_000 * p("centenarian_gift__eligible", t))
    policy(
        "childcare_subsidy",
        lambda p, t: p("known_age", t) & (p("age", t) < 3) & (p("relation", t) == "子女"),
        lambda p, t: 360_000 * p("childcare_subsidy__eligible", t),
    )
    policy(
        "newborn_family",
        lambda p, t: (p("relation", t) == "户主") & (p.household("household_babies", t) >= 1),
        lambda p, t: 50_000 * p.household("household_babies", t) * p("newborn_family__eligible", t),
    )
    policy(
        "large_family",
        lambda p, t: (p("relation", t) == "户主") & (p.household("household_minors", t) >= 3),
        lambda p, t: 100_000 * p.household("household_minors", t) * p("large_family__eligible", t),
    )
    disabled = lambda p, t: p("disability_category", t) != "无"  # noqa: E731
    policy(
        "severe_disability_care",
        lambda p, t: disabled(p, t) & p("has_disability_level", t) & (p("disability_level", t) <= 2),
        lambda p, t: np.where(p("disability_level", t) == 1, 30_000, 20_000) * p("severe_disability_care__eligible", t),
    )
    helped = lambda p, t, kinds: np.isin(p("assistance_type", t), kinds)  # noqa: E731
    policy(
        "hardship_disability_living",
        lambda p, t: disabled(p, t) & helped(p, t, ["低保", "低收入", "特困"]),
        lambda p, t: (
            np.where(p("assistance_type", t) == "特困", 40_000, 30_000) * p("hardship_disability_living__eligible", t)
        ),
    )
    policy(
        "elderly_disability_topup",
        lambda p, t: p("severe_disability_care__eligible", t) & p("known_age", t) & (p("age", t) >= 60),
        lambda p, t: p("severe_disability_care__amount", t) // 10 * p("elderly_disability_topup__eligible", t),
    )
    policy(
        "subsistence_price_subsidy",
        lambda p, t: helped(p, t, ["低保", "特困"]),
        lambda p, t: 10_000 * p("subsistence_price_subsidy__eligible", t),
    )
    policy(
        "children_in_hardship",
        lambda p, t: p("known_age", t) & (p("age", t) < 18) & helped(p, t, ["低保", "特困"]),
        lambda p, t: 50_000 * p("children_in_hardship__eligible", t),
    )

    def since_graduation(p, t):
        return (AS_OF - p("graduated_on", t)).astype(np.int64)

    policy(
        "graduate_employment",
        lambda p, t: (
            p("has_graduated_on", t)
            & (since_graduation(p, t) <= 365)
            & (p("employment_status", t) == "就业")
            & (p("insurance_type", t) == "城镇职工")
        ),
        lambda p, t: (
            np.where(np.isin(p("degree", t), ["硕士", "博士"]), 300_000, 200_000)
            * p("graduate_employment__eligible", t)
        ),
    )
    policy(
        "graduate_job_search",
        lambda p, t: p("has_graduated_on", t) & (since_graduation(p, t) <= 730) & (p("employment_status", t) == "失业"),
        lambda p, t: 150_000 * p("graduate_job_search__eligible", t),
    )
    policy(
        "unemployed_training",
        lambda p, t: (
            (p("employment_status", t) == "失业") & p("known_age", t) & (p("age", t) >= 16) & (p("age", t) < 60)
        ),
        lambda p, t: 200_000 * p("unemployed_training__eligible", t),
    )
    policy(
        "older_jobseeker_aid",
        lambda p, t: (
            (p("employment_status", t) == "失业")
            & p("known_age", t)
            & (((p("sex", t) == "女") & (p("age", t) >= 40)) | ((p("sex", t) == "男") & (p("age", t) >= 50)))
        ),
        lambda p, t: 120_000 * p("older_jobseeker_aid__eligible", t),
    )
    return system


def enterprise_system() -> TaxBenefitSystem:
    """Enterprises, and the 7 enterprise policies."""
    system = TaxBenefitSystem([Enterprise])
    for name, kind in ENTERPRISE_INPUTS.items():
        system.add_variable(_input(name, Enterprise, _date_kind() if kind == "date" else kind))

    def policy(code: str, eligible: object, amount: object) -> None:
        system.add_variable(_variable(f"{code}__eligible", Enterprise, bool, eligible))
        system.add_variable(_variable(f"{code}__amount", Enterprise, int, amount))

    alive = lambda e, t: e("status", t) == "存续"  # noqa: E731
    no_arrears = lambda e, t: e("insurance_arrears_months", t) == 0  # noqa: E731
    now = lambda e, t: e("insured_now", t).astype(np.int64)  # noqa: E731
    last = lambda e, t: e("insured_last_year", t).astype(np.int64)  # noqa: E731
    policy(
        "stable_jobs_refund",
        lambda e, t: alive(e, t) & no_arrears(e, t) & (last(e, t) > 0) & (now(e, t) * 100 >= last(e, t) * 95),
        lambda e, t: np.minimum(last(e, t) * 360, 1_000_000) * 100 * e("stable_jobs_refund__eligible", t),
    )
    policy(
        "hiring_subsidy",
        lambda e, t: alive(e, t) & no_arrears(e, t) & (now(e, t) > last(e, t)),
        lambda e, t: np.minimum((now(e, t) - last(e, t)) * 1000, 50_000) * 100 * e("hiring_subsidy__eligible", t),
    )
    policy(
        "small_business_rent_relief",
        lambda e, t: (
            alive(e, t)
            & (e("landlord_type", t) == "国有")
            & (e("employees", t) <= 100)
            & (e("revenue_yuan_floor", t).astype(np.int64) * 100 + e("revenue_cents", t) < 30_000_000_000)
        ),
        lambda e, t: e("monthly_rent_fen", t).astype(np.int64) * 3 * e("small_business_rent_relief__eligible", t),
    )
    policy(
        "startup_subsidy",
        lambda e, t: (
            alive(e, t)
            & e("has_established_on", t)
            & (months_between(e("established_on", t), AS_OF) < 12)
            & (now(e, t) >= 1)
            & e("has_representative", t)
            & (years_between(e("representative_birth_date", t), AS_OF) < 35)
        ),
        lambda e, t: 800_000 * e("startup_subsidy__eligible", t),
    )
    policy(
        "tech_sme_rnd",
        lambda e, t: (
            alive(e, t)
            & np.isin(e("industry_section", t), ["I", "M"])
            & (e("employees", t) <= 500)
            & (e("tax_status", t) == "正常")
        ),
        # revenue_fen / 100 * 0.01 yuan, to the fen: revenue_fen / 100 rounded half up, capped at 200,000 yuan
        lambda e, t: (
            np.minimum(e("revenue_yuan_floor", t).astype(np.int64) + (e("revenue_cents", t) >= 50), 20_000_000)
            * e("tech_sme_rnd__eligible", t)
        ),
    )
    policy(
        "catering_retail_relief",
        lambda e, t: alive(e, t) & np.isin(e("industry_section", t), ["F", "H"]) & (e("employees", t) < 50),
        lambda e, t: 500_000 * e("catering_retail_relief__eligible", t),
    )
    policy(
        "disabled_employment_fee_waiver",
        lambda e, t: alive(e, t) & (e("employees", t) <= 30),
        lambda e, t: 0 * e("disabled_employment_fee_waiver__eligible", t),
    )
    return system


def _strings(table: pa.Table, column: str, absent: str = "") -> np.ndarray:
    return table.column(column).fill_null(absent).to_numpy(zero_copy_only=False)


def _dates(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    array = table.column(column).to_numpy(zero_copy_only=False).astype("datetime64[D]")
    known = ~np.isnat(array)
    return np.where(known, array, np.datetime64("1970-01-01")), known


def _ints(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    mask = table.column(column).is_null().to_numpy(zero_copy_only=False)
    values = table.column(column).fill_null(0).to_numpy().astype(np.int64)
    return values, ~mask


def persons(path: Path) -> tuple[object, np.ndarray, float]:
    """The person simulation with its inputs set; the ids; seconds to read the columns it needs and build it
    (SH-GOV's time from the files includes its reading too)."""
    started = time.perf_counter()
    table = pq.read_table(path, columns=[*PERSON_COLUMNS, "id_number", "household_no"])
    system = person_system()
    ids = _strings(table, "id_number")
    # households numbered 0…n-1 by Arrow's hash table (an np.unique of a million strings would sort them)
    households = pc.dictionary_encode(table.column("household_no")).combine_chunks()
    index = households.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    builder = SimulationBuilder()
    builder.create_entities(system)
    builder.declare_person_entity("person", ids)
    group = builder.declare_entity("household", np.arange(len(households.dictionary)))
    builder.join_with_persons(group, index, np.full(len(ids), "member", dtype=object))
    simulation = builder.build(system)
    born, known = _dates(table, "birth_date")
    simulation.set_input("birth_date", ETERNITY, born)
    simulation.set_input("has_birth_date", ETERNITY, known)
    graduated, has_graduated = _dates(table, "graduated_on")
    simulation.set_input("graduated_on", ETERNITY, graduated)
    simulation.set_input("has_graduated_on", ETERNITY, has_graduated)
    level, has_level = _ints(table, "disability_level")
    simulation.set_input("disability_level", ETERNITY, level)
    simulation.set_input("has_disability_level", ETERNITY, has_level)
    for column in ("sex", "relation", "employment_status", "insurance_type", "disability_category", "degree"):
        simulation.set_input(column, ETERNITY, _strings(table, column))
    simulation.set_input("assistance_type", ETERNITY, _strings(table, "assistance_type"))
    return simulation, ids, time.perf_counter() - started


def enterprises(path: Path, person_path: Path) -> tuple[object, np.ndarray, float]:
    """The enterprise simulation (legal representatives' birth dates joined in); the ids; seconds to read
    and build."""
    started = time.perf_counter()
    table = pq.read_table(path, columns=[*ENTERPRISE_COLUMNS, "credit_code", "legal_representative_id"])
    people = pq.read_table(person_path, columns=["id_number", "birth_date"])
    system = enterprise_system()
    ids = _strings(table, "credit_code")
    builder = SimulationBuilder()
    builder.create_entities(system)
    builder.declare_person_entity("enterprise", ids)
    simulation = builder.build(system)
    for column in ("status", "industry_section", "tax_status", "landlord_type"):
        simulation.set_input(column, ETERNITY, _strings(table, column))
    for column in ("employees", "insured_now", "insured_last_year", "insurance_arrears_months", "monthly_rent_fen"):
        simulation.set_input(column, ETERNITY, _ints(table, column)[0])
    revenue, _ = _ints(table, "revenue_fen")
    simulation.set_input("revenue_yuan_floor", ETERNITY, np.minimum(revenue // 100, 2**31 - 1))
    simulation.set_input("revenue_cents", ETERNITY, revenue % 100)
    established, has_established = _dates(table, "established_on")
    simulation.set_input("established_on", ETERNITY, established)
    simulation.set_input("has_established_on", ETERNITY, has_established)
    person_born, person_known = _dates(people, "birth_date")
    at = pc.index_in(table.column("legal_representative_id"), value_set=people.column("id_number").combine_chunks())
    found = at.is_valid().to_numpy(zero_copy_only=False)
    at = at.fill_null(0).to_numpy(zero_copy_only=False)
    simulation.set_input("representative_birth_date", ETERNITY, person_born[at])
    simulation.set_input("has_representative", ETERNITY, found & person_known[at])
    return simulation, ids, time.perf_counter() - started


def main() -> None:
    """Build both simulations, compute every policy, write the results, print the timings."""
    person_path, enterprise_path, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    period = str(AS_OF.astype("datetime64[M]"))
    timings: dict[str, float] = {}
    for name, (simulation, ids, built), codes in (
        ("person", persons(person_path), PERSON_POLICIES),
        ("enterprise", enterprises(enterprise_path, person_path), ENTERPRISE_POLICIES),
    ):
        started = time.perf_counter()
        columns: dict[str, object] = {"key": pa.array(ids.tolist(), pa.string())}
        for code in codes:
            columns[f"{code}__eligible"] = pa.array(simulation.calculate(f"{code}__eligible", period))
            columns[f"{code}__amount"] = pa.array(simulation.calculate(f"{code}__amount", period).astype(np.int64))
        timings[f"{name}_build_s"] = built
        timings[f"{name}_compute_s"] = time.perf_counter() - started
        pq.write_table(pa.table(columns), out / f"openfisca_{name}.parquet")
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
