"""一网通办 in a real Chromium: 小孩出生一件事 online, at a window and at a kiosk; three departments complete
their tasks; the issued licence is verified by reading its QR code; every bad input gets a clear message."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from shgov.cases.models import Case
from shgov.core.db import Database
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import assign_role, create_user
from shgov.core.settings import Settings
from shgov.lake.synthetic import SyntheticCity
from tests.cases.conftest import PASSWORD, married_parent
from tests.cases.test_api import pdf_bytes
from tests.conftest import make_settings
from tests.web.test_browser import browser  # noqa: F401 - the module's Chromium fixture

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("engine", ["sqlite"], indirect=True)]

MAX_UPLOAD = 512 * 1024
STAFF_PASSWORD = "Staff#2026xy"


@pytest.fixture
def settings(tmp_path: Path, engine: Engine) -> Settings:
    """Small uploads (so an oversized file is cheap to make) and the shortest kiosk idle time."""
    url = engine.url.render_as_string(hide_password=False)
    return make_settings(
        tmp_path, database={"url": url}, max_upload_bytes=MAX_UPLOAD, services={"kiosk_idle_seconds": 15}
    )


@pytest.fixture
def staff(db: Database, parent: tuple[str, str, str]) -> dict[str, str]:
    """Case workers of the parent's district (卫健 accepts and certifies, 公安, 医保) and a window clerk."""
    _id, _token, district = parent
    accounts = {"wj": "case_worker", "ga": "case_worker", "yb": "case_worker", "mz": "window_clerk"}
    names: dict[str, str] = {}
    with db.session() as session:
        for key, role in accounts.items():
            username = f"t.{district}.{key}"
            user = create_user(
                session,
                kind="staff",
                username=username,
                display_name=f"经办 {key}",
                password=STAFF_PASSWORD,
                tenant_code=district,
                department_code=f"{district}.{key}",
            )
            assign_role(session, user.id, role, Scope(district, f"{district}.{key}"))
            names[key] = username
    return names


@pytest.fixture
def tabs(browser: Browser) -> Iterator[Callable[..., Page]]:  # noqa: F811 - the imported fixture
    """New browser tabs, each in its own context (its own cookies), in Chinese."""
    contexts = []

    def open_tab(**options: object) -> Page:
        context = browser.new_context(locale="zh-CN", **options)  # type: ignore[arg-type]
        contexts.append(context)
        return context.new_page()

    yield open_tab
    for context in contexts:
        context.close()


def sign_in(page: Page, server_url: str, username: str, password: str, next_path: str = "/") -> None:
    page.goto(f"{server_url}/login?next={next_path}")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.locator("form button[type=submit]").last.click()
    expect(page.get_by_test_id("signed-in-as")).to_be_visible()


def attach(page: Page, material: str, name: str, data: bytes, mime: str) -> None:
    page.locator(f'[data-material="name:{material}"] input[type=file]').set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": data}]
    )


def fill_child(page: Page, name: str = "王小宝") -> None:
    page.get_by_label("新生儿姓名").fill(name)
    page.get_by_label("新生儿性别").select_option("女")
    page.get_by_label("出生日期").fill("2026-11-20")
    page.get_by_label("同时办理居民医保参保").check()
    expect(page.locator('[data-material="name:医疗机构分娩记录"]')).to_be_visible()


def case_count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Case)) or 0


def approve(page: Page, server_url: str, case_number: str, task_key: str) -> None:
    page.goto(f"{server_url}/staff/worklist")
    row = page.locator(f'tr[data-case="{case_number}"][data-task="{task_key}"]')
    expect(row).to_be_visible()
    row.get_by_role("button", name="同意").click()
    expect(page.locator(f'tr[data-case="{case_number}"][data-task="{task_key}"]')).to_have_count(0)


