"""Uploaded files (evidence, photos): checked by their bytes, stored once by their SM3 digest.

A file is accepted only when its first bytes say it is one of the allowed kinds — the name and the
client's content type are not trusted — and it is no larger than the limit. It is written under
``<data_dir>/files/<2 hex>/<digest>`` through a temporary file and a rename, so a reader never sees
half a file, and the same bytes uploaded twice are stored once. Database rows refer to the digest.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from starlette.datastructures import UploadFile
from starlette.responses import Response

from shgov.core.audit.service import sm3
from shgov.core.errors import InvalidError, NotFoundError
from shgov.core.i18n import N_

# media type → (leading bytes that identify it, file name extension)
KINDS: dict[str, tuple[bytes, str]] = {
    "application/pdf": (b"%PDF-", ".pdf"),
    "image/jpeg": (b"\xff\xd8\xff", ".jpg"),
    "image/png": (b"\x89PNG\r\n\x1a\n", ".png"),
}
DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class StoredFile:
    """A stored file as rows refer to it."""

    digest: str
    media_type: str
    size: int
    name: str


def sniff(data: bytes, allowed: tuple[str, ...] = tuple(KINDS)) -> str | None:
    """The media type the bytes show, among ``allowed``; ``None`` when they show none of them."""
    return next((kind for kind in allowed if data.startswith(KINDS[kind][0])), None)


def clean_name(name: str, media_type: str) -> str:
    """A safe display name: no folders, no control characters, at most 120 characters, right extension."""
    base = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip(" .")
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return (stem[:100] or "file") + KINDS[media_type][1]


class FileStore:
    """Content-addressed files under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(
        self,
        data: bytes,
        name: str,
        *,
        max_bytes: int,
        allowed: tuple[str, ...] = tuple(KINDS),
        field: str = "file",
    ) -> StoredFile:
        """Check and store ``data``; ``InvalidError`` naming ``field`` when it is empty, too large or of a
        kind not allowed."""
        if not data and name:
            raise InvalidError(N_("{name} is empty"), field=field, name=name)
        if not data:
            raise InvalidError(N_("the file is empty"), field=field)
        if len(data) > max_bytes and name:
            raise InvalidError(
                N_("{name} is {size:,} bytes; the limit is {limit:,} bytes"),
                field=field,
                name=name,
                size=len(data),
                limit=max_bytes,
            )
        if len(data) > max_bytes:
            raise InvalidError(
                N_("the file is {size:,} bytes; the limit is {limit:,} bytes"),
                field=field,
                size=len(data),
                limit=max_bytes,
            )
        media_type = sniff(data, allowed)
        if media_type is None:
            kinds = ", ".join(KINDS[k][1].lstrip(".").upper() for k in allowed)
            if name:
                raise InvalidError(N_("{name} is not a {kinds} file"), field=field, name=name, kinds=kinds)
            raise InvalidError(N_("the file is not a {kinds} file"), field=field, kinds=kinds)
        digest = sm3(data)
        target = self._path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return StoredFile(digest, media_type, len(data), clean_name(name, media_type))

    def read(self, digest: str) -> bytes:
        """The bytes stored under ``digest``."""
        path = self._path(digest)
        if not path.exists():
            raise NotFoundError(N_("the file is no longer stored"), field="digest")
        return path.read_bytes()

    def _path(self, digest: str) -> Path:
        if not DIGEST.match(digest):
            raise InvalidError(N_("not an SM3 digest"), field="digest")
        return self.root / digest[:2] / digest


async def read_upload(upload: UploadFile, max_bytes: int, field: str = "file") -> bytes:
    """The bytes of an uploaded part, refusing (naming ``field``) one larger than ``max_bytes`` without
    reading all of it."""
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes and upload.filename:
        raise InvalidError(
            N_("{name} is larger than {limit:,} bytes"), field=field, name=upload.filename, limit=max_bytes
        )
    if len(data) > max_bytes:
        raise InvalidError(N_("the file is larger than {limit:,} bytes"), field=field, limit=max_bytes)
    return data


def file_response(store: FileStore, digest: str, media_type: str, name: str) -> Response:
    """A stored file as a download: never sniffed or cached by the browser, named in UTF-8 (RFC 6266)."""
    ascii_name = name.encode("ascii", "ignore").decode().replace('"', "").strip() or "file"
    return Response(
        store.read(digest),
        media_type=media_type,
        headers={
            "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )
