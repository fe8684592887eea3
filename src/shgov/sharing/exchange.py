"""Cross-level exchange (国家—市—区, 长三角, tenant to tenant): signed packages of a resource's changes.

A package is one ``.tar`` file holding ``manifest.json``, ``manifest.sig`` and Parquet parts of at
most ``PART_ROWS`` rows. The manifest names the package (a UUID), the sending node, the resource and
the versions the delta spans, and every part with its row count and SM3 digest; ``manifest.sig`` is
the SM2 signature (with SM3, via ``shgov.core.sm2``) of the manifest's exact bytes by the sending node's key.

Importing checks, before anything is written, that the sender is a trusted peer, that the signature
holds and that every part has its digest; then loads the parts one by one as incremental deliveries
of the local resource, recording each finished part, so an import that is interrupted resumes with
the next part and a package imported before is recognised by its id and not applied twice.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shgov.core import sm2
from shgov.core.audit.service import sm3
from shgov.core.db import Database, utcnow
from shgov.core.errors import ConflictError, InvalidError, NotFoundError
from shgov.core.i18n import N_
from shgov.lake import service as lake
from shgov.sharing.models import ExchangeImport, ExchangePeer

FORMAT = "shgov-exchange/1"
PART_ROWS = 200_000
KEY_FILE = "exchange/sm2.key"


# -- keys --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeKey:
    """This node's SM2 key pair (hex)."""

    private: str
    public: str

    def sign(self, data: bytes) -> str:
        """The SM2 signature (SM3 digest, Z value included) of ``data``, hex r‖s."""
        return sm2.sign(self.private, data)


def node_key(data_dir: Path) -> NodeKey:
    """This node's key, made on first use and kept owner-only under the data folder; refused, naming its
    file, when it cannot verify its own signature (every package it signed would then be refused)."""
    path = data_dir / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(sm2.generate_private_key(), encoding="ascii")
        tmp.chmod(0o600)
        tmp.replace(path)
    private = path.read_text(encoding="ascii").strip().lower()
    try:
        public = sm2.public_key(private)
        sm2.self_check(private, public)
    except ValueError as exc:  # a malformed key, or sm2.KeyCheckError
        raise InvalidError(
            N_("the node key in {path} fails its self-check ({reason}); move it away to make a new one"),
            field="key",
            path=path,
            reason=str(exc),
        ) from exc
    return NodeKey(private, public)


def trust(session: Session, name: str, public_key: str, tenant_code: str = "") -> ExchangePeer:
    """Trust packages signed by ``public_key`` (X‖Y, 04‖X‖Y or compressed 02/03‖X; kept as X‖Y) as coming
    from node ``name``."""
    try:
        key = sm2.normalize_public_key(public_key)
    except ValueError as exc:
        raise InvalidError(
            N_("an SM2 public key is 128 hex digits X‖Y (04‖X‖Y and compressed 02/03‖X are read too) on the SM2 curve"),
            field="public_key",
        ) from exc
    peer = session.get(ExchangePeer, name)
    if peer is None:
        peer = ExchangePeer(name=name, public_key=key, tenant_code=tenant_code)
        session.add(peer)
    else:
        peer.public_key, peer.tenant_code = key, tenant_code
    session.flush()
    return peer


# -- export ------------------------------------------------------------------------------------------


def export_package(
    session: Session, lake_dir: Path, data_dir: Path, node: str, resource: str, since_version: int, target: Path
) -> dict[str, Any]:
    """Write the changes of lake resource ``resource`` since ``since_version`` (0: all rows) as a signed
    package at ``target``; returns the manifest."""
    spec = lake.get_resource(session, resource)
    if spec.current_version == 0:
        raise NotFoundError(N_("{resource} has no data to send"), field="resource", resource=resource)
    if not 0 <= since_version <= spec.current_version:
        raise InvalidError(N_("since must be 0–{most}"), field="since", most=spec.current_version)
    current = lake.read_version(lake_dir, resource, spec.current_version)
    assert current is not None  # noqa: S101 - the live version exists
    key = list(spec.key)
    delta = current
    if since_version:
        before = lake.read_version(lake_dir, resource, since_version)
        if before is None:
            raise NotFoundError(
                N_("version {version} of {resource} is gone"), field="since", version=since_version, resource=resource
            )
        delta = current.join(before, on=current.columns, how="anti", nulls_equal=True)
    package_id = str(uuid.uuid4())
    parts: list[tuple[str, bytes, int]] = []
    for number, start in enumerate(range(0, max(delta.height, 1), PART_ROWS)):
        chunk = delta.slice(start, PART_ROWS)
        buffer = io.BytesIO()
        chunk.write_parquet(buffer, compression="zstd")
        parts.append((f"part-{number:05d}.parquet", buffer.getvalue(), chunk.height))
    manifest = {
        "format": FORMAT,
        "package_id": package_id,
        "node": node,
        "resource": resource,
        "key": key,
        "since_version": since_version,
        "version": spec.current_version,
        "rows": delta.height,
        "created_at": utcnow().isoformat(),
        "parts": [{"name": n, "rows": r, "bytes": len(b), "sm3": sm3(b)} for n, b, r in parts],
    }
    raw = json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=1).encode()
    signature = node_key(data_dir).sign(raw).encode()
    tmp = target.with_suffix(".partial")
    with tarfile.open(tmp, "w") as tar:
        for name, data in [("manifest.json", raw), ("manifest.sig", signature), *[(n, b) for n, b, _ in parts]]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(target)
    return manifest


