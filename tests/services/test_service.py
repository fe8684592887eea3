"""Service items, bundles and their processes: import/export, search, the merged guide and form, material
pre-review, the online/offline check, and BPMN that tries to run code."""

from __future__ import annotations

import copy
import io
import json

import pytest
from PIL import Image
from pypdf import PdfWriter
from SpiffWorkflow.util.task import TaskState  # type: ignore[import-untyped]
from sqlalchemy.orm import Session

from shgov.core.db import Database
from shgov.core.errors import InvalidError
from shgov.core.settings import Settings
from shgov.services import process
from shgov.services import service as services
from shgov.services.rules import evaluate_expression, parse_expression
from shgov.services.schemas import ItemIn

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)

BIRTH = services.DATA / "bundles" / "bundles.json"


@pytest.fixture
def session(db: Database, settings: Settings) -> Session:
    with db.session() as s:
        services.seed_demo(s, settings)
        return s


def birth_bundle() -> dict:
    return next(b for b in services.load_bundle_file(BIRTH) if b["code"] == "birth")


def test_items_round_trip_through_csv_and_json_and_a_bad_row_saves_nothing(session: Session) -> None:
    rows = services.export_items(session)
    assert len(rows) >= 60
    assert len({r["department_key"] for r in rows}) >= 12
    again = services.items_from_csv(services.items_to_csv(rows))
    assert [ItemIn.model_validate(r) for r in again] == [ItemIn.model_validate(r) for r in rows]
    assert services.parse_items_file("items.json", json.dumps(rows).encode()) == rows

    changed = copy.deepcopy(rows[:2])
    changed[0]["promised_days"] = 3
    changed[1]["materials"] = [{"name": "x", "necessity": "也许"}]  # not a necessity
    with pytest.raises(InvalidError) as refused:
        services.import_items(session, changed)
    assert "materials" in (refused.value.field or "")
    session.rollback()
    assert services.get_item(session, rows[0]["code"]).promised_days == rows[0]["promised_days"]
    with pytest.raises(InvalidError, match="list of items"):
        services.parse_items_file("items.json", b'{"code": "x"}')


def test_search_finds_by_keyword_and_life_situation_bundles_first(session: Session) -> None:
    born = services.search(session, "出生")
    assert born[0]["kind"] == "bundle"
    assert born[0]["code"] == "birth"
    assert any(h["kind"] == "item" and "出生医学证明" in h["name"] for h in born)
    company = services.search(session, life_event="开办企业")
    assert "company" in [h["code"] for h in company]
    assert all("开办企业" in h["life_events"] for h in company)
    assert services.search(session, "火星移民签证") == []


def test_the_bundle_guide_and_form_ask_everything_once(session: Session) -> None:
    offer = services.offering(session, "bundle", "birth")
    guide = services.guide(offer)
    names = [m.name for m in guide.materials]
    assert len(names) == len(set(names))
    identity = next(m for m in guide.materials if m.name == "居民身份证")
    assert len(identity.items) > 1  # asked by several items, shown once
    assert "online" in guide.channels
    sections = services.form_for(session, offer)
    codes = [f.code for s in sections for f in s.fields]
    assert len(codes) == len(set(codes))
    assert codes.count("applicant_name") == 1
    assert {"want_social_card", "child_name"} <= services.controlling_fields(offer, sections) | {"child_name"}

    base = {
        "applicant_name": "张三",
        "applicant_id_number": "11010519491231002X",
        "applicant_phone": "13900001111",
        "applicant_address": "上海市",
        "child_name": "张小",
        "child_sex": "女",
        "child_birth_date": "2026-11-20",
        "bank_name": "上海银行",
    }
    without_card = services.evaluate_form(sections, base)
    assert without_card.errors == {}
    assert "card" not in without_card.visible
    assert "bank_name" not in without_card.values  # a hidden section's values are not applied for
    with_card = services.evaluate_form(sections, {**base, "want_social_card": "on", "bank_name": ""})
    assert "card" in with_card.visible
    assert "card" in with_card.forced
    assert with_card.messages("zh_CN") == {"bank_name": "请填写社保卡合作银行"}
    assert [i.code for i in services.included_items(offer, with_card.values)][-1] == "310000-RS-0001"
    bad = services.evaluate_form(sections, {**base, "applicant_phone": "123", "child_birth_date": "20/11/2026"})
    assert bad.messages("zh_CN")["applicant_phone"] == "联系电话无效：请填写11位手机号码"
    assert "年-月-日" in bad.messages("zh_CN")["child_birth_date"]
    assert bad.errors["applicant_phone"].field == "form.applicant_phone"


def _pdf(pages: int, password: str | None = None) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    if password:
        writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (255, 255, 255)).save(out, format="PNG")
    return out.getvalue()


