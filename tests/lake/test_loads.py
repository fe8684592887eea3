"""归集: loading deliveries — schema, encodings, quality rules, quarantine, versions, lineage, bad input."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
import polars as pl
import pytest
from openpyxl import Workbook
from sqlalchemy import select

from shgov.core.analytics import Analytics
from shgov.core.db import Database
from shgov.core.regions.service import RegionIndex
from shgov.lake import service as lake
from shgov.lake.models import LakeLoad, LakeResource
from shgov.lake.quality import RuleContext
from shgov.lake.synthetic import CityConfig, SyntheticCity, generate

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
TODAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def city(request: pytest.FixtureRequest) -> SyntheticCity:
    index: RegionIndex = request.getfixturevalue("region_index")
    return generate(index, CityConfig(persons=2_000, enterprises=300, seed=11, defect_rate=0.0))


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def context(lake_dir: Path, region_index: RegionIndex) -> RuleContext:
    return lake.make_context(lake_dir, lake.region_codes(region_index), today=TODAY)


@pytest.fixture
def loader(db: Database, lake_dir: Path, context: RuleContext) -> Callable[..., lake.LoadResult]:
    def run(resource: str, file: Path, mode: str = "full", department: str | None = None) -> lake.LoadResult:
        with db.session() as session:
            spec = lake.get_resource(session, resource)
            return lake.load(
                session,
                lake_dir,
                resource,
                lake.Source(path=file),
                department_code=department or spec.department_code,
                mode=mode,
                context=context,
            )

    return run


def current_version(db: Database, resource: str) -> int:
    with db.session() as session:
        row = session.get(LakeResource, resource)
        assert row is not None
        return row.current_version


def test_a_clean_delivery_becomes_the_current_version(
    city: SyntheticCity, loader: Callable[..., lake.LoadResult], tmp_path: Path, lake_dir: Path, db: Database
) -> None:
    before = current_version(db, "population")
    file = tmp_path / "population.parquet"
    city.get("population").write_parquet(file)
    result = loader("population", file)
    assert result.status == "succeeded"
    assert result.version == before + 1
    assert (result.rows_in, result.rows_out, result.rows_quarantined) == (2_000, 2_000, 0)
    assert result.quality_score == 100.0
    assert len(result.digest) == 64
    assert (lake_dir / "population" / "CURRENT").read_text().strip() == f"v={before + 1:06d}"
    with Analytics(lake_dir).connect() as duck:
        assert duck.execute("SELECT count(*) FROM population").fetchone() == (2_000,)
    with db.session() as session:
        lineage = session.scalars(select(LakeLoad).where(LakeLoad.id == result.load_id)).one()
        assert lineage.source == "population.parquet"
        assert lineage.department_code == "310000.ga"


def test_rows_breaking_hard_rules_are_quarantined_with_their_reasons(
    city: SyntheticCity, loader: Callable[..., lake.LoadResult], tmp_path: Path, lake_dir: Path
) -> None:
    frame = city.get("population").with_row_index("i")
    broken = frame.with_columns(
        pl.when(pl.col("i") == 3)
        .then(pl.col("id_number").str.slice(0, 17) + "Z")
        .otherwise(pl.col("id_number"))
        .alias("id_number"),
        pl.when(pl.col("i") == 5).then(pl.lit("未知")).otherwise(pl.col("sex")).alias("sex"),
        pl.when(pl.col("i") == 7).then(pl.lit("999999")).otherwise(pl.col("district_code")).alias("district_code"),
        pl.when(pl.col("i") == 9).then(None).otherwise(pl.col("name")).alias("name"),
    ).drop("i")
    file = tmp_path / "population.csv"
    broken.write_csv(file)
    result = loader("population", file)
    assert result.rows_quarantined == 4
    assert result.rows_out == 1_996
    assert result.rule_counts["id_number:id_number"] == 1
    assert result.rule_counts["in_set:sex"] == 1
    assert result.rule_counts["region:district_code"] == 1
    total, rows = lake.quarantined_rows(lake_dir, "population", result.load_id, 0, 10)
    assert total == 4
    assert [r["_row"] for r in rows] == [4, 6, 8, 10]
    assert "GB 11643" in rows[0]["_reasons"]
    assert rows[1]["_rules"] == "in_set:sex"


def test_a_delivery_with_wrong_columns_is_refused_and_nothing_is_written(
    city: SyntheticCity, loader: Callable[..., lake.LoadResult], tmp_path: Path, lake_dir: Path, db: Database
) -> None:
    before = current_version(db, "population")
    file = tmp_path / "population.csv"
    city.get("population").drop("address").rename({"name": "full_name"}).write_csv(file)
    with pytest.raises(lake.LoadError, match="missing columns: name, address; unexpected columns: full_name") as caught:
        loader("population", file)
    assert caught.value.field == "columns"
    assert current_version(db, "population") == before
    assert not (lake_dir / "population").exists()


def test_a_gbk_file_is_detected_and_loaded(
    city: SyntheticCity, loader: Callable[..., lake.LoadResult], tmp_path: Path, lake_dir: Path
) -> None:
    file = tmp_path / "population.csv"
    file.write_bytes(city.get("population").head(50).write_csv().encode("gbk"))
    result = loader("population", file)
    assert result.encoding == "gb18030"
    assert result.rows_out == 50
    loaded = lake.read_current(lake_dir, "population")
    assert loaded is not None
    assert sorted(loaded["name"]) == sorted(city.get("population").head(50)["name"])


def test_a_file_in_neither_utf8_nor_gbk_is_refused(loader: Callable[..., lake.LoadResult], tmp_path: Path) -> None:
    file = tmp_path / "population.csv"
    file.write_bytes(b"id_number,name\n\xff\xfe\xff,\xff\n")
    with pytest.raises(lake.LoadError, match="neither UTF-8 nor GBK"):
        loader("population", file)


def test_duplicate_keys_are_quarantined_after_the_first(
    city: SyntheticCity, loader: Callable[..., lake.LoadResult], tmp_path: Path
) -> None:
    frame = city.get("population").head(100)
    file = tmp_path / "population.parquet"
    pl.concat([frame, frame.head(3)]).write_parquet(file)
    result = loader("population", file)
    assert result.rows_quarantined == 3
    assert result.rule_counts["unique_key:id_number"] == 3
    assert result.rows_total == 100


def test_a_truncated_file_is_refused_or_its_cut_row_quarantined(
    city: SyntheticCity, loader: Callable[..., lake.LoadResult], tmp_path: Path, db: Database
) -> None:
    before = current_version(db, "population")
    parquet = tmp_path / "population.parquet"
    city.get("population").write_parquet(parquet)
    parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    with pytest.raises(lake.LoadError, match="truncated or malformed"):
        loader("population", parquet)
    assert current_version(db, "population") == before
    text = city.get("population").head(20).write_csv()
    csv_file = tmp_path / "population.csv"
    csv_file.write_text(text[: text.rstrip().rfind(",", 0, len(text) - 40)], encoding="utf-8")
    result = loader("population", csv_file)
    assert result.rows_quarantined == 1
    assert result.rows_out == 19


def test_a_re_delivered_file_is_recognised_and_not_loaded_again(
    city: SyntheticCity, loader: Callable[..., lake.LoadResult], tmp_path: Path, db: Database
) -> None:
    file = tmp_path / "enterprises.parquet"
    city.get("enterprises").write_parquet(file)
    first = loader("enterprises", file)
    second = loader("enterprises", file)
    assert second.status == "duplicate"
    assert second.load_id == first.load_id
    assert "loaded already" in second.message
    assert current_version(db, "enterprises") == first.version


def test_an_incremental_load_merges_by_key_and_update_time(
    city: SyntheticCity, loader: Callable[..., lake.LoadResult], tmp_path: Path, lake_dir: Path
) -> None:
    population = city.get("population")
    full = tmp_path / "full.parquet"
    population.head(1_000).write_parquet(full)
    loader("population", full)
    first_id = population["id_number"][0]
    changes = pl.concat(
        [
            population.slice(0, 1).with_columns(
                pl.lit("新地址1号").alias("address"), pl.col("updated_at").dt.offset_by("1d")
            ),
            population.slice(1, 1).with_columns(
                pl.lit("过时地址").alias("address"), pl.col("updated_at").dt.offset_by("-30d")
            ),
            population.slice(1_000, 10),
        ]
    )
    delta = tmp_path / "delta.parquet"
    changes.write_parquet(delta)
    result = loader("population", delta, mode="incremental")
    assert result.rows_in == 12
    assert result.rows_total == 1_010
    current = lake.read_current(lake_dir, "population")
    assert current is not None
    assert current.filter(pl.col("id_number") == first_id)["address"].item() == "新地址1号"
    assert (
        current.filter(pl.col("id_number") == population["id_number"][1])["address"].item() == population["address"][1]
    )


def test_a_load_that_fails_midway_leaves_the_previous_version_readable(
    city: SyntheticCity,
    loader: Callable[..., lake.LoadResult],
    tmp_path: Path,
    lake_dir: Path,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = tmp_path / "good.parquet"
    city.get("population").head(500).write_parquet(good)
    first = loader("population", good)
    broken = city.get("population").with_columns(pl.lit("X").alias("sex"))
    bad = tmp_path / "bad.parquet"
    broken.write_parquet(bad)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lake, "_write_quarantine", disk_full)
    with pytest.raises(OSError, match="No space"):
        loader("population", bad)
    assert current_version(db, "population") == first.version
    assert sorted(p.name for p in (lake_dir / "population").iterdir()) == ["CURRENT", f"v={first.version:06d}"]
    assert lake.read_current(lake_dir, "population").height == 500


def test_xlsx_json_lines_and_database_tables_are_read(
    city: SyntheticCity,
    loader: Callable[..., lake.LoadResult],
    tmp_path: Path,
    db: Database,
    lake_dir: Path,
    context: RuleContext,
) -> None:
    taxes = city.get("tax_registrations").head(40)
    xlsx = tmp_path / "tax.xlsx"
    workbook = Workbook()  # as a department's office software would write it
    sheet = workbook.active
    assert sheet is not None
    sheet.append(taxes.columns)
    for row in taxes.with_columns(pl.col("updated_at").dt.strftime("%Y-%m-%d %H:%M:%S")).iter_rows():
        sheet.append(list(row))
    workbook.save(xlsx)
    assert loader("tax_registrations", xlsx).rows_out == 40
    jsonl = tmp_path / "tax.jsonl"
    taxes.head(30).write_ndjson(jsonl)
    assert loader("tax_registrations", jsonl).rows_out == 30
    database = tmp_path / "dept.db"
    with sqlite3.connect(database) as conn:
        conn.execute(
            "CREATE TABLE tax (credit_code TEXT, name TEXT, tax_status TEXT, employees INTEGER, updated_at TEXT)"
        )
        conn.executemany(
            "INSERT INTO tax VALUES (?, ?, ?, ?, ?)",
            [
                (r["credit_code"], r["name"], r["tax_status"], r["employees"], "2026-11-20 08:00:00")
                for r in taxes.head(20).iter_rows(named=True)
            ],
        )
    with db.session() as session:
        result = lake.load(
            session,
            lake_dir,
            "tax_registrations",
            lake.Source(database_url=f"sqlite:///{database}", table="tax"),
            department_code="310000.swj",
            context=context,
        )
    assert result.rows_out == 20
    assert result.encoding is None
    current = lake.read_current(lake_dir, "tax_registrations")
    assert current is not None
    assert str(current["updated_at"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"
    assert current["updated_at"][0].hour == 0  # 08:00 Shanghai time is 00:00 UTC


def test_a_delivery_from_the_wrong_department_is_refused(
    city: SyntheticCity, loader: Callable[..., lake.LoadResult], tmp_path: Path
) -> None:
    file = tmp_path / "population.parquet"
    city.get("population").write_parquet(file)
    with pytest.raises(lake.LoadError, match=r"delivered by 310000\.ga"):
        loader("population", file, department="310000.rs")


def test_references_to_other_resources_are_checked(
    city: SyntheticCity, loader: Callable[..., lake.LoadResult], tmp_path: Path
) -> None:
    population = tmp_path / "population.parquet"
    city.get("population").write_parquet(population)
    loader("population", population)
    enterprises = (
        city.get("enterprises")
        .with_row_index("i")
        .with_columns(
            pl.when(pl.col("i") < 4)
            .then(pl.lit("31010419900307123X"))
            .otherwise(pl.col("legal_representative_id"))
            .alias("legal_representative_id")
        )
        .drop("i")
    )
    file = tmp_path / "enterprises.parquet"
    enterprises.write_parquet(file)
    result = loader("enterprises", file)
    assert result.rule_counts["reference:legal_representative_id"] == 4
    assert result.rows_quarantined == 0  # a soft rule: flagged and scored, not quarantined
    assert result.quality_score < 100


def test_the_api_loads_for_those_allowed_and_shows_lineage_and_quarantine(
    client: httpx.Client, token_for: Callable[[str], str], city: SyntheticCity, tmp_path: Path
) -> None:
    frame = (
        city.get("population")
        .head(30)
        .with_row_index("i")
        .with_columns(pl.when(pl.col("i") == 0).then(pl.lit("男女")).otherwise(pl.col("sex")).alias("sex"))
        .drop("i")
    )
    payload = frame.write_csv().encode()
    files = {"file": ("population.csv", payload, "text/csv")}
    window = {"Authorization": f"Bearer {token_for('pudong.window')}"}
    # The window clerk may not even see the resource: 404, not 403.
    assert client.post("/api/v1/lake/resources/population/loads", files=files, headers=window).status_code == 404
    officer = {"Authorization": f"Bearer {token_for('data.officer')}"}
    created = client.post(
        "/api/v1/lake/resources/population/loads", files=files, data={"mode": "full"}, headers=officer
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["rows_quarantined"] == 1
    again = client.post("/api/v1/lake/resources/population/loads", files=files, headers=officer)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    lineage = client.get("/api/v1/lake/loads", params={"resource": "population"}, headers=officer).json()
    assert lineage[0]["id"] == body["load_id"]
    page = client.get(f"/api/v1/lake/loads/{body['load_id']}/quarantine", headers=officer).json()
    assert page["total"] == 1
    assert page["rows"][0]["sex"] == "男女"
    wrong = client.post(
        "/api/v1/lake/resources/population/loads", files={"file": ("p.csv", b"a,b\n1,2\n", "text/csv")}, headers=officer
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "columns"
    failed = client.get("/api/v1/lake/loads", params={"resource": "population"}, headers=officer).json()
    assert failed[0]["status"] == "failed", [(f["status"], f["started_at"]) for f in failed]
    quality = client.get("/api/v1/lake/quality", headers=officer).json()
    assert "310000.ga" in quality["departments"]
    assert client.post("/api/v1/lake/resources/unknown/loads", files=files, headers=officer).status_code == 404


def test_large_resources_are_hive_partitioned_and_read_back_alike(
    city: SyntheticCity, loader: Callable[..., lake.LoadResult], tmp_path: Path, lake_dir: Path
) -> None:
    file = tmp_path / "population.parquet"
    city.get("population").write_parquet(file)
    result = loader("population", file)
    folder = lake_dir / "population" / f"v={result.version:06d}"
    partitions = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert partitions
    assert all(name.startswith("district_code=31") for name in partitions)
    loaded = lake.read_current(lake_dir, "population")
    assert loaded is not None
    assert loaded.columns == city.get("population").columns
    assert loaded.height == 2_000
    with Analytics(lake_dir).connect() as duck:
        rows = duck.execute(
            "SELECT district_code, count(*) FROM population WHERE district_code = '310115' GROUP BY 1"
        ).fetchall()
    expected = city.get("population").filter(pl.col("district_code") == "310115").height
    assert rows == [("310115", expected)]
