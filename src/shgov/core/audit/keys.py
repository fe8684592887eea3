"""The audit log's two keys, both kept outside the database.

* The **chain key** (HMAC-SM3): each record's hash is ``HMAC-SM3(key, prev_hash ‖ canonical JSON)``, so
  someone who can write the database but not read this key cannot recompute a chain that verifies. The
  same key, in another domain, digests personal identifiers used as object ids (``h:…``): equal ids give
  equal digests, so one person's accesses can still be found, and the clear value is never stored.
  ``SHGOV_SECURITY__AUDIT_KEY`` (a secret of at least 32 characters) or the file
  ``SHGOV_SECURITY__AUDIT_KEY_FILE`` (default ``<data_dir>/keys/audit-hmac.key``: 32 random bytes in hex,
  created readable by the owner only on first use).
* The **checkpoint key** (SM2): signs the checkpoints (sequence number and hash of the chain's end)
  written to files outside the database. ``SHGOV_SECURITY__AUDIT_SIGNING_KEY_FILE`` (default
  ``<data_dir>/keys/audit-sm2.key``, created 0600 on first use; its public key is written beside it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shgov.core import sm2
from shgov.core.settings import Settings

MIN_SECRET_CHARS = 32


class AuditKeyError(ValueError):
    """A key file that does not hold a usable key, or a configured secret that is too short."""


@dataclass(frozen=True)
class ChainKey:
    """The HMAC-SM3 key of the chain; ``key_id`` names it without revealing it (stored in the head row)."""

    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        """A public name of the key: 16 hex digits of an HMAC of a fixed label."""
        return hmac.new(self.secret, b"shgov audit key id", "sm3").hexdigest()[:16]

    def chain(self, data: bytes) -> str:
        """HMAC-SM3 of ``data`` (``prev_hash ‖ canonical JSON``) in hex."""
        return hmac.new(self.secret, data, "sm3").hexdigest()

    def digest(self, value: str) -> str:
        """The keyed digest of a personal identifier, ``h:`` and 64 hex digits (a domain of its own, so a
        digest can never equal a record hash)."""
        return "h:" + hmac.new(self.secret, b"personal id\x00" + value.encode(), "sm3").hexdigest()


@dataclass(frozen=True)
class CheckpointKey:
    """The installation's SM2 key pair that signs checkpoints."""

    private_hex: str = field(repr=False)
    public_hex: str

    @property
    def key_id(self) -> str:
        """The first 16 hex digits of SM3(public key), written into every checkpoint."""
        return hashlib.new("sm3", bytes.fromhex(self.public_hex)).hexdigest()[:16]

    def sign(self, data: bytes) -> str:
        """The SM2 signature of ``data`` (hex ``r‖s``)."""
        return sm2.sign(self.private_hex, data)


def chain_key_path(settings: Settings) -> Path:
    """Where the chain key file lives (used when no secret is set)."""
    return settings.security.audit_key_file or settings.data_dir / "keys" / "audit-hmac.key"


def checkpoint_key_path(settings: Settings) -> Path:
    """Where the checkpoint signing key lives."""
    return settings.security.audit_signing_key_file or settings.data_dir / "keys" / "audit-sm2.key"


def chain_key(settings: Settings) -> ChainKey:
    """The chain key: the configured secret, else the key file (created on first use)."""
    secret = settings.security.audit_key.get_secret_value()
    if secret:
        if len(secret) < MIN_SECRET_CHARS:
            raise AuditKeyError(f"SHGOV_SECURITY__AUDIT_KEY must be at least {MIN_SECRET_CHARS} characters")
        return ChainKey(secret.encode())
    path = chain_key_path(settings)
    text = read_or_create(path, lambda: secrets.token_hex(32))
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise AuditKeyError(f"{path} does not hold the audit key in hex") from exc
    if len(raw) < 16:
        raise AuditKeyError(f"{path} holds a key of {len(raw)} bytes: at least 16 are needed")
    return ChainKey(raw)


def checkpoint_key(settings: Settings) -> CheckpointKey:
    """The checkpoint signing key (created on first use), self-checked before it signs anything."""
    path = checkpoint_key_path(settings)
    private_hex = read_or_create(path, sm2.generate_private_key).lower()
    try:
        public_hex = sm2.public_key(private_hex)
        sm2.self_check(private_hex, public_hex)
    except ValueError as exc:  # KeyCheckError is a ValueError too
        raise AuditKeyError(f"{path} does not hold a usable SM2 private key ({exc})") from exc
    public = path.with_suffix(".pub")
    if not public.exists():
        # The public half, for auditors who check checkpoints elsewhere (it is no secret).
        public.write_text(public_hex + "\n")
    return CheckpointKey(private_hex, public_hex)


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The first word of ``path``; the file is created (owner-only, 0600) with ``make()`` when missing.

    Several processes may start at once: each writes a complete key to a file of its own and the first to
    link it into place wins; the others read the winner's key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        handle = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w") as out:
            out.write(make() + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    words = path.read_text().split()
    if not words:
        raise AuditKeyError(f"{path} is empty")
    return words[0]
