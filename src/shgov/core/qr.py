"""QR codes drawn on the server (licences, desks' rating codes), so that no page needs a script to show one."""

from __future__ import annotations

import io

import segno


def qr_svg(text: str, scale: int = 4) -> str:
    """An SVG QR code of ``text`` (medium error correction) that scales to its box (a viewBox, no fixed size)."""
    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(
        buffer, kind="svg", scale=scale, xmldecl=False, svgns=True, omitsize=True
    )
    return buffer.getvalue().decode()
