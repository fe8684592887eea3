"""E-licences issued by SH-GOV (统一发证): SM2-signed, verifiable offline from a QR code, revocable.

A licence's header and particulars are written as canonical JSON (sorted keys, no spaces, UTF-8) and
signed with SM2 over SM3 (GB/T 32918, default user ID). The QR code carries the signed payload and the
signature, ``SHGOVL1.<base64url payload>.<base64url r‖s>``, so a verifier holding the platform's public
key checks it with no connection; revocation is checked online (or against the published revocation list).
The holder's ID number is masked inside the payload: the code shown at a counter leaks no ID number.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import segno
from sqlalchemy import select
from sqlalchemy.orm import Session

from shgov.core import sm2
from shgov.core.db import utcnow
from shgov.core.errors import ConflictError, InvalidError, NotFoundError
from shgov.core.i18n import N_
from shgov.core.ids import mask_id_number, mask_uscc
from shgov.core.settings import Settings
from shgov.registers.models import IssuedLicence

CODE_PREFIX = "SHGOVL1"


@dataclass(frozen=True)
class SigningKey:
    """The platform's SM2 key pair (hex), and its short id (the first 16 hex digits of SM3(public key))."""

    private_hex: str
    public_hex: str

    @property
    def key_id(self) -> str:
        """A short name for the key, written into every payload it signs."""
        return hashlib.new("sm3", bytes.fromhex(self.public_hex)).hexdigest()[:16]


def key_path(settings: Settings) -> Path:
    """Where the signing key lives."""
    return settings.services.licence_key_file or settings.data_dir / "keys" / "licence-sm2.key"


_keys: dict[Path, SigningKey] = {}


def signing_key(settings: Settings) -> SigningKey:
    """The signing key, created (readable by the owner only) on first use when the file does not exist.

    A key that cannot verify its own signature is refused here, naming its file: every licence it signed
    would be declared forged by its own verifier.
    """
    path = key_path(settings)
    found = _keys.get(path)
    if found is not None:
        return found
    if not path.exists():
        _create_key_file(path)
    words = path.read_text().split()
    private_hex = words[0].lower() if words else ""
    try:
        public_hex = sm2.public_key(private_hex)
    except ValueError as exc:
        raise InvalidError(
            N_("{path} does not hold an SM2 private key in hex ({reason})"),
            field="licence_key_file",
            path=path,
            reason=str(exc),
        ) from exc
    try:
        sm2.self_check(private_hex, public_hex)
    except sm2.KeyCheckError as exc:
        raise InvalidError(
            N_("the licence signing key in {path} fails its self-check ({reason}): no licence is signed with it"),
            field="licence_key_file",
            path=path,
            reason=str(exc),
        ) from exc
    key = SigningKey(private_hex, public_hex)
    _keys[path] = key
    return key