def _refusal(need: services.MaterialNeed, data: bytes, filename: str, max_bytes: int) -> str:
    """What 材料预审 tells a Chinese reader about the upload."""
    with pytest.raises(InvalidError) as caught:
        services.check_material(need, data, filename, max_bytes)
    return caught.value.text("zh_CN")


def test_material_pre_review_names_what_is_wrong(session: Session) -> None:
    needs = {n.name: n for n in services.materials_for(services.offering(session, "bundle", "birth").items)}
    record = needs["医疗机构分娩记录"]
    assert services.check_material(record, _pdf(2), "a.pdf", 10**6).pages == 2
    assert "“a_pdf”不是" in _refusal(record, b"just text", "a_pdf", 10**6)
    assert "共 11 页，最多 10 页" in _refusal(record, _pdf(11), "a.pdf", 10**7)
    assert "设有密码" in _refusal(record, _pdf(1, "secret"), "a.pdf", 10**6)
    assert "图片已损坏" in _refusal(record, _png(400, 400)[:60], "a.png", 10**6)  # a truncated picture
    with pytest.raises(InvalidError, match="has 11 pages; at most 10"):  # and in English
        services.check_material(record, _pdf(11), "a.pdf", 10**7)
    photo = needs.get("近期免冠证件照") or next(
        n for n in services.materials_for(services.offering(session, "item", "310000-RS-0001").items) if n.min_width
    )
    assert "至少需要" in _refusal(photo, _png(20, 20), "p.png", 10**6)


def test_the_consistency_check_lists_items_that_differ_offline(session: Session) -> None:
    assert not [d for d in services.inconsistencies(session) if d["code"] == "310000-WJ-0001"]
    item = services.get_item(session, "310000-WJ-0001")
    item.offline = {"promised_days": item.promised_days + 5, "visits": 1}
    session.flush()
    found = [d for d in services.inconsistencies(session) if d["code"] == "310000-WJ-0001"]
    assert {d["field"] for d in found} == {"promised_days", "visits"}


MALICIOUS_SCRIPT = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <bpmn:process id="birth" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="accept"/>
    <bpmn:scriptTask id="evil"><bpmn:script>import os; os.system("rm -rf /")</bpmn:script></bpmn:scriptTask>
    <bpmn:task id="issue"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="accept"/>
    <bpmn:sequenceFlow id="f2" sourceRef="accept" targetRef="evil"/>
    <bpmn:sequenceFlow id="f3" sourceRef="evil" targetRef="issue"/>
    <bpmn:sequenceFlow id="f4" sourceRef="issue" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>"""


@pytest.mark.parametrize(
    "condition",
    [
        "__import__('os').system('id')",
        "want_social_card.__class__",
        "open('/etc/passwd')",
        "[x for x in ().__class__.__bases__]",
        "lambda: 1",
    ],
)
def test_a_gateway_condition_that_is_not_a_plain_comparison_is_refused(session: Session, condition: str) -> None:
    bundle = birth_bundle()
    bundle["bpmn"] = bundle["bpmn"].replace("want_social_card == True", condition)
    with pytest.raises(InvalidError) as refused:
        services.save_bundle(session, bundle)
    assert refused.value.field == "bpmn"
    with pytest.raises(InvalidError):
        parse_expression(condition)


def test_script_tasks_and_run_time_scripts_are_refused(session: Session) -> None:
    bundle = {**birth_bundle(), "bpmn": MALICIOUS_SCRIPT}
    with pytest.raises(InvalidError, match="scriptTask"):
        services.save_bundle(session, bundle)
    with pytest.raises(process.ScriptsForbidden):
        process.ENGINE.environment.execute("import os", {})
    with pytest.raises(InvalidError):
        evaluate_expression("__import__('os')", {})
    external = birth_bundle()
    external["bpmn"] = external["bpmn"].replace(
        "<bpmn:definitions ", '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<bpmn:definitions ', 1
    )
    with pytest.raises(InvalidError):
        services.save_bundle(session, external)


def test_a_process_survives_a_restart_and_its_state_grows_linearly(session: Session) -> None:
    offer = services.offering(session, "bundle", "birth")
    flow = process.start(offer.bpmn, offer.process_id, {"want_social_card": True, "want_medical_insurance": True})
    sizes = []
    done = []
    while not flow.is_completed():
        state = process.dump(flow)
        sizes.append(len(state))
        process._specs.clear()  # a restart: nothing but the stored state and the BPMN text remains
        process._spec_dicts.clear()
        flow = process.load(offer.bpmn, offer.process_id, state)
        ready = [t for t in flow.get_tasks(state=TaskState.READY) if t.task_spec.manual]
        assert ready, "the process is stuck"
        ready[0].run()
        done.append(ready[0].task_spec.bpmn_id)
        flow.do_engine_steps()
    assert done[:2] == ["accept", "birth_certificate"]
    assert {"hukou", "social_card", "insurance", "issue"} <= set(done)
    assert max(sizes) < 2 * sizes[0]  # the stored state holds the tasks, not every step's history
