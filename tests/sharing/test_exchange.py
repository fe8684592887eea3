"""Cross-level exchange: SM2-signed packages with SM3 digests; verified, idempotent, resumable imports."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import polars as pl
import pytest

from shgov.core.db import Database
from shgov.core.errors import InvalidError
from shgov.core.regions.service import RegionIndex
from shgov.lake import service as lake
from shgov.lake.synthetic import SyntheticCity
from shgov.sharing import exchange

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def city_node(tmp_path: Path) -> Path:
    """The sending node's data folder (its key lives there)."""
    return tmp_path / "city-node"


@pytest.fixture
def district_lake(tmp_path: Path) -> Path:
    """The receiving node's lake, empty."""
    return tmp_path / "district-lake"


def rewrite(package: Path, name: str, change: bytes) -> Path:
    """A copy of ``package`` with member ``name`` replaced by ``change``."""
    out = package.with_name("tampered.tar")
    with tarfile.open(package) as source, tarfile.open(out, "w") as target:
        for member in source.getmembers():
            handle = source.extractfile(member)
            assert handle is not None
            data = change if member.name == name else handle.read()
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    return out


def test_a_package_is_signed_verified_and_imported_once(
    db: Database, lake_dir: Path, city_node: Path, district_lake: Path, region_index: RegionIndex, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, city: SyntheticCity,
) -> None:  # fmt: skip
    monkeypatch.setattr(exchange, "PART_ROWS", 400)  # several parts from a small city
    package = tmp_path / "population.tar"
    with db.session() as session:
        manifest = exchange.export_package(session, lake_dir, city_node, "city-310000", "population", 0, package)
        exchange.trust(session, "city-310000", exchange.node_key(city_node).public, "310000")
    population = city.get("population")
    assert manifest["rows"] == lake.read_current(lake_dir, "population").height  # type: ignore[union-attr]
    assert len(manifest["parts"]) == -(-manifest["rows"] // 400)
    context = lake.make_context(district_lake, lake.region_codes(region_index))
    # Interrupted after one part: the next run resumes with the second, never loading a part twice.
    first = exchange.import_package(db, district_lake, package, context, stop_after=1)
    assert (first.status, first.parts_loaded) == ("interrupted", 1)
    rest = exchange.import_package(db, district_lake, package, context)
    assert rest.status == "imported"
    assert rest.parts_loaded == len(manifest["parts"]) - 1
    assert rest.rows == manifest["rows"]
    received = lake.read_current(district_lake, "population")
    assert received is not None
    assert received.height == manifest["rows"]
    sent = lake.read_current(lake_dir, "population")
    assert sent is not None
    assert received.sort("id_number").equals(sent.sort("id_number"))  # the same rows, value for value
    assert set(received["id_number"]) <= set(population["id_number"]) | set(sent["id_number"])
    again = exchange.import_package(db, district_lake, package, context)
    assert again.status == "already imported"
    assert again.parts_loaded == 0


def test_a_delta_carries_only_what_changed_since_a_version(
    db: Database, lake_dir: Path, city_node: Path, tmp_path: Path, region_index: RegionIndex
) -> None:
    current = lake.read_current(lake_dir, "population")
    assert current is not None
    changed = current.head(3).with_columns(
        pl.lit("离婚").alias("marital_status"),
        (pl.col("updated_at") + pl.duration(days=1)).alias("updated_at"),  # newer than what the lake holds
    )
    delivery = tmp_path / "changes.parquet"
    changed.write_parquet(delivery)
    with db.session() as session:
        before = lake.get_resource(session, "population").current_version
        lake.load(
            session, lake_dir, "population", lake.Source(path=delivery), department_code="310000.ga",
            mode="incremental", context=lake.make_context(lake_dir, lake.region_codes(region_index)),
        )  # fmt: skip
        manifest = exchange.export_package(session, lake_dir, city_node, "n", "population", before, tmp_path / "d.tar")
    assert manifest["since_version"] == before
    assert manifest["rows"] == 3


def test_tampered_untrusted_or_broken_packages_are_refused_before_anything_is_written(
    db: Database, lake_dir: Path, city_node: Path, district_lake: Path, region_index: RegionIndex, tmp_path: Path
) -> None:
    package = tmp_path / "births.tar"
    context = lake.make_context(district_lake, lake.region_codes(region_index))
    with db.session() as session:
        exchange.export_package(session, lake_dir, city_node, "city-310000", "births", 0, package)
    with pytest.raises(InvalidError, match="not a trusted peer"):
        exchange.import_package(db, district_lake, package, context)
    with db.session() as session:
        exchange.trust(session, "city-310000", exchange.node_key(city_node).public)
    with pytest.raises(InvalidError, match="SM3"):
        exchange.import_package(db, district_lake, rewrite(package, "part-00000.parquet", b"PAR1 forged"), context)
    with tarfile.open(package) as tar:
        handle = tar.extractfile("manifest.json")
        assert handle is not None
        manifest = json.loads(handle.read())
    manifest["rows"] += 1
    forged = json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=1).encode()
    with pytest.raises(InvalidError, match="signature"):
        exchange.import_package(db, district_lake, rewrite(package, "manifest.json", forged), context)
    other_key = tmp_path / "other-node"
    with db.session() as session:
        exchange.trust(session, "city-310000", exchange.node_key(other_key).public)
    with pytest.raises(InvalidError, match="signature"):
        exchange.import_package(db, district_lake, package, context)  # signed by a key the peer no longer has
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"not a tar file")
    with pytest.raises(InvalidError, match="readable"):
        exchange.import_package(db, district_lake, broken, context)
    assert lake.read_current(district_lake, "births") is None
    with db.session() as session, pytest.raises(InvalidError, match="128 hex"):
        exchange.trust(session, "x", "abc")