def _create_key_file(path: Path) -> None:
    # Several server processes may sign their first licence at once: each writes a complete key to a file
    # of its own, and the first to link it into place wins; the others read the winner's key.
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    handle = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "w") as out:
        out.write(sm2.generate_private_key() + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()


def canonical(data: dict[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: SigningKey, payload: bytes) -> str:
    """An SM2-with-SM3 signature of ``payload`` (hex r‖s)."""
    return sm2.sign(key.private_hex, payload)


def verify_signature(public_hex: str, payload: bytes, signature_hex: str) -> bool:
    """True when ``signature_hex`` is the SM2 signature of ``payload`` by the key ``public_hex``."""
    return sm2.verify(public_hex, payload, signature_hex)


def mask_holder(holder_id: str) -> str:
    """A holder's ID number or credit code, masked the way each is masked elsewhere."""
    return mask_id_number(holder_id) if holder_id[:17].isdigit() else mask_uscc(holder_id)


def _particulars_digest(particulars: dict[str, Any]) -> str:
    return hashlib.new("sm3", canonical(particulars)).hexdigest()


def issue(
    session: Session,
    settings: Settings,
    *,
    licence_type: str,
    holder_id: str,
    holder_name: str,
    issuer_department: str,
    issuer_name: str,
    particulars: dict[str, Any],
    source_ref: str = "",
    expires_on: date | None = None,
    issued_on: date | None = None,
) -> IssuedLicence:
    """Issue, sign and record one A-level e-licence; the same ``source_ref`` and type never issue twice."""
    if not licence_type.strip() or not holder_id.strip() or not holder_name.strip():
        raise InvalidError(N_("a licence needs a type, a holder and the holder's name"), field="licence_type")
    if source_ref:
        existing = session.scalar(
            select(IssuedLicence).where(
                IssuedLicence.source_ref == source_ref, IssuedLicence.licence_type == licence_type
            )
        )
        if existing is not None:
            return existing
    key = signing_key(settings)
    issued_on = issued_on or utcnow().date()
    licence_no = f"DZZZ{issued_on:%Y%m%d}{secrets.token_hex(5).upper()}"
    header = {
        "v": 1,
        "no": licence_no,
        "type": licence_type,
        "holder": mask_holder(holder_id.upper()),
        "name": holder_name,
        "issuer": issuer_name,
        "issued": issued_on.isoformat(),
        "expires": expires_on.isoformat() if expires_on else None,
        "level": "A",
        "kid": key.key_id,
        "pd": _particulars_digest(particulars)[:32],
    }
    payload = canonical(header)
    licence = IssuedLicence(
        licence_no=licence_no,
        licence_type=licence_type,
        holder_id=holder_id.upper(),
        holder_name=holder_name,
        issuer_department=issuer_department,
        issuer_name=issuer_name,
        issued_on=issued_on,
        expires_on=expires_on,
        trust_level="A",
        particulars=particulars,
        source_ref=source_ref,
        payload=payload.decode(),
        signature=sign(key, payload),
        key_id=key.key_id,
    )
    session.add(licence)
    session.flush()
    return licence


def code_of(licence: IssuedLicence) -> str:
    """The text the licence's QR code carries."""
    return f"{CODE_PREFIX}.{_b64(licence.payload.encode())}.{_b64(bytes.fromhex(licence.signature))}"


@dataclass(frozen=True)
class Verification:
    """What a verifier learns from a licence code."""

    signature_valid: bool
    header: dict[str, Any] | None
    reason: str
    revoked: bool | None = None  # None: not checked (offline)
    revoked_reason: str | None = None
    expired: bool = False

    @property
    def valid(self) -> bool:
        """True when the signature holds, the licence has not expired and is not known to be revoked."""
        return self.signature_valid and not self.expired and not self.revoked


def verify_offline(code: str, public_hex: str, today: date | None = None) -> Verification:
    """Check a licence code with nothing but the platform's public key."""
    parts = code.strip().split(".")
    if len(parts) != 3 or parts[0] != CODE_PREFIX:
        return Verification(False, None, "这不是 SH-GOV 电子证照的二维码")
    try:
        payload = _unb64(parts[1])
        signature = _unb64(parts[2]).hex()
        header = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return Verification(False, None, "二维码内容已损坏")
    if not isinstance(header, dict) or not verify_signature(public_hex, payload, signature):
        return Verification(False, None, "签名无效：证照内容被篡改或并非本平台签发")
    expires = header.get("expires")
    expired = bool(expires) and date.fromisoformat(str(expires)) < (today or utcnow().date())
    return Verification(True, header, "证照已过期" if expired else "签名有效", expired=expired)


def verify(session: Session, settings: Settings, code: str) -> Verification:
    """Check a licence code: its signature with the platform key, then revocation in the register."""
    result = verify_offline(code, signing_key(settings).public_hex)
    if not result.signature_valid or result.header is None:
        return result
    licence = session.scalar(select(IssuedLicence).where(IssuedLicence.licence_no == result.header.get("no")))
    if licence is None:
        return Verification(False, result.header, "证照库中没有这张证照")
    if licence.revoked_at is not None:
        return Verification(True, result.header, "证照已注销", True, licence.revoked_reason, result.expired)
    return Verification(True, result.header, result.reason, False, None, result.expired)


def get(session: Session, licence_no: str) -> IssuedLicence | None:
    """An issued licence by its number."""
    return session.scalar(select(IssuedLicence).where(IssuedLicence.licence_no == licence_no))


def revoke(session: Session, licence_no: str, reason: str) -> IssuedLicence:
    """Revoke a licence (kept, marked; verification then fails)."""
    licence = get(session, licence_no)
    if licence is None:
        raise NotFoundError(N_("no licence {licence_no}"), field="licence_no", licence_no=licence_no)
    if licence.revoked_at is not None:
        raise ConflictError(N_("the licence is already revoked"), field="licence_no")
    if len(reason.strip()) < 2:
        raise InvalidError(N_("give the reason for revoking"), field="reason")
    licence.revoked_at = utcnow()
    licence.revoked_reason = reason.strip()
    session.flush()
    return licence


def revoked_numbers(session: Session) -> list[tuple[str, datetime]]:
    """(licence number, when) of every revoked licence: the list offline verifiers cache."""
    rows = session.execute(
        select(IssuedLicence.licence_no, IssuedLicence.revoked_at)
        .where(IssuedLicence.revoked_at.is_not(None))
        .order_by(IssuedLicence.revoked_at)
    )
    return [(no, at) for no, at in rows if at is not None]


def issued_to(session: Session, holders: list[str]) -> list[IssuedLicence]:
    """Licences issued by SH-GOV to these holders that are not revoked."""
    if not holders:
        return []
    return list(
        session.scalars(
            select(IssuedLicence)
            .where(IssuedLicence.holder_id.in_(holders), IssuedLicence.revoked_at.is_(None))
            .order_by(IssuedLicence.issued_at)
        )
    )


def as_register_row(licence: IssuedLicence) -> dict[str, Any]:
    """An issued licence in the licence register's row shape."""
    return {
        "licence_no": licence.licence_no,
        "licence_type": licence.licence_type,
        "holder_id": licence.holder_id,
        "holder_name": licence.holder_name,
        "issued_on": licence.issued_on,
        "expires_on": licence.expires_on,
        "trust_level": licence.trust_level,
        "issuer_department": licence.issuer_department,
    }


def render_pdf(licence: IssuedLicence, verify_url: str) -> bytes:
    """The licence as a one-page A5 PDF: header, particulars, the QR code and where to verify it."""
    from reportlab.lib.pagesizes import A5  # type: ignore[import-untyped]
    from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont  # type: ignore[import-untyped]
    from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

    # A CID font the PDF reader supplies: Chinese text needs no font file on this machine.
    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    width, height = A5
    pdf = canvas.Canvas(buffer, pagesize=A5, pageCompression=1)
    pdf.setTitle(f"{licence.licence_type} {licence.licence_no}")
    pdf.setAuthor(licence.issuer_name)
    pdf.setFont("STSong-Light", 18)
    pdf.drawCentredString(width / 2, height - 60, licence.licence_type)
    pdf.setFont("STSong-Light", 10)
    lines = [
        ("证照编号", licence.licence_no),
        ("持证主体", licence.holder_name),
        ("证件号码", mask_holder(licence.holder_id)),
        ("发证机关", licence.issuer_name),
        ("发证日期", licence.issued_on.isoformat()),
        ("有效期至", licence.expires_on.isoformat() if licence.expires_on else "长期"),
        ("可信等级", licence.trust_level),
    ] + [(str(k), str(v)) for k, v in licence.particulars.items()]
    y = height - 100
    for label, value in lines:
        pdf.drawString(40, y, f"{label}：{value}")
        y -= 18
    matrix = segno.make(code_of(licence), error="m", micro=False).matrix
    cell = 150 / len(matrix)
    left, top = width - 40 - 150, 200
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                pdf.rect(left + c * cell, top - r * cell, cell, cell, stroke=0, fill=1)
    pdf.setFont("STSong-Light", 8)
    pdf.drawString(40, 40, f"扫码或访问 {verify_url} 核验；签名算法 SM2/SM3，密钥 {licence.key_id}")
    if licence.revoked_at is not None:
        pdf.setFont("STSong-Light", 28)
        pdf.setFillColorRGB(0.8, 0, 0)
        pdf.drawCentredString(width / 2, height / 2, "已注销")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
