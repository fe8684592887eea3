"""The exchange node key: any key signs verifiably (X beginning with 04 included), a key that cannot verify its
own signature is refused naming its file, and peers' public keys are read in every SM2 encoding."""

from __future__ import annotations

from pathlib import Path

import pytest

from shgov.core import sm2
from shgov.core.db import Database
from shgov.core.errors import InvalidError
from shgov.sharing import exchange

# X = 044a70…: the kind of key whose signatures gmssl's lstrip("04") made unverifiable.
PRIVATE_04 = "a3185993e9eaf91d8573bf0b543531763fa82f362d50edbd7142fa8582594f22"
PUBLIC_04 = (
    "044a70308dd1d52cfed19f0ebe092d5b20b74603e708b78535e0c1732d1a31f5"
    "31d3e918f2a6a1ae6fb7b764050e0184d7aa27be73bead8b5ed35acd717e7aba"
)


def _key_file(data_dir: Path, private_hex: str) -> Path:
    path = data_dir / exchange.KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(private_hex, encoding="ascii")
    return path


def test_a_new_node_key_is_made_owner_only_and_signs_verifiably(tmp_path: Path) -> None:
    key = exchange.node_key(tmp_path)
    path = tmp_path / exchange.KEY_FILE
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert exchange.node_key(tmp_path) == key
    assert sm2.verify(key.public, b"manifest", key.sign(b"manifest"))


def test_a_node_key_whose_x_begins_with_04_signs_verifiably(tmp_path: Path) -> None:
    _key_file(tmp_path, PRIVATE_04)
    key = exchange.node_key(tmp_path)
    assert key.public == PUBLIC_04
    assert sm2.verify(key.public, b"manifest", key.sign(b"manifest"))


def test_a_node_key_that_fails_its_self_check_is_refused_naming_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _key_file(tmp_path, PRIVATE_04)
    monkeypatch.setattr(sm2, "verify", lambda *_: False)
    with pytest.raises(InvalidError, match=f"{path} fails its self-check"):
        exchange.node_key(tmp_path)
    monkeypatch.undo()
    _key_file(tmp_path, "04" * 20)
    with pytest.raises(InvalidError, match=f"{path} fails its self-check"):
        exchange.node_key(tmp_path)


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_peers_public_keys_are_read_in_every_encoding_and_kept_as_x_y(db: Database) -> None:
    compressed = ("03" if int(PUBLIC_04[64:], 16) % 2 else "02") + PUBLIC_04[:64]
    with db.session() as session:
        for i, form in enumerate([PUBLIC_04, "04" + PUBLIC_04, compressed, PUBLIC_04.upper()]):
            assert exchange.trust(session, f"peer-{i}", form).public_key == PUBLIC_04
        for bad in ("abc", "05" + PUBLIC_04, PUBLIC_04[:64] + "0" * 64):
            with pytest.raises(InvalidError, match="128 hex"):
                exchange.trust(session, "bad", bad)
