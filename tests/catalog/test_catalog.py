"""The catalog: the seeded entries, an entry's life and versions, the lake schema it sets, search, the
three lists and their checks, import and export, and who may do what."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from shgov.catalog import service as catalog
from shgov.core.db import Database, utcnow
from shgov.core.errors import InvalidError
from shgov.lake import service as lake

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
TokenFor = Callable[[str], str]
URL = "/api/v1/catalog"


def entry(**changes: Any) -> dict[str, Any]:
    """A valid new entry of 市民政局 (who may write it: minzheng.admin)."""
    body: dict[str, Any] = {
        "title": "养老服务机构信息",
        "class_code": "3",
        "item_code": "09",
        "category_code": "002",
        "provider_department_code": "310000.mz",
        "tenant_code": "310000",
        "summary": "全市养老机构的名称、地址、床位数与等级评定",
        "format_class": "database",
        "format": "Parquet",
        "sharing_type": "unconditional",
        "sharing_method": "api",
        "open_type": "unconditional",
        "update_cycle": "monthly",
        "aggregation_mode": "incremental",
        "keywords": ["养老", "床位"],
        "items": [
            {"name": "institution_code", "title": "机构代码", "is_key": True, "required": True},
            {"name": "institution_name", "title": "机构名称"},
            {"name": "beds", "title": "床位数", "data_type": "integer"},
        ],
    }
    body.update(changes)
    return body


def bearer(token_for: TokenFor, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user)}"}


def path(code: str) -> str:
    return f"{URL}/resources/{code}"


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.session() as s:
        yield s


def test_every_lake_resource_and_base_register_is_a_published_entry(session: Session) -> None:
    for row in lake.list_resources(session):
        found = catalog.find_by_lake_resource(session, row.code)
        assert found is not None, row.code
        assert found.status == "published"
        assert found.version == 1
        assert [i.name for i in catalog.items_of(session, found.id)] == [c["name"] for c in row.columns]
        assert {i.name for i in catalog.items_of(session, found.id) if i.is_key} == set(row.key)
    registers = {r.register_code: r for r in catalog.list_resources(session, None) if r.register_code}
    assert set(registers) == {"person", "enterprise", "address", "licence"}
    assert all(r.class_code == "1" for r in registers.values())  # 基础信息资源
    person = registers["person"]
    assert [e.action for e in catalog.history(session, person.id)] == ["create", "submit", "approve"]
    live = catalog.published(session, person.code)
    assert live is not None
    assert live["items"][0]["name"] == "id_number"
    assert live["items"][0]["sensitivity"] == "core"


def test_an_entry_is_written_reviewed_published_revised_and_retired(client: httpx.Client, token_for: TokenFor) -> None:
    owner, reviewer = bearer(token_for, "minzheng.admin"), bearer(token_for, "data.officer")
    created = client.post(f"{URL}/resources", json=entry(), headers=owner)
    assert created.status_code == 201, created.text
    code = created.json()["code"]
    assert code.startswith("309002/")
    assert created.json()["status"] == "draft"
    # A draft is the department's own: other departments do not see it, search does not list it.
    assert client.get(path(code), headers=bearer(token_for, "pudong.window")).status_code == 404
    assert client.get(f"{URL}/resources", params={"q": "养老"}, headers=owner).json()["total"] == 0
    step = f"{path(code)}/transitions"
    assert client.post(step, json={"action": "approve"}, headers=owner).status_code == 409  # not submitted yet
    assert client.post(step, json={"action": "submit"}, headers=owner).json()["status"] == "review"
    assert client.post(step, json={"action": "approve"}, headers=owner).status_code == 403  # reviewers publish
    refused = client.post(step, json={"action": "return"}, headers=reviewer)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "note"
    assert client.post(step, json={"action": "return", "note": "缺少床位数口径"}, headers=reviewer).status_code == 200
    changed = entry(summary="全市养老机构的名称、床位数（核定床位）与等级评定")
    assert client.put(path(code), json=changed, headers=owner).status_code == 200
    client.post(step, json={"action": "submit"}, headers=owner)
    published = client.post(step, json={"action": "approve"}, headers=reviewer).json()
    assert (published["status"], published["version"]) == ("published", 1)
    found = client.get(f"{URL}/resources", params={"q": "养老 床位"}, headers=bearer(token_for, "pudong.window"))
    assert [r["code"] for r in found.json()["results"]] == [code]
    # Revising: a new draft, while version 1 stays live and searchable.
    assert client.put(path(code), json=entry(), headers=owner).status_code == 409  # published: revise first
    client.post(step, json={"action": "revise"}, headers=owner)
    more = entry(items=[*entry()["items"], {"name": "grade", "title": "等级评定"}])
    client.put(path(code), json=more, headers=owner)
    assert client.get(f"{URL}/resources", params={"q": "养老"}, headers=owner).json()["total"] == 1
    client.post(step, json={"action": "submit"}, headers=owner)
    client.post(step, json={"action": "approve"}, headers=reviewer)
    versions = client.get(f"{path(code)}/versions", headers=owner).json()
    assert [v["version"] for v in versions] == [2, 1]
    assert [i["name"] for i in versions[1]["snapshot"]["items"]] == ["institution_code", "institution_name", "beds"]
    assert versions[0]["snapshot"]["items"][-1]["name"] == "grade"
    history = client.get(f"{path(code)}/history", headers=owner).json()
    assert [h["action"] for h in history] == [
        "create", "submit", "return", "edit", "submit", "approve", "revise", "edit", "submit", "approve",
    ]  # fmt: skip
    assert history[2]["note"] == "缺少床位数口径"
    client.post(step, json={"action": "retire", "note": "机构信息并入新目录"}, headers=reviewer)
    assert client.get(f"{URL}/resources", params={"q": "养老"}, headers=owner).json()["total"] == 0


def test_entries_are_checked_and_named_when_wrong(client: httpx.Client, token_for: TokenFor) -> None:
    owner = bearer(token_for, "minzheng.admin")
    cases = [
        (entry(sharing_type="conditional"), "sharing_conditions"),
        (entry(sharing_type="none"), "legal_basis"),
        (entry(update_cycle="fortnightly"), "update_cycle"),
        (entry(items=[{"name": "1bad", "title": "坏"}]), "items[0]"),
        (entry(items=[{"name": "a", "title": "甲"}, {"name": "a", "title": "乙"}]), "items"),
        (entry(items=[{"name": "id_number", "title": "身份号码", "personal": True}]), "open_type"),
        (entry(item_code="9"), "item_code"),
    ]
    for body, field in cases:
        refused = client.post(f"{URL}/resources", json=body, headers=owner)
        assert refused.status_code == 422, (field, refused.text)
        assert field in [e["field"] for e in refused.json()["errors"]] or refused.json()["errors"][0]["field"].endswith(
            field
        ), (field, refused.json())
    other = entry(provider_department_code="310000.ga")
    assert client.post(f"{URL}/resources", json=other, headers=owner).status_code == 403
    assert client.post(f"{URL}/resources", json=entry()).status_code == 401
    assert client.get(f"{URL}/resources", headers=bearer(token_for, "citizen")).status_code == 403


def test_the_published_items_are_the_schema_loads_are_validated_against(
    session: Session, db: Database, tmp_path: Path, token_for: TokenFor
) -> None:
    data = catalog.ResourceData(
        title="养老床位信息",
        class_code="3",
        item_code="09",
        category_code="003",
        provider_department_code="310000.mz",
        tenant_code="310000",
        format_class="database",
        sharing_type="unconditional",
        sharing_method="api",
        open_type="none",
        update_cycle="daily",
        aggregation_mode="incremental",
        lake_resource="care_beds",
        items=[
            catalog.ItemData("institution_code", "机构代码", required=True, is_key=True),
            catalog.ItemData("beds", "床位数", "integer"),
        ],
    )
    created = catalog.create_resource(session, None, data)
    catalog.transition(session, None, created, "submit")
    catalog.transition(session, None, created, "approve")
    spec = lake.get_resource(session, "care_beds")  # publishing created the lake resource
    assert [c.name for c in spec.columns] == ["institution_code", "beds"]
    assert spec.key == ("institution_code",)
    good = tmp_path / "beds.csv"
    good.write_text("institution_code,beds\nYL001,120\nYL002,80\n", encoding="utf-8")
    context = lake.make_context(tmp_path / "lake", {})
    loaded = lake.load(
        session, tmp_path / "lake", "care_beds", lake.Source(path=good), department_code="310000.mz", context=context
    )
    assert loaded.rows_out == 2
    # A new version of the entry adds an item: deliveries without it are refused from then on.
    catalog.transition(session, None, created, "revise")
    data.items.append(catalog.ItemData("grade", "等级", required=True))
    catalog.update_resource(session, None, created, data)
    catalog.transition(session, None, created, "submit")
    catalog.transition(session, None, created, "approve")
    later = tmp_path / "beds-2.csv"
    later.write_text("institution_code,beds\nYL001,125\n", encoding="utf-8")
    with pytest.raises(InvalidError, match="missing columns: grade"):
        lake.load(
            session,
            tmp_path / "lake",
            "care_beds",
            lake.Source(path=later),
            department_code="310000.mz",
            context=context,
        )
    # Dropping the key item is refused at publication, leaving the live schema alone.
    catalog.transition(session, None, created, "revise")
    data.items = [catalog.ItemData("beds", "床位数", "integer")]
    catalog.update_resource(session, None, created, data)
    catalog.transition(session, None, created, "submit")
    with pytest.raises(InvalidError, match="key"):
        catalog.transition(session, None, created, "approve")


def test_search_understands_chinese_ranks_titles_first_and_counts_facets(
    client: httpx.Client, token_for: TokenFor
) -> None:
    reader = bearer(token_for, "pudong.window")

    def search(**params: Any) -> dict[str, Any]:
        found = client.get(f"{URL}/resources", params=params, headers=reader)
        assert found.status_code == 200, found.text
        body: dict[str, Any] = found.json()
        return body

    marriage = search(q="婚姻登记")
    assert marriage["results"][0]["title"] == "婚姻登记信息"
    assert "婚姻" in marriage["words"]
    # A word in the title outranks the same word among the items.
    identity = search(q="身份证")
    assert identity["results"][0]["title"] == "居民身份证电子证照"
    by_item = search(q="法定代表人")
    titles = [r["title"] for r in by_item["results"]]
    assert "企业登记信息" in titles
    everything = search()
    assert everything["total"] >= 18
    assert sum(everything["facets"]["department_code"].values()) == everything["total"]
    assert everything["facets"]["sharing_type"]["conditional"] > 0
    ga = search(department=["310000.ga"])
    assert ga["total"] == everything["facets"]["department_code"]["310000.ga"]
    assert {r["provider_department_code"] for r in ga["results"]} == {"310000.ga"}
    both = search(department=["310000.ga", "310000.mz"])
    assert both["total"] == ga["total"] + everything["facets"]["department_code"]["310000.mz"]
    assert search(q="婚姻", department=["310000.sc"])["total"] == 0
    assert search(q="没有这种数据资源的说法xyz")["total"] == 0
    page = search(limit=5, offset=5)
    assert len(page["results"]) == 5
    assert client.get(f"{URL}/resources", params={"limit": 0}, headers=reader).status_code == 422


def test_the_lists_are_checked_against_each_other_and_the_catalog(
    client: httpx.Client, token_for: TokenFor, session: Session
) -> None:
    officer = bearer(token_for, "data.officer")
    report = client.get(f"{URL}/report", headers=officer).json()
    assert any(g["items"] == ["公积金缴存基数"] for g in report["gaps"])  # no resource has it
    assert any("tax_status" in c["items"] for c in report["negative_conflicts"])
    # Deliveries are fresh today; forty days on, the daily and monthly duties are overdue, the yearly are not.
    assert report["stale_duties"] == []
    later = catalog.report(session, today=utcnow() + timedelta(days=40))
    stale = {s["resource"] for s in later.stale_duties}
    population = catalog.find_by_lake_resource(session, "population")
    assert population is not None
    assert population.code in stale
    assert all(s["last_delivery"] is not None for s in later.stale_duties)
    marriages = catalog.find_by_lake_resource(session, "marriages")
    assert marriages is not None
    check = client.get(
        f"{path(marriages.code)}/shareable", params={"items": "id_number,spouse_id_number,shoe_size"}, headers=officer
    ).json()
    assert check["allowed"] == ["id_number"]
    assert "个人信息保护法" in check["refused"]["spouse_id_number"]
    assert check["unknown"] == ["shoe_size"]
    # A demand a resource satisfies is not a gap; one that asks for a negative-listed item is a conflict.
    owner = bearer(token_for, "minzheng.admin")
    demand = {
        "department_code": "310000.mz",
        "tenant_code": "310000",
        "items": ["id_number", "spouse_id_number"],
        "scenario": "婚姻状况核验",
        "resource_code": marriages.code,
    }
    added = client.post(f"{URL}/demands", json=demand, headers=owner)
    assert added.status_code == 201, added.text
    after = client.get(f"{URL}/report", headers=officer).json()
    assert any(c["demand_id"] == added.json()["id"] for c in after["negative_conflicts"])
    assert (
        client.post(f"{URL}/demands", json=demand | {"department_code": "310000.ga"}, headers=owner).status_code == 403
    )
    bad = client.post(
        f"{URL}/negative",
        json={"resource_code": marriages.code, "item": "nope", "legal_basis": "某法"},
        headers=officer,
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "item"
    whole = client.post(
        f"{URL}/negative", json={"resource_code": marriages.code, "legal_basis": "《婚姻登记条例》"}, headers=officer
    )
    assert whole.status_code == 201
    refused_all = client.get(f"{path(marriages.code)}/shareable", headers=officer).json()
    assert refused_all["allowed"] == []
    assert client.delete(f"{URL}/negative/{whole.json()['id']}", headers=owner).status_code == 204


def test_entries_go_out_and_come_back_as_csv_and_xlsx(client: httpx.Client, token_for: TokenFor) -> None:
    owner = bearer(token_for, "minzheng.admin")
    exported = client.get(f"{URL}/export", params={"format": "csv", "status": "published"}, headers=owner)
    assert exported.status_code == 200
    assert exported.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    marriages = next(r for r in rows if r["lake_resource"] == "marriages")
    assert "spouse_id_number:配偶身份号码:string:core:personal" in marriages["items"]
    # The department writes two new entries in a spreadsheet program (GBK, as Excel saves in China).
    new_rows = [dict(marriages, code="", title="婚姻家庭辅导记录", lake_resource="") for _ in range(2)]
    new_rows[1]["title"] = "离婚冷静期登记"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(new_rows)
    files = {"file": ("catalog.csv", out.getvalue().encode("gb18030"), "text/csv")}
    imported = client.post(f"{URL}/import", files=files, headers=owner)
    assert imported.status_code == 201, imported.text
    assert len(imported.json()["created"]) == 2
    drafts = client.get(f"{URL}/entries", params={"status": "draft"}, headers=owner).json()
    assert {"婚姻家庭辅导记录", "离婚冷静期登记"} <= {d["title"] for d in drafts}
    # One bad row refuses the whole file, naming the row; nothing is created.
    new_rows[1]["update_cycle"] = "sometimes"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(new_rows)
    refused = client.post(
        f"{URL}/import",
        files={"file": ("c.csv", out.getvalue().encode(), "text/csv")},
        headers={**owner, "Accept-Language": "en"},
    )
    assert refused.status_code == 422
    assert "row 3" in refused.json()["detail"]
    assert refused.json()["errors"][0]["field"].startswith("rows[3]")
    assert len(client.get(f"{URL}/entries", params={"status": "draft"}, headers=owner).json()) == len(drafts)
    book = client.get(f"{URL}/export", params={"format": "xlsx"}, headers=owner)
    sheet = load_workbook(io.BytesIO(book.content)).active
    assert sheet is not None
    header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    assert header[:3] == ["code", "version", "status"]
    assert sheet.max_row - 1 == len(client.get(f"{URL}/entries", headers=owner).json())
    wrong = client.post(f"{URL}/import", files={"file": ("c.txt", b"x", "text/plain")}, headers=owner)
    assert wrong.status_code == 422


def test_the_pages_search_show_an_entry_and_the_lists(server_url: str, session: Session) -> None:
    from shgov.core.identity.demo import DEMO_PASSWORD
    from tests.disputes.test_pages import browser_for, csrf_of

    population = catalog.find_by_lake_resource(session, "marriages")
    assert population is not None
    with browser_for(server_url, "data.officer", DEMO_PASSWORD) as browser:
        found = browser.get("/data/catalog", params={"q": "婚姻"})
        assert found.status_code == 200
        assert "婚姻登记信息" in found.text
        assert 'data-facet="department_code=310000.mz"' in found.text
        narrowed = browser.get("/data/catalog", params={"department_code": "310000.ga"})
        assert "户籍人口信息" in narrowed.text
        assert "婚姻登记信息" not in narrowed.text
        page = browser.get(f"/data/catalog/{population.code}")
        assert "配偶身份号码" in page.text
        assert "负面清单" in page.text  # the negative-listed item is marked
        retired = browser.post(
            f"/data/catalog/{population.code}",
            data={"action": "retire", "note": "测试下架", "csrf_token": csrf_of(page.text)},
        )
        assert retired.status_code == 200
        assert "已下架" in retired.text
        lists = browser.get("/data/catalog/lists")
        assert 'data-testid="gap"' in lists.text
        assert "公积金缴存基数" in lists.text


def test_an_export_is_a_frame_polars_reads(client: httpx.Client, token_for: TokenFor) -> None:
    exported = client.get(f"{URL}/export", headers=bearer(token_for, "data.officer"))
    frame = pl.read_csv(io.BytesIO(exported.content))
    assert frame.height >= 18
    assert {"code", "title", "items", "sharing_type"} <= set(frame.columns)
