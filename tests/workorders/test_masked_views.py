"""Free text of a work order (a caller's phone or ID in the description or address) is masked for staff not
entitled to personal data, and shown as written to those who are."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from shgov.core.settings import Settings

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
PHONE, ID = "138-1234-5678", "31010419900307123X"


def test_descriptions_and_addresses_are_masked_for_staff_without_the_right(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings
) -> None:
    operator = {"Authorization": f"Bearer {token_for('ops.operator')}"}
    report = {
        "channel": "hotline",
        "description": f"人民广场道路积水，来电人电话 {PHONE}，身份证 {ID}",
        "address": "人民大道200号（联系 +86 139 0000 1111）",
        "lat": 31.2304,
        "lng": 121.4737,
        "caller_phone": "13812345678",
    }
    made = client.post("/api/v1/workorders", json=report, headers=operator)
    assert made.status_code == 201, made.text
    order = made.json()
    for text in (made.text, client.get(f"/api/v1/workorders/{order['id']}", headers=operator).text):
        assert PHONE not in text
        assert ID not in text
        assert "0000 1111" not in text
        assert "人民广场道路积水" in text  # the rest stays readable
    admin = client.get(f"/api/v1/workorders/{order['id']}", headers={"Authorization": f"Bearer {token_for('admin')}"})
    assert PHONE in admin.json()["description"]
    assert ID in admin.json()["description"]