def test_a_parent_applies_online_three_departments_handle_it_and_the_licence_is_verified_by_qr(
    tabs: Callable[..., Page],
    server_url: str,
    parent: tuple[str, str, str],
    staff: dict[str, str],
    db: Database,
    tmp_path: Path,
) -> None:
    citizen = tabs(device_scale_factor=2)  # a phone's screen, sharp enough to photograph a QR code from
    sign_in(citizen, server_url, "mother", PASSWORD)
    citizen.goto(f"{server_url}/services?life_event=出生")
    citizen.get_by_test_id("results").get_by_role("link", name="小孩出生一件事").click()
    expect(citizen.get_by_test_id("materials")).to_contain_text("结婚证")
    citizen.get_by_test_id("apply").click()

    # Prefill (两个免于提交): the register's values are marked, the licences are attached.
    expect(citizen.locator('[data-field="applicant_name"] [data-testid=prefilled]')).to_be_visible()
    expect(citizen.locator("#f-applicant_id_number")).to_have_value(parent[0])
    expect(citizen.locator("#f-applicant_id_number")).to_have_attribute("readonly", "")
    attached = citizen.get_by_test_id("licence-attached")
    expect(attached).to_have_count(3)
    expect(citizen.get_by_test_id("dispute-link").first).to_have_attribute("href", "/disputes?element=name")
    expect(citizen.get_by_test_id("precheck")).to_have_attribute("data-passed", "yes")
    # The social-card section shows only when a card is wanted; the server decides (HTMX).
    expect(citizen.locator("#sec-card")).to_be_hidden()
    citizen.get_by_label("同时申领社会保障卡").check()
    expect(citizen.locator("#sec-card")).to_be_visible()
    expect(citizen.locator('[data-material="name:近期免冠证件照"]')).to_be_visible()
    citizen.get_by_label("同时申领社会保障卡").uncheck()
    expect(citizen.locator("#sec-card")).to_be_hidden()
    expect(citizen.locator('[data-material="name:近期免冠证件照"]')).to_have_count(0)

    fill_child(citizen)
    attach(citizen, "医疗机构分娩记录", "分娩记录.pdf", pdf_bytes(2), "application/pdf")
    citizen.get_by_test_id("submit").click()
    expect(citizen.get_by_test_id("submitted")).to_be_visible()
    expect(citizen.get_by_test_id("case-status")).to_have_attribute("data-status", "submitted")
    number = citizen.locator("h1 .code").inner_text().strip()

    # Three departments: 卫健 accepts and certifies the birth, then 公安 and 医保 work in parallel.
    for key, tasks in (("wj", ("accept", "birth_certificate")), ("ga", ("hukou",)), ("yb", ("insurance",))):
        worker = tabs()
        sign_in(worker, server_url, staff[key], STAFF_PASSWORD)
        for task in tasks:
            approve(worker, server_url, number, task)

    citizen.reload()
    expect(citizen.get_by_test_id("case-status")).to_have_attribute("data-status", "concluded")
    licences = citizen.get_by_test_id("licence")
    expect(licences).to_have_count(2)  # 出生医学证明, 户口簿（新生儿页）
    pdf = citizen.request.get(server_url + (citizen.get_by_test_id("licence-pdf").first.get_attribute("href") or ""))
    assert pdf.ok
    assert pdf.body().startswith(b"%PDF")
    citizen.goto(f"{server_url}/my/inbox")
    expect(citizen.get_by_test_id("notices")).to_contain_text("已办结")
    citizen.goto(f"{server_url}/my/cases")
    citizen.get_by_role("link", name=number).click()

    # A verifier photographs the QR code: the page reads it from the picture and checks the signature.
    qr = tmp_path / "qr.png"
    licences.first.locator(".qr svg").screenshot(path=str(qr))
    verifier = tabs()
    verifier.goto(f"{server_url}/licences/verify")
    verifier.locator("[data-scan-image]").set_input_files(str(qr))
    expect(verifier.get_by_test_id("verdict")).to_have_attribute("data-valid", "yes")
    expect(verifier.get_by_test_id("licence-header")).to_contain_text("出生医学证明")
    code = verifier.get_by_test_id("code").input_value()
    tampered = code[:-8] + ("A" if code[-8] != "A" else "B") + code[-7:]
    verifier.get_by_test_id("code").fill(tampered)
    verifier.get_by_role("button", name="核验", exact=True).click()
    expect(verifier.get_by_test_id("verdict")).to_have_attribute("data-valid", "no")


