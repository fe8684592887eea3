"""The benefits pages in Chromium: a policy manager writes a policy (an error is shown at its field), tests it
on a person, dry-runs it, activates and runs it; the person sees the benefit with its reasons, the other
policies with why not, and appeals; a visitor without the permission is turned away."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest
from fastapi import FastAPI
from playwright.sync_api import Page, expect

from shgov.core.db import Database
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.identity.service import create_user
from shgov.registers import service as registers
from tests.cases.test_pages import sign_in, tabs  # noqa: F401 - the tabs fixture
from tests.web.test_browser import browser  # noqa: F401 - the module's Chromium fixture

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("engine", ["sqlite"], indirect=True)]
CITIZEN_PASSWORD = "Citizen#2026xy"


def _an_old_person(db: Database, lake_dir: Path) -> str:
    with db.session() as session:
        folder, _version = registers.live_folder(session, lake_dir, "person")
    persons = pl.read_parquet(folder / "*.parquet").drop_nulls("birth_date")
    return str(persons.filter(pl.col("birth_date") < pl.date(1935, 1, 1))["id_number"][0])


def test_a_manager_writes_tests_and_runs_a_policy_and_the_person_sees_it_with_the_reasons(
    tabs: Callable[..., Page],  # noqa: F811 - the imported fixture
    server_url: str,
    db: Database,
    lake_dir: Path,
    app: FastAPI,
) -> None:
    elder = _an_old_person(db, lake_dir)
    manager = tabs()
    sign_in(manager, server_url, "admin", DEMO_PASSWORD, "/ops/benefits/new")
    manager.goto(f"{server_url}/ops/benefits/new")
    manager.fill("#code", "river_town_elders")
    manager.fill("#name", "滨江高龄老人慰问金")
    manager.fill("#department_code", "310000.mz")
    manager.select_option("#period", "once")
    manager.fill("#effective_from", "2026-01-01")
    manager.fill("#legal_basis", "演示用条款")
    manager.fill("#conditions", 'age(birth_date) >= 90\ndistrict_code != ""')
    manager.fill("#amount", "500 +")
    manager.get_by_test_id("policy-form").locator("button[type=submit]").click()
    error = manager.get_by_test_id("policy-error")
    expect(error).to_have_attribute("data-field", "amount")
    expect(error).to_contain_text("第 1 行第 6 列")
    expect(manager.locator("#conditions")).to_have_value('age(birth_date) >= 90\ndistrict_code != ""')  # kept
    manager.fill("#amount", "500 + (age(birth_date) - 90) * 10")
    manager.get_by_test_id("policy-form").locator("button[type=submit]").click()
    expect(manager.get_by_test_id("done")).to_be_visible()
    manager.fill("#test_key", elder)
    manager.fill("#as_of", "2026-11-24")
    manager.get_by_role("button", name="测试", exact=True).click()
    expect(manager.get_by_test_id("trace")).to_contain_text("符合条件")
    expect(manager.get_by_test_id("trace").locator("li.outcome-pass")).to_have_count(2)
    manager.get_by_role("button", name="全量试算").click()
    expect(manager.get_by_test_id("dry-run")).to_contain_text("符合条件")
    manager.get_by_role("button", name="启用").click()
    expect(manager.get_by_test_id("versions").locator(".badge")).to_have_count(1)  # the active one
    manager.get_by_role("button", name="立即执行").click()
    # queued: the run page follows it; the outbox's subscriber writes it outside the request
    expect(manager.get_by_test_id("run-status")).to_have_text("排队中")
    with ThreadPoolExecutor(1) as pool:  # the browser's event loop runs in this thread
        pool.submit(lambda: asyncio.run(app.state.relay.drain())).result()
    manager.reload()
    expect(manager.get_by_test_id("run-status")).to_have_text("已完成")

    with db.session() as session:
        create_user(
            session, kind="citizen", username="elder", display_name="长者", password=CITIZEN_PASSWORD, id_number=elder
        )
    person = tabs()
    sign_in(person, server_url, "elder", CITIZEN_PASSWORD, "/my/benefits")
    person.goto(f"{server_url}/my/benefits")
    card = person.get_by_test_id("grants").locator('[data-policy="river_town_elders"]')
    expect(card).to_contain_text("滨江高龄老人慰问金")
    expect(card.get_by_test_id("amount")).not_to_have_text("0.00 元")
    card.locator("summary").click()
    expect(card.locator("li.outcome-pass")).to_have_count(2)
    expect(person.get_by_test_id("others")).to_be_visible()
    card.get_by_role("button", name="申诉").click()
    expect(person.get_by_test_id("benefits-error")).to_be_visible()  # an appeal needs a reason
    card = person.get_by_test_id("grants").locator('[data-policy="river_town_elders"]')
    card.locator("input[name=reason]").fill("我今年已满95周岁，金额应更高")
    card.get_by_role("button", name="申诉").click()
    expect(person.get_by_test_id("grants").locator('[data-policy="river_town_elders"]')).to_contain_text("已申诉")

    manager.goto(f"{server_url}/ops/benefits/river_town_elders")
    appeal = manager.get_by_test_id("appeals").locator("li")
    expect(appeal).to_have_count(1)
    expect(appeal).to_contain_text("我今年已满95周岁")
    expect(appeal).not_to_contain_text(elder)  # the ID number is masked
    appeal.locator("input[name=reason]").fill("金额按年龄段核定，维持")
    appeal.get_by_role("button", name="维持原决定").click()
    expect(manager.get_by_test_id("done")).to_be_visible()
    expect(manager.get_by_test_id("appeals")).to_have_count(0)
    person.goto(f"{server_url}/my/benefits")
    expect(person.get_by_test_id("grants").locator('[data-policy="river_town_elders"]')).to_contain_text("已发放")

    person.goto(f"{server_url}/ops/benefits")
    expect(person.locator("body")).not_to_contain_text("river_town_elders")
