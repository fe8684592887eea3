"""小孩出生一件事 through the API: prefill, licence reuse, pre-check, parallel tasks, issuance, verification."""

from __future__ import annotations

import io
from pathlib import Path

import httpx

from shgov.core.db import Database

TokenFor = object


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def pdf_bytes(pages: int = 1) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_parent_applies_for_the_birth_bundle_and_gets_signed_licences(
    client: httpx.Client, parent: tuple[str, str, str], token_for, lake_dir: Path, db: Database
) -> None:
    id_number, token, _district = parent
    prep = client.get("/api/v1/offerings/bundle/birth/prepare", headers=auth(token)).json()
    assert prep["prefilled"]["applicant_id_number"] == id_number
    assert prep["prefilled"]["spouse_id_number"]
    assert prep["precheck"]["passed"], prep["precheck"]
    licences = {m["name"]: m["licence_no"] for m in prep["materials"]}
    assert licences["居民身份证"]
    assert licences["户口簿"]
    assert licences["结婚证"]
    form = {
        "child_name": "王小宝",
        "child_sex": "女",
        "child_birth_date": "2026-11-20",
        "want_social_card": "on",
        "bank_name": "上海银行",
        "client_token": "t-1",
    }
    files = {
        "material:name:医疗机构分娩记录": ("分娩记录.pdf", pdf_bytes(2), "application/pdf"),
        "material:name:近期免冠证件照": ("photo.png", png_bytes(300, 420), "image/png"),
    }
    made = client.post("/api/v1/offerings/bundle/birth/applications", data=form, files=files, headers=auth(token))
    assert made.status_code == 201, made.text
    case = made.json()
    assert case["status"] == "submitted"
    assert "applicant_name" in case["prefilled"]
    again = client.post("/api/v1/offerings/bundle/birth/applications", data=form, files=files, headers=auth(token))
    assert again.status_code == 409
    assert case["number"] in again.json()["detail"]
    assert [t["key"] for t in case["tasks"]] == ["accept"]
    assert case["items"] == ["310000-WJ-0001", "310000-GA-0001", "310000-RS-0001"]
    staff = {name: token_for(name) for name in ("admin",)}
    accepted = step(client, staff["admin"], case, "accept", "approve")
    assert accepted["status"] == "in_progress"
    assert accepted["due_on"]
    after_cert = step(client, staff["admin"], accepted, "birth_certificate", "approve")
    assert {t["key"] for t in after_cert["tasks"] if t["status"] == "ready"} == {"hukou", "social_card"}
    returned = step(client, staff["admin"], after_cert, "hukou", "return", "请补充分娩记录第二页")
    assert returned["status"] == "correction"
    fixed = client.post(
        f"/api/v1/cases/{case['id']}/correction", data={"birth_hospital": "浦东新区妇幼保健院"}, headers=auth(token)
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["status"] == "in_progress"
    done = step(client, staff["admin"], fixed.json(), "hukou", "approve")
    done = step(client, staff["admin"], done, "social_card", "approve")
    assert done["status"] == "concluded"
    issued = {lic["licence_type"]: lic for lic in done["licences"]}
    assert set(issued) == {"出生医学证明", "户口簿（新生儿页）", "社会保障卡"}
    pdf = client.get(f"/api/v1/licences/{issued['出生医学证明']['licence_no']}.pdf", headers=auth(token))
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    with db.session() as session:
        from shgov.registers import service as registers

        licence = registers.issued_licence(session, issued["出生医学证明"]["licence_no"])
        assert licence is not None
        code = registers.licence_code(licence)
    key = client.get("/api/v1/licences/public-key").json()["public_key"]
    offline = registers.verify_licence_offline(code, key)
    assert offline.valid
    assert offline.header is not None
    assert offline.header["name"] == done["applicant_name"]
    forged = code[:-8] + ("A" if code[-8] != "A" else "B") + code[-7:]
    assert not registers.verify_licence_offline(forged, key).signature_valid
    assert client.post("/api/v1/licences/verify", json={"code": code}).json()["valid"] is True
    revoked = client.post(
        f"/api/v1/licences/{licence.licence_no}/revoke",
        json={"reason": "信息有误，重新签发"},
        headers=auth(staff["admin"]),
    )
    assert revoked.status_code == 200
    check = client.post("/api/v1/licences/verify", json={"code": code}).json()
    assert check["valid"] is False
    assert check["revoked"] is True
    history = [h["action"] for h in done["history"]]
    assert history[:3] == ["submit", "accept", "approve"]
    assert "return" in history
    assert "resubmit" in history
    assert history[-1] == "conclude"


def step(client: httpx.Client, token: str, case: dict, key: str, action: str, note: str = "") -> dict:
    task = next(t for t in case["tasks"] if t["key"] == key and t["status"] in ("ready", "claimed"))
    done = client.post(f"/api/v1/tasks/{task['id']}", json={"action": action, "note": note}, headers=auth(token))
    assert done.status_code == 200, done.text
    return done.json()


def png_bytes(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 200, 200)).save(out, format="PNG")
    return out.getvalue()