def test_a_window_clerk_checks_identity_and_fills_the_same_form(
    tabs: Callable[..., Page],
    server_url: str,
    parent: tuple[str, str, str],
    staff: dict[str, str],
    city: SyntheticCity,
    db: Database,
) -> None:
    clerk = tabs()
    sign_in(clerk, server_url, staff["mz"], STAFF_PASSWORD)
    clerk.goto(f"{server_url}/staff/window")
    clerk.get_by_label("办理事项").select_option("bundle/birth")
    wrong_check_digit = parent[0][:-1] + ("0" if parent[0][-1] != "0" else "1")
    clerk.get_by_label("申请人身份证号").fill(wrong_check_digit)
    clerk.get_by_label("我已核验").check()
    clerk.get_by_role("button", name="打开申请表").click()
    expect(clerk.get_by_test_id("window-error")).to_contain_text("身份证号无效")
    clerk.get_by_label("申请人身份证号").fill(parent[0])
    clerk.get_by_role("button", name="打开申请表").click()
    expect(clerk.get_by_test_id("window-error")).to_contain_text("核验")  # the identity check is not ticked
    clerk.get_by_label("申请人身份证号").fill(parent[0])
    clerk.get_by_label("我已核验").check()
    clerk.get_by_role("button", name="打开申请表").click()
    expect(clerk.get_by_test_id("window-error")).to_contain_text("姓名")  # the applicant must be present
    clerk.get_by_label("申请人身份证号").fill(parent[0])
    clerk.get_by_label("申请人姓名（与身份证一致）").fill(married_parent(city)[1])
    clerk.get_by_label("我已核验").check()
    clerk.get_by_role("button", name="打开申请表").click()
    expect(clerk.get_by_test_id("window-banner")).to_be_visible()
    expect(clerk.locator("#f-applicant_id_number")).to_have_value(parent[0])
    expect(clerk.get_by_test_id("licence-attached")).to_have_count(3)
    clerk.get_by_label("联系电话").fill("13900003333")  # the register has no phone: the clerk asks
    fill_child(clerk, "王小贝")
    attach(clerk, "医疗机构分娩记录", "分娩记录.pdf", pdf_bytes(1), "application/pdf")
    clerk.get_by_test_id("submit").click()
    expect(clerk.get_by_test_id("submitted")).to_be_visible()
    with db.session() as session:
        case = session.scalars(select(Case)).one()
        assert case.channel == "window"
        assert case.applicant_key == parent[0]
        assert case.form["child_name"] == "王小贝"
    # The citizen sees the case the window filed for them.
    citizen = tabs()
    sign_in(citizen, server_url, "mother", PASSWORD)
    citizen.goto(f"{server_url}/my/cases")
    expect(citizen.get_by_test_id("my-cases")).to_contain_text(case.number)


def test_the_kiosk_has_large_targets_applies_and_signs_out_when_left_alone(
    tabs: Callable[..., Page], server_url: str, parent: tuple[str, str, str], db: Database
) -> None:
    kiosk = tabs(viewport={"width": 1080, "height": 1920}, has_touch=True)
    kiosk.clock.install()
    kiosk.goto(f"{server_url}/kiosk")
    expect(kiosk.locator("body")).to_have_class("mode-kiosk")
    kiosk.get_by_test_id("kiosk-sign-in").click()
    kiosk.get_by_label("用户名").fill("mother")
    kiosk.get_by_label("密码").fill(PASSWORD)
    kiosk.locator("form button[type=submit]").last.click()
    kiosk.get_by_test_id("kiosk-bundles").get_by_role("link", name="小孩出生一件事").click()
    expect(kiosk.get_by_test_id("licence-attached")).to_have_count(3)
    box = kiosk.get_by_test_id("submit").bounding_box()
    assert box is not None
    assert box["height"] >= 60  # large touch targets
    fill_child(kiosk, "王小乐")
    attach(kiosk, "医疗机构分娩记录", "分娩记录.pdf", pdf_bytes(1), "application/pdf")
    kiosk.get_by_test_id("submit").click()
    expect(kiosk.get_by_test_id("submitted")).to_be_visible()
    with db.session() as session:
        assert session.scalars(select(Case.channel)).one() == "kiosk"
    # Nobody touches the screen: the visitor is signed out and the kiosk starts over. (The idle timer is set
    # by a deferred script: under load it may not have run yet when the page's text shows.)
    kiosk.wait_for_load_state("load")
    kiosk.clock.fast_forward(20_000)
    expect(kiosk).to_have_url(f"{server_url}/kiosk")
    expect(kiosk.get_by_test_id("kiosk-sign-in")).to_be_visible()


def test_every_bad_input_gets_a_clear_message_and_no_case(
    tabs: Callable[..., Page],
    server_url: str,
    parent: tuple[str, str, str],
    staff: dict[str, str],
    city: SyntheticCity,
    db: Database,
) -> None:
    citizen = tabs()
    sign_in(citizen, server_url, "mother", PASSWORD)
    url = f"{server_url}/apply/bundle/birth"

    def attempt(child: str, file: tuple[str, bytes, str] | None) -> None:
        citizen.goto(url)
        citizen.evaluate("document.getElementById('apply-form').noValidate = true")
        fill_child(citizen, child)
        if file is not None:
            attach(citizen, "医疗机构分娩记录", *file)
        citizen.get_by_test_id("submit").click()

    attempt("", ("分娩记录.pdf", pdf_bytes(1), "application/pdf"))
    expect(citizen.get_by_test_id("form-error")).to_contain_text("请填写新生儿姓名")
    expect(citizen.locator('[data-field="child_name"] [data-testid=field-error]')).to_be_visible()
    attempt("王小宝", None)
    expect(citizen.get_by_test_id("form-error")).to_contain_text("请上传《医疗机构分娩记录》")
    attempt("王小宝", ("分娩记录.pdf", b"this is not a PDF at all", "application/pdf"))
    expect(citizen.get_by_test_id("form-error")).to_contain_text("医疗机构分娩记录")
    attempt("王小宝", ("分娩记录.pdf", b"%PDF-1.4\n" + b"0" * (MAX_UPLOAD + 10), "application/pdf"))
    expect(citizen.get_by_test_id("form-error")).to_contain_text("MB 的上限")
    citizen.goto(url)
    citizen.get_by_label("联系电话").fill("12345")
    citizen.evaluate("document.getElementById('apply-form').noValidate = true")
    fill_child(citizen)
    attach(citizen, "医疗机构分娩记录", "分娩记录.pdf", pdf_bytes(1), "application/pdf")
    citizen.get_by_test_id("submit").click()
    expect(citizen.get_by_test_id("form-error")).to_contain_text("11位手机号码")
    assert case_count(db) == 0

    # Double submission: the same form (same client token) posted twice makes one case.
    citizen.goto(url)
    fill_child(citizen)
    token = citizen.locator("input[name=client_token]").input_value()
    csrf = citizen.locator("#apply-form input[name=csrf_token]").input_value()
    fields = {
        "csrf_token": csrf,
        "client_token": token,
        "channel": "online",
        "child_name": "王小宝",
        "child_sex": "女",
        "child_birth_date": "2026-11-20",
        "want_medical_insurance": "on",
        "material:name:医疗机构分娩记录": {"name": "a.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes(1)},
    }
    first = citizen.request.post(url, multipart=fields, max_redirects=0)
    assert first.status == 303
    second = citizen.request.post(url, multipart=fields, max_redirects=0)
    assert second.status == 422
    assert "已经提交过了" in second.text()
    assert case_count(db) == 1

    # A condition not met: a 16-year-old at the window.
    minor = (
        city.get("population")
        .filter(pl.col("birth_date").dt.year() == 2010, pl.col("id_number").str.slice(0, 2) == "31")
        .row(0, named=True)
    )
    # a window reaches the applicants of its district: the minor's district's civil affairs window
    district = minor["district_code"]
    with db.session() as session:
        user = create_user(
            session,
            kind="staff",
            username=f"window.{district}",
            display_name="窗口",
            password=STAFF_PASSWORD,
            tenant_code=district,
            department_code=f"{district}.mz",
        )
        assign_role(session, user.id, "window_clerk", Scope(district, f"{district}.mz"))
    clerk = tabs()
    sign_in(clerk, server_url, f"window.{district}", STAFF_PASSWORD)
    clerk.goto(f"{server_url}/staff/window")
    clerk.get_by_label("办理事项").select_option("bundle/birth")
    clerk.get_by_label("申请人身份证号").fill(minor["id_number"])
    clerk.get_by_label("申请人姓名（与身份证一致）").fill(minor["name"])
    clerk.get_by_label("我已核验").check()
    clerk.get_by_role("button", name="打开申请表").click()
    expect(clerk.get_by_test_id("precheck")).to_have_attribute("data-passed", "no")
    expect(clerk.get_by_test_id("precheck")).to_contain_text("年满18周岁")
    clerk.evaluate("document.getElementById('apply-form').noValidate = true")
    clerk.get_by_label("联系电话").fill("13900003333")
    fill_child(clerk)
    attach(clerk, "医疗机构分娩记录", "分娩记录.pdf", pdf_bytes(1), "application/pdf")
    clerk.get_by_test_id("submit").click()
    expect(clerk.get_by_test_id("form-error")).to_contain_text("不符合申请条件")
    assert case_count(db) == 1
