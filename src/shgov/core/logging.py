"""Structured JSON logs (one object per line) for machines, plain lines for a developer's terminal.

Personal data never reaches a log line: 身份证号 and mobile numbers are masked in every message, and
fields named like personal data (``id_number``, ``phone``, ``name`` …) are masked in ``extra``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from shgov.core.ids import mask_personal, mask_text

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


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
                payload[key] = mask_personal(value, key)
        if record.exc_info:
            payload["exc"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False, default=str)


class MaskingFormatter(logging.Formatter):
    """Plain-text lines with personal data masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Route the root logger to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else MaskingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
