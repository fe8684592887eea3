"""The parts of a backup set on disk: files copied with their SM3 digests, the manifest that lists them, and
the keys sealed with a passphrase.

A backup set is a folder::

    MANIFEST.json   what the set holds: every file with its size and SM3 digest, the database's snapshot,
                    the row count of every table, the lake versions the database names as live
    MANIFEST.sm3    the SM3 digest of MANIFEST.json (written last: a set without it is incomplete)
    database/       the database (a SQLite file, a pg_dump archive, or pg_basebackup's tar files)
    data/           the data folder (uploads, models, sensing log, audit checkpoints, …) without caches
    lake/           the Parquet lake: version folders and CURRENT pointers
    keys.enc        the keys, sealed with a passphrase (scrypt, then SM4-GCM)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

FORMAT = "shgov-backup/1"
MANIFEST = "MANIFEST.json"
MANIFEST_DIGEST = "MANIFEST.sm3"
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or a restore cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Entry:
    """One file of a backup set: its path inside the set, size and SM3 digest."""

    path: str
    size: int
    sm3: str

    def as_json(self) -> dict[str, Any]:
        """The manifest's line for this file."""
        return {"path": self.path, "size": self.size, "sm3": self.sm3}


def sm3_hex(data: bytes) -> str:
    """The SM3 digest (GB/T 32905) of ``data`` in hex."""
    return hashlib.new("sm3", data).hexdigest()


def copy_file(source: Path, root: Path, path: str) -> Entry:
    """Copy ``source`` to ``root/path``, hashing the bytes as they are written (one read of the source).

    The digest is of the bytes copied, so a file that changes during the copy is still described truly."""
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.new("sm3")
    size = 0
    with source.open("rb") as src, target.open("wb") as out:
        while block := src.read(CHUNK):
            digest.update(block)
            out.write(block)
            size += len(block)
    return Entry(path, size, digest.hexdigest())


def write_bytes(root: Path, path: str, data: bytes) -> Entry:
    """Write ``data`` as ``root/path`` and describe it."""
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return Entry(path, len(data), sm3_hex(data))


def describe(root: Path, path: str) -> Entry:
    """Size and SM3 digest of a file already in the set (written by a tool such as pg_dump)."""
    digest = hashlib.new("sm3")
    size = 0
    with (root / path).open("rb") as src:
        while block := src.read(CHUNK):
            digest.update(block)
            size += len(block)
    return Entry(path, size, digest.hexdigest())


def write_manifest(root: Path, manifest: Mapping[str, Any]) -> str:
    """Write MANIFEST.json, then its digest; returns the digest."""
    raw = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
    (root / MANIFEST).write_bytes(raw)
    digest = sm3_hex(raw)
    # Written last, through a rename: a set is complete exactly when this file exists.
    tmp = root / f".{MANIFEST_DIGEST}.tmp"
    tmp.write_text(f"{digest}  {MANIFEST}\n", encoding="ascii")
    tmp.replace(root / MANIFEST_DIGEST)
    return digest


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of the set at ``root``, once its own digest holds."""
    if not (root / MANIFEST_DIGEST).exists() or not (root / MANIFEST).exists():
        raise BackupError(f"{root} is not a complete backup set ({MANIFEST} or {MANIFEST_DIGEST} is missing)")
    raw = (root / MANIFEST).read_bytes()
    expected = (root / MANIFEST_DIGEST).read_text(encoding="ascii").split()[0]
    if sm3_hex(raw) != expected:
        raise BackupError(f"{MANIFEST} does not match {MANIFEST_DIGEST}: the backup set is damaged")
    manifest: dict[str, Any] = json.loads(raw)
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{root} is a backup of format {manifest.get('format')!r}; this version reads {FORMAT}")
    return manifest


def verify_files(root: Path, files: Iterable[Mapping[str, Any]]) -> int:
    """Check every listed file's size and SM3 digest, and that the set holds no file the manifest does not
    list; raises ``BackupError`` naming the first problems. Returns the bytes checked."""
    problems: list[str] = []
    listed: set[str] = set()
    checked = 0
    for item in files:
        path = str(item["path"])
        listed.add(path)
        if not _safe(path):
            problems.append(f"{path}: not a path inside the set")
            continue
        file = root / path
        if not file.is_file():
            problems.append(f"{path}: missing")
            continue
        if file.stat().st_size != item["size"]:
            problems.append(f"{path}: {file.stat().st_size} bytes, the manifest says {item['size']}")
            continue
        found = describe(root, path)
        checked += found.size
        if found.sm3 != item["sm3"]:
            problems.append(f"{path}: SM3 differs from the manifest")
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rel not in listed and rel not in (MANIFEST, MANIFEST_DIGEST):
                problems.append(f"{rel}: not in the manifest")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise BackupError(f"the backup set at {root} is damaged, nothing was restored: {shown}")
    return checked


def _safe(path: str) -> bool:
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts


# -- keys ------------------------------------------------------------------------------------------------

_MAGIC = b"SHGOV-KEYS/1\n"
# scrypt at 128 MiB and about half a second: cheap for one restore, dear for guessing passphrases.
_SCRYPT = {"n": 2**17, "r": 8, "p": 1}


def pack_keys(files: Mapping[str, Path]) -> bytes:
    """A tar (in memory) of the key files, each under its name in the set (``data/keys/…``)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, path in sorted(files.items()):
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def unpack_keys(data: bytes) -> dict[str, bytes]:
    """The key files of a tar made by ``pack_keys``, by name; refuses names that would leave the target."""
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar.getmembers():
            if not member.isfile() or not _safe(member.name):
                raise BackupError(f"keys.enc holds {member.name!r}, which is not a plain file inside the set")
            handle = tar.extractfile(member)
            assert handle is not None  # noqa: S101 - a regular file member always has content
            found[member.name] = handle.read()
    return found


