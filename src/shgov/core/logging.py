"""Structured JSON logs (one object per line) for machines, plain lines for a developer's terminal.

Personal data never reaches a log line: 身份证号, phone and bank card numbers are masked (``core.ids.mask_text``,
every form it knows) in the whole line — message, ``extra`` fields and tracebacks — and fields named like
personal data (``id_number``, ``phone``, ``name`` …) are masked by name in ``extra``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from shgov.core.ids import mask_personal, mask_text

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _quoted(value: Any) -> Any:
    """Long numbers as strings, so that masking them keeps the line valid JSON (a phone given as an int)."""
    if isinstance(value, dict):
        return {k: _quoted(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_quoted(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) >= 10**8:
        return str(value)
    return value


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON with its ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_text(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = mask_personal(_quoted(value), key)
        if record.exc_info:
            payload["exc"] = mask_text(self.formatException(record.exc_info))
        # the whole line once more: a number given as an int, or inside an object's repr, is masked too
        return mask_text(json.dumps(payload, ensure_ascii=False, default=str))


class MaskingFormatter(logging.Formatter):
    """Plain-text lines with personal data masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))


class WithoutQuery(logging.Filter):
    """Access-log lines name the path, never the query string: a query may carry what masking cannot
    recognise (an applicant's name, percent-encoded; a search for a person)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop the query of uvicorn's request line ``(client, method, path?query, version, status)``."""
        args = record.args
        if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) < 3:
            return True
        if isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?…", *args[3:])
        return True


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Route the root logger to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else MaskingFormatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(WithoutQuery())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
