"""E-licence signatures: a key whose public X begins with 04 signs licences that verify everywhere — here, in
OpenSSL and in a plain-Python verifier — and a key that cannot verify its own signature is refused by name."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shgov.app import create_app
from shgov.core import sm2
from shgov.core.db import Database
from shgov.core.errors import InvalidError
from shgov.core.settings import Settings
from shgov.registers import licences
from tests.conftest import make_settings
from tests.core import sm2_reference as ref

# Found by tests/core/test_sm2.py's seeded search: X = 044a70…, which gmssl's lstrip("04") cut to a70…
PRIVATE_04 = "a3185993e9eaf91d8573bf0b543531763fa82f362d50edbd7142fa8582594f22"
PUBLIC_04 = (
    "044a70308dd1d52cfed19f0ebe092d5b20b74603e708b78535e0c1732d1a31f5"
    "31d3e918f2a6a1ae6fb7b764050e0184d7aa27be73bead8b5ed35acd717e7aba"
)
TODAY = date(2026, 3, 2)


def _use_key(settings: Settings, private_hex: str) -> Path:
    path = licences.key_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(private_hex + "\n")
    licences._keys.pop(path, None)
    return path


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_licence_signed_by_a_key_whose_x_begins_with_04_verifies_here_in_openssl_and_in_plain_python(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    _use_key(settings, PRIVATE_04)
    key = licences.signing_key(settings)
    assert key.public_hex == PUBLIC_04
    with db.session() as session:
        licence = licences.issue(
            session,
            settings,
            licence_type="营业执照",
            holder_id="91310000MA1FL8XK0Q",
            holder_name="申城示例有限公司",
            issuer_department="310000.scjgj",
            issuer_name="上海市市场监督管理局",
            particulars={"注册资本": "100 万元"},
            issued_on=TODAY,
        )
        assert licences.verify(session, settings, licences.code_of(licence)).valid
    offline = licences.verify_offline(licences.code_of(licence), PUBLIC_04, today=TODAY)
    assert offline.valid
    payload = licence.payload.encode()
    assert ref.reference_verify(PUBLIC_04, payload, licence.signature)
    exe, why = ref.openssl_with_sm2()
    if exe is None:
        pytest.skip(f"no independent SM2 verifier: {why}")
    assert ref.openssl_verify(exe, tmp_path, PUBLIC_04, payload, licence.signature)
    assert not ref.openssl_verify(exe, tmp_path, PUBLIC_04, payload.replace(b"A", b"B"), licence.signature)


def test_a_key_that_cannot_verify_its_own_signature_is_refused_naming_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    path = _use_key(settings, PRIVATE_04)
    assert licences.signing_key(settings).public_hex == PUBLIC_04
    licences._keys.pop(path, None)
    monkeypatch.setattr(sm2, "verify", lambda *_: False)  # what gmssl did for this very key
    with pytest.raises(InvalidError, match=f"{path}.*self-check"):
        licences.signing_key(settings)
    assert path not in licences._keys


@pytest.mark.parametrize("content", ["", "not-a-key", "0" * 64, "g" * 64])
def test_a_malformed_key_file_is_refused_naming_it(tmp_path: Path, content: str) -> None:
    settings = make_settings(tmp_path)
    path = _use_key(settings, content)
    with pytest.raises(InvalidError, match=f"{path} does not hold an SM2 private key"):
        licences.signing_key(settings)


def test_the_app_refuses_to_start_with_a_licence_key_it_cannot_use(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    path = _use_key(settings, "0" * 64)
    app = create_app(settings, background=False)
    with pytest.raises(InvalidError, match=str(path)), TestClient(app):
        pass
