"""The chain's arithmetic: canonical content, keyed and plain hashes, and personal identifiers as digests.

A record's hash is ``HMAC-SM3(chain key, prev_hash ‖ canonical JSON of its fields)``; the first record's
``prev_hash`` is ``GENESIS``. ``plain_hash`` is the unkeyed SM3 of the same bytes — what the log used before
it was keyed, and what a forger without the key would compute: verification uses it only to name such a
rewrite.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from shgov.core.audit.keys import ChainKey
from shgov.core.ids import mask_id_number, mask_phone, mask_text, mask_uscc

GENESIS = "0" * 64

HASHED = (
    "seq",
    "id",
    "ts",
    "actor_id",
    "actor_name",
    "tenant_code",
    "department_code",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "ip",
    "details",
)


def sm3(data: bytes) -> str:
    """The SM3 digest (GB/T 32905) of ``data`` in hex."""
    return hashlib.new("sm3", data).hexdigest()


def canonical_values(values: dict[str, Any]) -> bytes:
    """The hashed content: the ``HASHED`` fields as sorted compact JSON (UTF-8)."""
    content = {name: values[name] for name in HASHED}
    content["id"] = str(content["id"])
    content["ts"] = content["ts"].isoformat(timespec="microseconds")
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def canonical(record: Any) -> bytes:
    """The hashed content of a stored record (every field but the hashes)."""
    return canonical_values({name: getattr(record, name) for name in HASHED})


def keyed_hash(key: ChainKey, prev_hash: str, content: bytes) -> str:
    """The hash a record carries: HMAC-SM3 over ``prev_hash ‖ content``."""
    return key.chain(prev_hash.encode() + content)


def plain_hash(prev_hash: str, content: bytes) -> str:
    """Unkeyed SM3 over the same bytes (the legacy chain; a forger's recomputation)."""
    return sm3(prev_hash.encode() + content)


# Shapes, not checksums: a mistyped 身份证号 is still someone's number and is digested all the same.
_ID_NUMBER = re.compile(r"\d{17}[\dX]")
_CREDIT_CODE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}")
_PHONE = re.compile(r"1[3-9]\d{9}")
_PHONE_NOISE = re.compile(r"[\s\-]")


def personal_id(value: str) -> tuple[str, str] | None:
    """``(normalised value, masked form)`` when ``value`` is a 身份证号, a credit code or a mobile number."""
    text = value.strip().upper()
    if len(text) == 18:
        if _ID_NUMBER.fullmatch(text):
            return text, mask_id_number(text)
        if _CREDIT_CODE.fullmatch(text):
            return text, mask_uscc(text)
        return None
    digits = _PHONE_NOISE.sub("", text).removeprefix("+86").removeprefix("0086")
    if len(digits) == 11 and _PHONE.fullmatch(digits):
        return digits, mask_phone(digits)
    return None


def protect(key: ChainKey, value: str | None) -> tuple[str | None, str | None]:
    """How ``value`` (an object id, a typed user name) is stored: ``(stored, masked)``.

    A personal identifier becomes its keyed digest, with its masked form to show; any other value is
    stored as it is, except that identifiers inside it are masked (never stored in the clear)."""
    if not value:
        return value, None
    found = personal_id(value)
    if found is not None:
        normalised, masked = found
        return key.digest(normalised), masked
    return mask_text(value), None


def search_form(key: ChainKey, value: str) -> str:
    """What to look for in ``object_id`` when an auditor searches for ``value`` (digested the same way)."""
    stored, _ = protect(key, value)
    return stored or value
