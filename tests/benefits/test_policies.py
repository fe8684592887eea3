"""Policies over the live registers: saved with checked, positioned errors; dry runs and explanations that
agree with an independent computation; runs that grant once per period within the budget; the holder's
decline and appeal and staff's reversal, each kept in the grant's history."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import select

from shgov.benefits import service as benefits
from shgov.benefits.models import PolicyRun
from shgov.benefits.service import PolicySpec
from shgov.core.calendar.service import city_today
from shgov.core.db import Database, utcnow
from shgov.core.errors import ConflictError, InvalidError, NotFoundError
from shgov.core.events import Event
from shgov.core.identity.service import create_user, principal_by_username
from shgov.core.settings import Settings
from shgov.registers import service as registers

AS_OF = dt.date(2026, 11, 24)


def _persons(db: Database, lake_dir: Path) -> pl.DataFrame:
    with db.session() as session:
        folder, _version = registers.live_folder(session, lake_dir, "person")
    return pl.read_parquet(folder / "*.parquet")


def _age(born: dt.date, at: dt.date) -> int:
    return at.year - born.year - ((at.month, at.day) < (born.month, born.day))


def _elderly(**changes: object) -> PolicySpec:
    spec = PolicySpec(
        code="elderly_allowance",
        name="高龄老人营养补贴",
        target="person",
        department_code="310000.mz",
        legal_basis="《上海市老年人权益保障条例》第三十条（示例）",
        mode="auto",
        period="month",
        effective_from=dt.date(2026, 1, 1),
        effective_to=None,
        conditions=["age(birth_date) >= 80", 'district_code != ""'],
        amount="if age(birth_date) >= 100 then 600 elif age(birth_date) >= 90 then 180 else 75",
    )
    for name, value in changes.items():
        setattr(spec, name, value)
    return spec


def _save(db: Database, spec: PolicySpec, activate: bool = True) -> None:
    with db.session() as session:
        version = benefits.save_policy(session, benefits.register_schema(session), spec, "tester")
        if activate:
            benefits.activate(session, spec.code, version.version)


def test_dry_run_and_explanations_agree_with_the_register(db: Database, lake_dir: Path) -> None:
    _save(db, _elderly())
    persons = _persons(db, lake_dir)
    expected, total, missing = set(), 0, set()
    for row in persons.iter_rows(named=True):
        if row["birth_date"] is None:
            missing.add(row["id_number"])
            continue
        age = _age(row["birth_date"], AS_OF)
        if age >= 80 and row["district_code"] not in (None, ""):
            expected.add(row["id_number"])
            total += 60_000 if age >= 100 else 18_000 if age >= 90 else 7_500
    assert expected, "the synthetic city has old people"
    with db.session() as session:
        dry = benefits.dry_run(session, lake_dir, "elderly_allowance", AS_OF)
    assert (dry.evaluated, dry.qualified, dry.total_fen) == (persons.height, len(expected), total)
    assert dry.missing >= len(missing)
    someone = sorted(expected)[0]
    with db.session() as session:
        trace = benefits.explain(session, lake_dir, "elderly_allowance", someone, AS_OF)
    assert trace.eligible
    assert [line.outcome for line in trace.lines] == ["pass", "pass"]
    assert dict(trace.values)["birth_date"] == persons.filter(pl.col("id_number") == someone)["birth_date"][0]
    young = persons.filter(pl.col("birth_date") > dt.date(2000, 1, 1))["id_number"][0]
    with db.session() as session:
        trace = benefits.explain(session, lake_dir, "elderly_allowance", young, AS_OF)
    assert not trace.eligible
    assert trace.lines[0].outcome == "fail"
    assert trace.amount_fen is None
    if missing:
        with db.session() as session:
            trace = benefits.explain(session, lake_dir, "elderly_allowance", sorted(missing)[0], AS_OF)
        assert trace.missing
        assert not trace.eligible
    with db.session() as session:
        trace = benefits.explain(session, lake_dir, "elderly_allowance", "110101190001011234", AS_OF)
    assert not trace.found
    assert not trace.eligible


def test_runs_grant_each_qualifying_person_once_per_period_within_the_budget(db: Database, lake_dir: Path) -> None:
    _save(db, _elderly(budget_fen=None))
    with db.session() as session:
        first = benefits.run(session, lake_dir, "elderly_allowance", AS_OF)
    assert first.granted == first.qualified > 0
    with db.session() as session:
        again = benefits.run(session, lake_dir, "elderly_allowance", AS_OF)
    assert (again.granted, again.already) == (0, first.qualified)
    with db.session() as session:
        next_month = benefits.run(session, lake_dir, "elderly_allowance", AS_OF + dt.timedelta(days=7))
    assert next_month.granted == first.qualified  # a monthly benefit: December is a new period
    # a budget of three grants' worth: the run stops there, in key order, and says how many were left out
    _save(db, _elderly(code="elderly_capped", budget_fen=3 * 7_500, amount="75"))
    with db.session() as session:
        capped = benefits.run(session, lake_dir, "elderly_capped", AS_OF)
        given = session.scalars(
            benefits.select(benefits.BenefitGrant.entity_key).where(
                benefits.BenefitGrant.policy_code == "elderly_capped"
            )
        ).all()
    assert capped.granted == 3
    assert capped.over_budget == capped.qualified - 3
    assert sorted(given) == sorted(given)[:3]
    with db.session() as session:
        grant = benefits.grants_for(session, "person", given[0])[0]
        assert grant.trace["eligible"] is True
        assert len(grant.trace_digest) == 64
        assert [e.action for e in benefits.grant_history(session, grant.id)] == ["grant"]


def test_the_holder_declines_or_appeals_and_staff_reverse_with_a_reason(db: Database, lake_dir: Path) -> None:
    _save(db, _elderly())
    with db.session() as session:
        benefits.run(session, lake_dir, "elderly_allowance", AS_OF)
        grant = benefits.grants_of_policy(session, "elderly_allowance")[:2]
        holder = create_user(
            session, kind="citizen", username="elder1", display_name="老人", id_number=grant[0].entity_key
        )
        other = create_user(
            session, kind="citizen", username="elder2", display_name="别人", id_number=grant[1].entity_key
        )
        me = principal_by_username(session, holder.username)
        stranger = principal_by_username(session, other.username)
        admin = principal_by_username(session, "admin")
        assert me is not None
        assert stranger is not None
        assert admin is not None
        with pytest.raises(NotFoundError):
            benefits.decline(session, stranger, grant[0].id)
        with pytest.raises(InvalidError) as caught:
            benefits.appeal(session, me, grant[0].id, " ")
        assert caught.value.field == "reason"
        benefits.appeal(session, me, grant[0].id, "金额不对，我已满90岁")
        with pytest.raises(ConflictError):
            benefits.decline(session, me, grant[0].id)
        benefits.reverse(session, admin, grant[0].id, "复核：出生日期登记有误")
        history = [(e.action, e.from_status, e.to_status) for e in benefits.grant_history(session, grant[0].id)]
        assert history == [
            ("grant", None, "granted"),
            ("appeal", "granted", "appealed"),
            ("reverse", "appealed", "reversed"),
        ]
        with pytest.raises(Exception, match="may not decide"):
            benefits.reverse(session, stranger, grant[1].id, "没有权限")
        with pytest.raises(ConflictError):
            benefits.uphold(session, admin, grant[1].id, "没有申诉")
        benefits.appeal(session, stranger, grant[1].id, "金额不对")
        with pytest.raises(InvalidError):
            benefits.uphold(session, admin, grant[1].id, "")
        assert [g.id for g, _why in benefits.appealed_grants(session, "elderly_allowance")] == [grant[1].id]
        kept = benefits.uphold(session, admin, grant[1].id, "金额按年龄段核定无误")
        assert kept.status == "granted"
        assert [e.action for e in benefits.grant_history(session, grant[1].id)] == ["grant", "appeal", "uphold"]
        assert benefits.appealed_grants(session, "elderly_allowance") == []


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"conditions": ["age(birth_day) >= 80"]}, "conditions[0]", "line 1, column 5: unknown field 'birth_day'"),
        ({"conditions": ["true", "age(birth_date) >="]}, "conditions[1]", "ends too early"),
        ({"amount": "75 / 0"}, "amount", "division by zero"),
        ({"amount": '"seventy"'}, "amount", "must be a number"),
        ({"conditions": ['policy("elderly_allowance")']}, "conditions[0]", "circular reference"),
        ({"conditions": []}, "conditions", "At least one condition is needed"),
        ({"code": "Elderly"}, "code", "The code is 2–40 lowercase letters"),
        ({"effective_to": dt.date(2025, 1, 1)}, "effective_to", "end of the validity period"),
        ({"target": "household"}, "target", "target must be"),
        ({"mode": "maybe"}, "mode", "mode must be"),
        ({"legal_basis": " "}, "legal_basis", "legal basis"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field_and_nothing_is_saved(
    db: Database, lake_dir: Path, changes: dict[str, object], field: str, text: str
) -> None:
    with db.session() as session:
        before = len(benefits.list_policies(session))
        with pytest.raises(InvalidError) as caught:
            benefits.save_policy(session, benefits.register_schema(session), _elderly(**changes), "tester")
        assert caught.value.field == field
        assert text in caught.value.message
        assert len(benefits.list_policies(session)) == before


def test_versions_are_kept_and_a_changed_reference_is_caught(db: Database, lake_dir: Path) -> None:
    _save(db, _elderly())
    _save(db, _elderly(amount="80"), activate=False)
    _save(
        db,
        _elderly(code="top_up", conditions=['policy("elderly_allowance")'], amount='amount("elderly_allowance") / 2'),
    )
    with db.session() as session:
        assert [v.version for v in benefits.versions_of(session, "elderly_allowance")] == [2, 1]
        assert benefits.get_version(session, "elderly_allowance").version.amount.startswith("if")  # the active one
        trace = benefits.explain(session, lake_dir, "top_up", "X", AS_OF)
        assert not trace.found
        dry = benefits.dry_run(session, lake_dir, "top_up", AS_OF)
        assert dry.qualified > 0
        assert dry.total_fen == dry.qualified * 4_000  # half of the latest text's 80 yuan


def test_a_register_change_re_evaluates_only_the_entity_it_touched(
    db: Database, lake_dir: Path, settings: Settings
) -> None:
    _save(db, _elderly())
    persons = _persons(db, lake_dir).drop_nulls("birth_date")
    old = persons.filter(pl.col("birth_date") < dt.date(1930, 1, 1))["id_number"][0]
    young = persons.filter(pl.col("birth_date") > dt.date(2000, 1, 1))["id_number"][0]
    (_name, pattern, handler), (_other, rebuilt_pattern, on_rebuilt), *_asked = benefits.subscribers(db, settings)
    assert (pattern, rebuilt_pattern) == ("registers.*.changed", "registers.*.rebuilt")
    for key in (old, young, old):  # the same change delivered twice grants once
        handler(
            Event(
                uuid.uuid4(),
                "registers.person.changed",
                {"key": key, "elements": ["birth_date"], "version": 2},
                utcnow(),
            )
        )
    with db.session() as session:
        grants = benefits.grants_of_policy(session, "elderly_allowance")
        runs = session.scalars(
            select(PolicyRun).where(PolicyRun.policy_code == "elderly_allowance").order_by(PolicyRun.started_at)
        ).all()
    assert [g.entity_key for g in grants] == [old]
    assert [(r.kind, r.evaluated, r.granted) for r in runs] == [("event", 1, 1), ("event", 1, 0), ("event", 1, 0)]
    # a build that changed too many records to announce one by one re-evaluates everybody, granting the rest
    on_rebuilt(
        Event(uuid.uuid4(), "registers.person.rebuilt", {"version": 2, "rows": 10_000, "changed": 10_000}, utcnow())
    )
    with db.session() as session:
        last = session.scalars(
            select(PolicyRun).where(PolicyRun.policy_code == "elderly_allowance").order_by(PolicyRun.started_at.desc())
        ).first()
        dry = benefits.dry_run(session, lake_dir, "elderly_allowance", city_today())
    assert last is not None
    assert (last.evaluated, last.qualified, last.already) == (_persons(db, lake_dir).height, dry.qualified, 1)
    assert last.granted == dry.qualified - 1