def _cipher(name: str, key: bytes, nonce: bytes, tag: bytes | None = None) -> Cipher[modes.GCM]:
    algorithm = algorithms.SM4(key) if name == "SM4-GCM" else algorithms.AES(key)
    return Cipher(algorithm, modes.GCM(nonce, tag))


def _sm4_available() -> bool:
    try:
        _cipher("SM4-GCM", bytes(16), bytes(12)).encryptor()
    except UnsupportedAlgorithm:
        return False
    return True


def seal(plain: bytes, passphrase: str) -> bytes:
    """Encrypt ``plain`` under a key derived from ``passphrase`` (scrypt; SM4-GCM, or AES-256-GCM where the
    OpenSSL build has no SM4). The header (algorithms, salt, nonce) is authenticated with the contents."""
    if not passphrase:
        raise BackupError("an empty passphrase cannot protect the keys")
    name = "SM4-GCM" if _sm4_available() else "AES-256-GCM"
    salt, nonce = os.urandom(16), os.urandom(12)
    header = json.dumps({"kdf": "scrypt", **_SCRYPT, "salt": salt.hex(), "cipher": name, "nonce": nonce.hex()})
    head = header.encode()
    key = _derive(passphrase, salt, name, _SCRYPT)
    encryptor = _cipher(name, key, nonce).encryptor()
    encryptor.authenticate_additional_data(_MAGIC + head)
    body = encryptor.update(plain) + encryptor.finalize()
    return _MAGIC + struct.pack(">I", len(head)) + head + body + encryptor.tag


def unseal(sealed: bytes, passphrase: str) -> bytes:
    """The contents ``seal`` encrypted; ``BackupError`` for a wrong passphrase or altered bytes."""
    if not sealed.startswith(_MAGIC) or len(sealed) < len(_MAGIC) + 4 + 16:
        raise BackupError("keys.enc is not a sealed key file")
    offset = len(_MAGIC)
    (length,) = struct.unpack(">I", sealed[offset : offset + 4])
    head = sealed[offset + 4 : offset + 4 + length]
    body, tag = sealed[offset + 4 + length : -16], sealed[-16:]
    try:
        header = json.loads(head)
        params = {k: int(header[k]) for k in ("n", "r", "p")}
        key = _derive(passphrase, bytes.fromhex(header["salt"]), header["cipher"], params)
        decryptor = _cipher(header["cipher"], key, bytes.fromhex(header["nonce"]), tag).decryptor()
        decryptor.authenticate_additional_data(_MAGIC + head)
        return decryptor.update(body) + decryptor.finalize()
    except InvalidTag as exc:
        raise BackupError("the passphrase does not open keys.enc (or the file was altered)") from exc
    except (KeyError, ValueError, UnsupportedAlgorithm) as exc:
        raise BackupError(f"keys.enc cannot be read: {exc}") from exc


def _derive(passphrase: str, salt: bytes, cipher: str, params: Mapping[str, int]) -> bytes:
    length = 16 if cipher == "SM4-GCM" else 32
    kdf = Scrypt(salt=salt, length=length, n=params["n"], r=params["r"], p=params["p"])
    return kdf.derive(passphrase.encode())


def cipher_name(sealed: bytes) -> str:
    """The cipher a sealed file names in its header (for the manifest)."""
    offset = len(_MAGIC)
    (length,) = struct.unpack(">I", sealed[offset : offset + 4])
    return str(json.loads(sealed[offset + 4 : offset + 4 + length])["cipher"])
