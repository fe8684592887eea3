"""The CKAN Action API, driven by the real ``ckanapi`` client (module and command line) over HTTP."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import ckanapi
import httpx
import polars as pl
import pytest
from openpyxl import load_workbook
from pyshacl import validate
from rdflib import Graph
from rdflib import namespace as ns  # the module, not its names: pytest would probe those

from shgov.catalog import service as catalog
from shgov.core.db import Database
from shgov.lake.synthetic import SyntheticCity
from shgov.opendata import service as opendata
from shgov.opendata.api import ACTIONS

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
CLOSED = ("population", "births", "marriages", "licences-id-card", "employment")  # records about people


@pytest.fixture
def ckan(server_url: str, lake_dir: Path) -> ckanapi.RemoteCKAN:
    return ckanapi.RemoteCKAN(server_url, user_agent="shgov-tests/1.0")


def action(client: httpx.Client, name: str, **params: Any) -> httpx.Response:
    return client.post(f"/api/3/action/{name}", json=params)


def enterprise_resource(ckan: ckanapi.RemoteCKAN) -> dict[str, Any]:
    package = ckan.action.package_show(id="enterprises")
    return next(r for r in package["resources"] if r["format"] == "CSV")


def test_ckanapi_lists_searches_and_shows_the_open_datasets_only(ckan: ckanapi.RemoteCKAN) -> None:
    names = ckan.action.package_list()
    assert {"enterprises", "standard-addresses", "tax-registrations"} <= set(names)
    assert not set(CLOSED) & set(names)
    found = ckan.action.package_search(q="企业", rows=5, **{"facet.field": ["organization", "res_format"]})
    assert found["count"] >= 1
    assert found["results"][0]["name"] in ("enterprises", "licences-business")
    assert found["search_facets"]["res_format"]["items"]
    assert {i["name"] for i in found["search_facets"]["res_format"]["items"]} == {"CSV", "JSONL", "XLSX", "Parquet"}
    package = ckan.action.package_show(id="enterprises")
    assert package["organization"]["name"] == "310000-sc"
    assert package["num_resources"] == 4
    assert package["isopen"] is True
    by_id = ckan.action.package_show(id=package["id"])
    assert by_id["name"] == "enterprises"
    filtered = ckan.action.package_search(fq="organization:310000-sc", rows=100)
    assert {p["organization"]["name"] for p in filtered["results"]} == {"310000-sc"}
    excluded = ckan.action.package_search(fq="-organization:310000-sc", rows=100)
    assert filtered["count"] + excluded["count"] == len(names)
    conditional = ckan.action.package_search(fq='open_type:"conditional"')
    assert {p["name"] for p in conditional["results"]} >= {"tax-registrations"}
    orgs = ckan.action.organization_list(all_fields=True)
    assert sum(o["package_count"] for o in orgs) == len(names)
    assert ckan.action.organization_show(id="310000-sc", include_datasets=True)["packages"][0]["name"]
    assert "economy" in ckan.action.group_list()
    assert ckan.action.status_show()["ckan_version"].startswith("2.")
    assert "package_search" in ckan.action.help_show(name="package_search") or ckan.action.help_show(
        name="package_search"
    )
    resource = enterprise_resource(ckan)
    assert ckan.action.resource_show(id=resource["id"])["package_id"] == package["id"]
    with pytest.raises(ckanapi.NotFound):
        ckan.action.package_show(id="population")


def test_datastore_search_serves_open_columns_filtered_sorted_and_paged(
    ckan: ckanapi.RemoteCKAN, city: SyntheticCity
) -> None:
    resource = enterprise_resource(ckan)
    enterprises = city.get("enterprises")
    district = enterprises["district_code"][0]
    expected = enterprises.filter(pl.col("district_code") == district).sort("credit_code")
    page = ckan.action.datastore_search(
        resource_id=resource["id"], filters={"district_code": district}, sort="credit_code asc", limit=3
    )
    assert page["total"] == expected.height
    assert [r["credit_code"] for r in page["records"]] == expected["credit_code"].to_list()[:3]
    fields = {f["id"] for f in page["fields"]}
    assert "legal_representative_id" not in fields  # personal items are never open
    assert "legal_representative_name" not in fields
    assert {"credit_code", "name", "registered_capital_fen"} <= fields
    assert next(f for f in page["fields"] if f["id"] == "registered_capital_fen")["type"] == "int"
    second = ckan.action.datastore_search(
        resource_id=resource["id"], filters={"district_code": district}, sort="credit_code", limit=3, offset=3
    )
    assert [r["credit_code"] for r in second["records"]] == expected["credit_code"].to_list()[3:6]
    word = enterprises["name"][0][:2]
    searched = ckan.action.datastore_search(resource_id=resource["id"], q=word, fields=["name"], limit=1000)
    assert searched["total"] == enterprises.filter(pl.col("name").str.contains(word, literal=True)).height
    assert all(word in r["name"] for r in searched["records"])
    summed = ckan.action.datastore_search_sql(
        sql=f'SELECT district_code, count(*) AS n FROM "{resource["id"]}" GROUP BY district_code ORDER BY n DESC'
    )
    counts = enterprises.group_by("district_code").len()
    assert sum(r["n"] for r in summed["records"]) == enterprises.height
    assert len(summed["records"]) == counts.height


def test_conditional_data_needs_an_application(ckan: ckanapi.RemoteCKAN) -> None:
    package = ckan.action.package_show(id="tax-registrations")
    assert package["isopen"] is False
    with pytest.raises(ckanapi.NotAuthorized):
        ckan.action.datastore_search(resource_id=package["resources"][0]["id"])


def test_closed_resources_leak_through_no_action(client: httpx.Client, lake_dir: Path) -> None:
    for q in ("户籍", "人口", "出生", "婚姻", "population", "id_number"):
        found = action(client, "package_search", q=q, rows=1000).json()["result"]
        assert not {p["name"] for p in found["results"]} & set(CLOSED), q
    every = action(client, "package_search", rows=1000).json()["result"]["results"]
    text = json.dumps(every, ensure_ascii=False)
    assert "户籍人口" not in text
    assert "legal_representative" not in text
    for name in CLOSED:
        assert action(client, "package_show", id=name).status_code == 404
    assert "population" not in action(client, "tag_list").text


def test_ckanapi_command_line_dumps_and_searches(server_url: str, lake_dir: Path, tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    ckanapi_cli = [str(bin_dir / "ckanapi")]  # the command installed with the client
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}  # it starts its workers by name
    out = tmp_path / "datasets.jsonl"
    dumped = subprocess.run(
        [*ckanapi_cli, "dump", "datasets", "--all", "-O", str(out), "-r", server_url, "-p", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert dumped.returncode == 0, dumped.stderr
    dumped_names = {json.loads(line)["name"] for line in out.read_text().splitlines() if line.strip()}
    listed = set(httpx.get(f"{server_url}/api/action/package_list").json()["result"])
    assert dumped_names == listed
    searched = subprocess.run(
        [*ckanapi_cli, "search", "datasets", "q=企业", "-r", server_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert searched.returncode == 0, searched.stderr
    found = [json.loads(line)["name"] for line in searched.stdout.splitlines() if line.strip()]
    assert "enterprises" in found


@pytest.mark.parametrize(
    ("name", "params", "status", "kind"),
    [
        ("no_such_action", {}, 400, "Bad Request"),
        ("package_search", {"fq": "organization:(a OR b"}, 400, "Search Query Error"),
        ("package_search", {"fq": "secret_field:x"}, 400, "Search Query Error"),
        ("package_search", {"sort": "title; DROP TABLE x"}, 400, "Search Query Error"),
        ("package_search", {"rows": "abc"}, 409, "Validation Error"),
        ("package_search", {"start": -1}, 409, "Validation Error"),
        ("package_search", {"facet.field": '["secret"]'}, 400, "Search Query Error"),
        ("package_show", {}, 409, "Validation Error"),
        ("package_show", {"id": "x' OR '1'='1"}, 404, "Not Found Error"),
        ("resource_show", {"id": "not-a-uuid"}, 404, "Not Found Error"),
        ("datastore_search", {}, 409, "Validation Error"),
        ("datastore_search_sql", {"sql": "DROP TABLE opendata_datasets"}, 409, "Validation Error"),
        ("datastore_search_sql", {"sql": "SELECT 1; SELECT 2"}, 409, "Validation Error"),
        ("datastore_search_sql", {"sql": "SELECT * FROM read_csv('/etc/passwd')"}, 409, "Validation Error"),
        ("datastore_search_sql", {"sql": "SELECT * FROM opendata_datasets"}, 409, "Validation Error"),
        ("datastore_search_sql", {"sql": "COPY (SELECT 1) TO '/tmp/x.csv'"}, 409, "Validation Error"),
    ],
)
def test_bad_input_gets_ckan_errors(
    client: httpx.Client, lake_dir: Path, name: str, params: dict[str, Any], status: int, kind: str
) -> None:
    answer = action(client, name, **params)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is False
    assert body["error"]["__type"] == kind


def test_datastore_refuses_unknown_fields_functions_and_caps_limits(client: httpx.Client, lake_dir: Path) -> None:
    package = action(client, "package_show", id="enterprises").json()["result"]
    rid = package["resources"][0]["id"]
    bad_filter = action(client, "datastore_search", resource_id=rid, filters={"name; DROP TABLE x": "a"})
    assert bad_filter.status_code == 409
    assert "filters" in bad_filter.json()["error"]
    assert action(client, "datastore_search", resource_id=rid, sort="name; DROP").status_code == 409
    assert action(client, "datastore_search", resource_id=rid, offset=-5).status_code == 409
    assert action(client, "datastore_search", resource_id=rid, fields="legal_representative_id").status_code == 409
    capped = action(client, "datastore_search", resource_id=rid, limit=10**9).json()["result"]
    assert capped["limit"] == 32_000
    quoted = action(client, "datastore_search", resource_id=rid, q="' OR 1=1 --").json()["result"]
    assert quoted["total"] == 0
    for sql in (
        f'SELECT legal_representative_id FROM "{rid}"',  # not an open column
        f"SELECT getenv('HOME') FROM \"{rid}\"",  # not an allowed function
        f"SELECT * FROM \"{rid}\", read_parquet('/etc/x')",
    ):
        refused = action(client, "datastore_search_sql", sql=sql)
        assert refused.status_code == 409, (sql, refused.text)
    get = client.get("/api/3/action/datastore_search", params={"resource_id": rid, "limit": "2"})
    assert get.status_code == 200
    assert len(get.json()["result"]["records"]) == 2


def test_downloads_in_four_formats_resume_and_revalidate(
    client: httpx.Client, lake_dir: Path, city: SyntheticCity, tmp_path: Path
) -> None:
    enterprises = city.get("enterprises")
    csv = client.get("/opendata/enterprises/download.csv")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    frame = pl.read_csv(io.BytesIO(csv.content), infer_schema=False)
    assert frame.height == enterprises.height
    assert "legal_representative_id" not in frame.columns
    assert sorted(frame["credit_code"].to_list()) == sorted(enterprises["credit_code"].to_list())
    bom = client.get("/opendata/enterprises/download.csv", params={"bom": "true"})
    assert bom.content.startswith(b"\xef\xbb\xbf")
    assert bom.content[3:] == csv.content
    lines = client.get("/opendata/enterprises/download.jsonl").text.splitlines()
    assert len(lines) == enterprises.height
    assert set(json.loads(lines[0])) == set(frame.columns)
    parquet = pl.read_parquet(io.BytesIO(client.get("/opendata/enterprises/download.parquet").content))
    assert parquet.height == enterprises.height
    book = load_workbook(io.BytesIO(client.get("/opendata/enterprises/download.xlsx").content), read_only=True)
    assert book.active is not None
    sheet_rows = list(book.active.iter_rows(values_only=True))
    assert len(sheet_rows) == enterprises.height + 1  # a header of item titles
    assert "统一社会信用代码" in sheet_rows[0] or "credit_code" not in sheet_rows[0]
    # Resuming: a range is answered 206 with that part; the ETag revalidates.
    part = client.get("/opendata/enterprises/download.csv", headers={"Range": "bytes=10-99"})
    assert part.status_code == 206
    assert part.content == csv.content[10:100]
    again = client.get("/opendata/enterprises/download.csv", headers={"If-None-Match": csv.headers["etag"]})
    assert again.status_code == 304
    since = client.get(
        "/opendata/enterprises/download.csv", headers={"If-Modified-Since": csv.headers["last-modified"]}
    )
    assert since.status_code == 304
    assert client.get("/opendata/tax-registrations/download.csv").status_code == 403  # open on conditions
    assert client.get("/opendata/population/download.csv").status_code == 404  # never open
    assert client.get("/opendata/enterprises/download.exe").status_code == 404


SHAPES = Path(__file__).parent.parent / "fixtures" / "dcat-ap" / "dcat-ap-SHACL.ttl"


def test_the_dcat_ap_export_conforms_to_the_official_shapes(client: httpx.Client, lake_dir: Path) -> None:
    shapes = Graph().parse(SHAPES, format="turtle")
    names = set(action(client, "package_list").json()["result"])
    graphs = {}
    for extension, fmt in (("ttl", "turtle"), ("jsonld", "json-ld"), ("rdf", "xml")):
        answer = client.get(f"/opendata/catalog.{extension}")
        assert answer.status_code == 200
        graphs[extension] = Graph().parse(data=answer.content, format=fmt)
    assert len(graphs["ttl"]) == len(graphs["jsonld"]) == len(graphs["rdf"])
    graph = graphs["ttl"]
    _, report, text = validate(graph, shacl_graph=shapes, inference="none", advanced=True)
    violations = list(report.subjects(ns.SH.resultSeverity, ns.SH.Violation))
    assert not violations, text
    titles = {str(t) for t in graph.objects(None, ns.DCTERMS.title)}
    assert "户籍人口信息" not in titles  # 不予开放 never reaches the export
    datasets = set(graph.subjects(ns.RDF.type, ns.DCAT.Dataset))
    assert len(datasets) == len(names)
    one = client.get("/opendata/enterprises/dcat.ttl")
    single = Graph().parse(data=one.content, format="turtle")
    assert len(set(single.subjects(ns.RDF.type, ns.DCAT.Dataset))) == 1
    assert not list(
        validate(single, shacl_graph=shapes, inference="none")[1].subjects(ns.SH.resultSeverity, ns.SH.Violation)
    )
    assert client.get("/opendata/population/dcat.ttl").status_code == 404
    assert client.get("/opendata/catalog.exe").status_code == 404


def test_a_negative_listed_item_leaves_the_dataset_and_a_closed_entry_is_withdrawn(
    client: httpx.Client, lake_dir: Path, db: Database
) -> None:
    with db.session() as session:
        code = opendata.get_dataset(session, "enterprises").catalog_code
        catalog.add_negative(session, None, code, "address", "《数据安全法》第二十一条")
        assert "address" not in [i["name"] for i in opendata.sync(session, code).items]  # type: ignore[union-attr]
    package = action(client, "package_show", id="enterprises").json()["result"]
    rows = action(client, "datastore_search", resource_id=package["resources"][0]["id"], limit=1).json()["result"]
    assert "address" not in {f["id"] for f in rows["fields"]}
    with db.session() as session:
        catalog.add_negative(session, None, code, "", "《数据安全法》第二十一条")  # the whole resource
        assert opendata.sync(session, code) is None
    assert action(client, "package_show", id="enterprises").status_code == 404
    assert "enterprises" not in action(client, "package_list").json()["result"]
    assert client.get("/opendata/enterprises/download.csv").status_code == 404


GARBAGE: list[Any] = [
    None,
    "",
    "'; DROP TABLE x; --",
    -1,
    10**12,
    10**20,  # beyond 64 bits
    "99999999999999999999",
    1.5,
    True,
    [],
    ["a", 1],
    {"a": {"b": []}},
    "\u0000\ud7ff",
    "字" * 5000,
]
PARAMS = ("id", "q", "fq", "sort", "rows", "start", "limit", "offset", "filters", "fields", "resource_id", "sql",
          "facet.field", "facet.limit", "all_fields", "include_total", "include_datasets", "name", "query")  # fmt: skip


def test_no_parameter_of_any_action_makes_a_server_error(client: httpx.Client, lake_dir: Path) -> None:
    rid = action(client, "package_show", id="enterprises").json()["result"]["resources"][0]["id"]
    for name in sorted(ACTIONS):
        for param in PARAMS:
            for value in GARBAGE:
                base = {"resource_id": rid} if name.startswith("datastore") and param != "resource_id" else {}
                answer = client.post(f"/api/3/action/{name}", json={**base, param: value})
                assert answer.status_code < 500, (name, param, value, answer.text[:200])
                assert answer.json()["success"] in (True, False)