# -- import ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOutcome:
    """What an import did."""

    package_id: str
    status: str  # imported | already imported | interrupted
    parts_loaded: int
    rows: int


def _open(path: Path) -> tuple[dict[str, Any], bytes, str]:
    try:
        raw = _member_bytes(path, "manifest.json")
        signature = _member_bytes(path, "manifest.sig").decode("ascii").strip()
        manifest = json.loads(raw)
    except (tarfile.TarError, OSError, ValueError, KeyError) as exc:
        raise InvalidError(N_("not a readable exchange package: {reason}"), field="file", reason=str(exc)) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidError(N_("not an exchange package of a known format"), field="file")
    return manifest, raw, signature


def _read(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> bytes:
    member = members.get(name)
    handle = tar.extractfile(member) if member is not None and member.isfile() else None
    if handle is None:
        raise KeyError(f"{name} is missing")
    return handle.read()


def import_package(
    db: Database, lake_dir: Path, path: Path, context: lake.RuleContext, stop_after: int | None = None
) -> ImportOutcome:
    """Verify and apply a package (see the module docstring). Each part commits on its own so that an
    interrupted import resumes; ``stop_after`` ends a run after that many parts (to test resuming)."""
    manifest, raw, signature = _open(path)
    with tarfile.open(path, "r") as tar, db.session() as session:
        peer = session.get(ExchangePeer, str(manifest.get("node", "")))
        if peer is None:
            raise InvalidError(N_("node {node!r} is not a trusted peer"), field="file", node=manifest.get("node"))
        if not sm2.verify(peer.public_key, raw, signature):
            raise InvalidError(N_("the manifest's SM2 signature does not verify: the package is refused"), field="file")
        members = {m.name: m for m in tar.getmembers()}
        for part in manifest["parts"]:
            data = _read(tar, members, part["name"]) if part["name"] in members else b""
            if sm3(data) != part["sm3"]:
                raise InvalidError(
                    N_("{part} does not match its SM3 digest: the package is refused"), field="file", part=part["name"]
                )
        spec = lake.get_resource(session, manifest["resource"])
        if list(spec.key) != manifest["key"]:
            raise ConflictError(
                N_("{resource} is keyed by {key}, the package by {package_key}"),
                field="file",
                resource=spec.code,
                key=spec.key,
                package_key=manifest["key"],
            )
        record = session.get(ExchangeImport, manifest["package_id"])
        if record is None:
            record = ExchangeImport(
                package_id=manifest["package_id"],
                node=peer.name,
                resource=spec.code,
                parts_total=len(manifest["parts"]),
                parts_done=[],
                status="importing",
                started_at=utcnow(),
            )
            session.add(record)
        elif record.status == "imported":
            return ImportOutcome(record.package_id, "already imported", 0, record.rows)
        department = spec.department_code
    loaded = 0
    folder = lake_dir / "_exchange" / manifest["package_id"]
    folder.mkdir(parents=True, exist_ok=True)
    for part in manifest["parts"]:
        with db.session() as session:
            record = session.get(ExchangeImport, manifest["package_id"])
            assert record is not None  # noqa: S101 - made above
            if part["name"] in record.parts_done:
                continue
            if stop_after is not None and loaded >= stop_after:
                return ImportOutcome(record.package_id, "interrupted", loaded, record.rows)
            file = folder / part["name"]
            file.write_bytes(_member_bytes(path, part["name"]))
            if part["rows"]:
                lake.load(
                    session,
                    lake_dir,
                    manifest["resource"],
                    lake.Source(path=file),
                    department_code=department,
                    mode="incremental",
                    context=context,
                    loaded_by=f"exchange:{manifest['node']}",
                )
            file.unlink(missing_ok=True)  # the lake's new version holds the rows now
            record.parts_done = [*record.parts_done, part["name"]]
            record.rows += part["rows"]
            loaded += 1
    with db.session() as session:
        record = session.get(ExchangeImport, manifest["package_id"])
        assert record is not None  # noqa: S101 - made above
        record.status, record.finished_at = "imported", utcnow()
        rows = record.rows
    shutil.rmtree(folder, ignore_errors=True)
    return ImportOutcome(manifest["package_id"], "imported", loaded, rows)


def _member_bytes(path: Path, name: str) -> bytes:
    with tarfile.open(path, "r") as tar:
        return _read(tar, {m.name: m for m in tar.getmembers()}, name)


def imports(session: Session) -> list[ExchangeImport]:
    """Every package imported or being imported, newest first."""
    return list(session.scalars(select(ExchangeImport).order_by(ExchangeImport.started_at.desc())))
