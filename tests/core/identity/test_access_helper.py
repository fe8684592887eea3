"""One access helper per kind (#26): "does not exist" and "may not know it exists" are the same 404 in the
API and on the pages, an id that is no id is a 404 too, and a page sends a visitor without a session to
sign in."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.lake.test_pages import sign_in

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)

ROWS = (
    "id_number,name,sex,birth_date,household_no,relation,district_code,township_code,community_code,"
    "address,marital_status,updated_at\n"
    "31010419900307123X,张伟,男,1990-03-07,HH1,户主,310104,310104003,310104003001,徐汇区某路1号,已婚,"
    "2026-11-20 08:00:00\n"
)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_missing_and_hidden_objects_answer_alike(server_url: str, client: httpx.Client, token_for) -> None:  # type: ignore[no-untyped-def]
    files = {"file": ("p.csv", ROWS.encode(), "text/csv")}
    created = client.post(
        "/api/v1/lake/resources/population/loads", files=files, headers=_bearer(token_for("data.officer"))
    )
    assert created.status_code in (200, 201), created.text
    load_id = created.json()["load_id"]
    window = _bearer(token_for("pudong.window"))

    def answer(path: str) -> tuple[int, str, dict[str, object]]:
        response = client.get(path, headers=window)
        body = response.json()
        body.pop("instance", None)  # the path asked for, the only difference allowed
        return response.status_code, response.headers["content-type"], body

    hidden = answer(f"/api/v1/lake/loads/{load_id}")
    missing = answer(f"/api/v1/lake/loads/{uuid.uuid4()}")
    not_an_id = answer("/api/v1/lake/loads/not-a-uuid")
    assert hidden[0] == 404
    assert hidden == missing == not_an_id
    assert answer(f"/api/v1/lake/loads/{load_id}/quarantine") == answer(f"/api/v1/lake/loads/{uuid.uuid4()}/quarantine")
    # the owner's department reads it; without credentials it is a 401, not a hint either way
    assert client.get(f"/api/v1/lake/loads/{load_id}", headers=_bearer(token_for("data.officer"))).status_code == 200
    assert client.get(f"/api/v1/lake/loads/{load_id}").status_code == 401

    with sign_in(server_url, "pudong.window") as browser:
        other = str(uuid.uuid4())
        page_hidden = browser.get(f"/data/lake/loads/{load_id}")
        page_missing = browser.get(f"/data/lake/loads/{other}")
        assert page_hidden.status_code == page_missing.status_code == 404
        assert page_hidden.headers["content-type"].startswith("text/html")
        # the same page but for the path it links back to
        assert page_hidden.text.replace(load_id, "ID") == page_missing.text.replace(other, "ID")
    anonymous = client.get(f"/data/lake/loads/{load_id}", headers={"accept": "text/html"}, follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == f"/login?next=/data/lake/loads/{load_id}"
