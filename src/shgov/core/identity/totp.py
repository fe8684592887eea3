"""TOTP second factor (RFC 6238, pyotp): secrets sealed at rest, codes checked on the injected clock, each
code accepted once.

The secret is sealed with AES-GCM under a key derived from the installation's secret key, so a copy of the
database alone yields no usable second factor. A code is accepted for the current 30-second step and one
step either side (clock drift); the step of the last accepted code is kept, and a code of that step or an
earlier one is refused, so a code seen over someone's shoulder cannot be used again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import datetime

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shgov.core.settings import Settings

ISSUER = "SH-GOV"
_SEAL_VERSION = "v1"
DRIFT_STEPS = 1


def sealing_key(settings: Settings) -> bytes:
    """The AES-256 key TOTP secrets are sealed with (derived from the app's secret key, own purpose)."""
    return hashlib.sha256(b"shgov-totp-seal\x00" + settings.secret_key.get_secret_value().encode()).digest()


def new_secret() -> str:
    """A fresh base32 secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def seal(key: bytes, secret: str, user_id: str) -> str:
    """``secret`` encrypted for storage, bound to its account (copying it to another row breaks it)."""
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, secret.encode(), user_id.encode())
    return f"{_SEAL_VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def unseal(key: bytes, stored: str, user_id: str) -> str | None:
    """The secret of a sealed value, or None when it was sealed under another key or for another account."""
    version, _, body = stored.partition(":")
    if version != _SEAL_VERSION:
        return None
    try:
        raw = base64.urlsafe_b64decode(body.encode())
        return AESGCM(key).decrypt(raw[:12], raw[12:], user_id.encode()).decode()
    except (InvalidTag, ValueError):
        return None


def provisioning_uri(secret: str, account: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (as a QR code or typed)."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: datetime, after_step: int | None) -> int | None:
    """The time step ``code`` is valid for at ``now`` (± drift), if later than ``after_step``; else None."""
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        step = current + offset
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
