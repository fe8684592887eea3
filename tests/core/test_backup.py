"""灾备 drills: back up while writes go on, write more, destroy, restore, and prove the restore is the backup —
on SQLite and on PostgreSQL (with point-in-time recovery) — plus the refusals: a damaged set, a wrong
passphrase, a non-empty target, keys without a passphrase."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from bench.drill import WriteLoad, write_batch
from bench.servers import POSTGRES_URL, reachable, scratch_postgres
from sqlalchemy import select, text

from shgov import migrations
from shgov.cli import lake_versions
from shgov.core.backup import BackupError, backup, restore, verify_backup
from shgov.core.backup import postgres as pg
from shgov.core.backup.archive import MANIFEST, unpack_keys, unseal
from shgov.core.backup.service import count_rows
from shgov.core.db import Database
from shgov.core.settings import Settings
from shgov.lake import service as lake
from shgov.registers import service as registers
from shgov.registers.models import IssuedLicence
from shgov.seed import seed_demo
from tests import city_clock
from tests.conftest import make_settings

PASSPHRASE = "drill-passphrase-不要外传"
# A small city: the reference data, the accounts, the lake and the registers built from it.
PARTS = {"divisions", "organisations", "roles", "demo-accounts", "lake", "registers"}


def city_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings of a test city kept in ``data_dir`` (SQLite inside it unless a URL is given)."""
    return make_settings(data_dir, demo_persons=300, **overrides)


def seed_city(settings: Settings) -> None:
    """Migrate and seed the small city, with some licences, audit records and files already there."""
    db = Database.from_url(settings.database.url)
    try:
        with db.engine.begin() as connection:
            migrations.upgrade(connection)
        seed_demo(db, settings, only=PARTS)
        for n in range(3):
            write_batch(db, settings, f"seed-{n}")
    finally:
        db.dispose()


def licence_numbers(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(IssuedLicence.licence_no)))


def assert_restored(settings: Settings, tables: dict[str, int], absent: set[str]) -> None:
    """The restored platform is the backup: equal counts, every licence verifies, the lake's pointers are the
    database's, and nothing written after the snapshot is there."""
    db = Database.from_url(settings.database.url)
    try:
        with db.session() as session:
            assert count_rows(session.connection()) == tables
            licences = list(session.scalars(select(IssuedLicence)))
            assert licences
            assert not {lic.licence_no for lic in licences} & absent
            for licence in licences:
                checked = registers.verify_licence(session, settings, registers.licence_code(licence))
                assert checked.valid, (licence.licence_no, checked.reason)
            view = lake_versions(session)
    finally:
        db.dispose()
    for dataset, version in view.items():
        folder = settings.lake_dir / dataset
        if version == 0:
            assert not (folder / "CURRENT").exists()
            continue
        assert (folder / "CURRENT").read_text().strip() == f"v={version:06d}"
        assert lake.read_current(settings.lake_dir, dataset) is not None
        assert all(int(v.name[2:]) <= version for v in folder.glob("v=*"))


def secret_env(settings: Settings) -> dict[str, str]:
    """The secrets the settings hold in the environment (not in the data folder, so not in a backup set): the
    operator gives them to the restored platform as to the original."""
    key = getattr(settings.security, "audit_key", None)  # the audit chain's key, where this build has one
    return {"SHGOV_SECURITY__AUDIT_KEY": key.get_secret_value()} if key and key.get_secret_value() else {}


def shgov(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the ``shgov`` command on ``data_dir``."""
    return subprocess.run(
        [*city_clock.command(), *args],
        capture_output=True,
        text=True,
        env=city_clock.cli_environment(data_dir, **env),
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded city's data folder (SQLite), made once; tests copy it."""
    folder = tmp_path_factory.mktemp("city")
    seed_city(city_settings(folder))
    return folder


@pytest.fixture
def live(city: Path, tmp_path: Path) -> Path:
    """A copy of the city of this test's own."""
    shutil.copytree(city, tmp_path / "live")
    return tmp_path / "live"


@pytest.fixture(scope="module")
def backup_set(city: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backup set of the city, made once (tests that damage it copy it)."""
    target = tmp_path_factory.mktemp("sets") / "set"
    backup(city_settings(city), target, lake_views=lake_versions, passphrase=PASSPHRASE)
    return target


# -- the drills ------------------------------------------------------------------------------------------


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_sqlite_drill_back_up_under_load_destroy_and_restore(live: Path, tmp_path: Path) -> None:
    settings = city_settings(live)
    db = Database.from_url(settings.database.url)
    with WriteLoad(db, settings) as load:
        load.wait_for(1)
        made = backup(
            settings, tmp_path / "set", lake_views=lake_versions, passphrase=PASSPHRASE, progress=load.during()
        )
    assert made.tables is not None
    later = {write_batch(db, settings, f"later-{n}") for n in range(3)}
    with db.session() as session:
        live_counts = count_rows(session.connection())
    assert live_counts["issued_licences"] > made.tables["issued_licences"]  # the load wrote on after the snapshot
    db.dispose()
    shutil.rmtree(live)  # the disaster

    (tmp_path / "passphrase").write_text(PASSPHRASE + "\n")
    restored = shgov(["restore", str(tmp_path / "set"), "--passphrase-file", str(tmp_path / "passphrase")], live)
    assert restored.returncode == 0, restored.stderr
    assert "equal to the backup's" in " ".join(restored.stdout.split())

    assert_restored(settings, made.tables, absent=later)
    verified = shgov(["audit", "verify"], live, **secret_env(settings))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{made.tables['audit_records']} records" in " ".join(verified.stdout.split())


@pytest.fixture
def postgres_home() -> Iterator[Path]:
    """A folder for private PostgreSQL servers (in the system's temporary space: the postgres user must be
    able to reach it when the tests run as root), or a skip saying why there can be none."""
    try:
        pg.tool("initdb")
        pg.tool("pg_basebackup")
    except BackupError as exc:
        pytest.skip(f"PostgreSQL's programs are not installed ({exc}) — PostgreSQL drill skipped")
    if not reachable(POSTGRES_URL):
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (the restore target) — PostgreSQL drill skipped")
    home = Path(tempfile.mkdtemp(prefix="shgov-drill-"))
    home.chmod(0o755)  # the servers' folders inside are theirs
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.postgresql
def test_postgresql_drill_with_point_in_time_recovery(postgres_home: Path, tmp_path: Path) -> None:
    # The source is a private server, because the shared one does not allow replication connections; the
    # restores go into new, empty databases on the shared server.
    source = pg.PrivateServer.initdb(postgres_home / "source", fast=True)
    archive = tmp_path / "wal"
    with source:
        source.start()
        with source.conn("postgres").connect() as admin:
            admin.execute("CREATE DATABASE shgov")
        settings = city_settings(tmp_path / "live", database={"url": source.url("shgov")})
        seed_city(settings)
        streaming = pg.stream_wal(source.conn("shgov"), archive, major=source.major)
        try:
            db = Database.from_url(settings.database.url)
            with WriteLoad(db, settings) as load:
                load.wait_for(1)
                base = backup(
                    settings,
                    tmp_path / "base",
                    lake_views=lake_versions,
                    passphrase=PASSPHRASE,
                    pg_method="base",
                    progress=load.during(),
                )
                dumped = backup(
                    settings, tmp_path / "dump", lake_views=lake_versions, passphrase=PASSPHRASE, progress=load.during()
                )
            assert base.tables is None  # read from the recovered database at restore time
            assert dumped.tables is not None
            before = {write_batch(db, settings, f"before-{n}") for n in range(3)}
            with db.session() as session:
                at_point = count_rows(session.connection())
                point = session.scalar(text("SELECT clock_timestamp()"))  # the server's clock: commits carry it
            after = {write_batch(db, settings, f"after-{n}") for n in range(3)}
            db.dispose()
            with source.conn("postgres").connect() as admin:
                wait_until_archived(admin)
        finally:
            streaming.terminate()
            streaming.wait()
    shutil.rmtree(postgres_home / "source")  # the disaster: the server and its data are gone
    shutil.rmtree(tmp_path / "live")

    with scratch_postgres("shgov_restore") as target:
        assert target is not None
        restored_settings = city_settings(tmp_path / "live", database={"url": target})
        result = restore(
            restored_settings,
            tmp_path / "base",
            lake_views=lake_versions,
            passphrase=PASSPHRASE,
            wal_archive=archive,
            to_time=point,
        )
        assert result.tables == at_point
        assert result.recovered_to is not None
        assert point is not None
        assert result.recovered_to <= point
        assert_restored(restored_settings, at_point, absent=after)
        assert before <= licence_numbers_at(target)
        verified = shgov(["audit", "verify"], tmp_path / "live", SHGOV_DATABASE_URL=target, **secret_env(settings))
        assert verified.returncode == 0, verified.stdout + verified.stderr

    shutil.rmtree(tmp_path / "live")
    with scratch_postgres("shgov_restore") as target:
        assert target is not None
        restored_settings = city_settings(tmp_path / "live", database={"url": target})
        restore(restored_settings, tmp_path / "dump", lake_views=lake_versions, passphrase=PASSPHRASE)
        assert_restored(restored_settings, dumped.tables, absent=before | after)


def wait_until_archived(admin: psycopg.Connection[Any]) -> None:
    """Wait until pg_receivewal has flushed every WAL byte written so far (no timing: it reports its position)."""
    admin.execute("SELECT pg_switch_wal()")
    row = admin.execute("SELECT pg_current_wal_lsn()").fetchone()
    assert row is not None
    for _ in range(3000):
        found = admin.execute(
            "SELECT flush_lsn >= %s::pg_lsn FROM pg_stat_replication WHERE application_name = 'pg_receivewal'",
            (row[0],),
        ).fetchone()
        if found and found[0]:
            return
        threading.Event().wait(0.1)
    raise AssertionError("pg_receivewal did not take the WAL")


def licence_numbers_at(url: str) -> set[str]:
    db = Database.from_url(url)
    try:
        return licence_numbers(db)
    finally:
        db.dispose()


# -- consistency of the lake -------------------------------------------------------------------------------


def test_a_lake_pointer_moved_before_its_commit_is_backed_up_as_the_database_says(live: Path, tmp_path: Path) -> None:
    settings = city_settings(live)
    db = Database.from_url(settings.database.url)
    with db.session() as session:
        version = lake_versions(session)["register_person"]
    # A build caught between moving CURRENT and committing: the folder and the pointer exist, the row does not.
    frame = lake.read_current(settings.lake_dir, "register_person")
    assert frame is not None
    lake.write_version(settings.lake_dir, "register_person", version + 1, frame)
    lake.point_current(settings.lake_dir, "register_person", version + 1)
    db.dispose()

    made = backup(settings, tmp_path / "set", lake_views=lake_versions, keys=False)
    assert made.lake_view is not None
    assert made.lake_view["register_person"] == version
    assert (tmp_path / "set/lake/register_person/CURRENT").read_text().strip() == f"v={version:06d}"
    assert not (tmp_path / f"set/lake/register_person/v={version + 1:06d}").exists()

    shutil.rmtree(live)
    restore(settings, tmp_path / "set", lake_views=lake_versions, keys=False)
    db = Database.from_url(settings.database.url)
    try:
        with db.session() as session:  # the next build finds its number free
            assert registers.build(session, settings.lake_dir, "person").version == version + 1
    finally:
        db.dispose()


# -- refusals --------------------------------------------------------------------------------------------


def _flip_a_byte(root: Path) -> None:
    target = next(p for p in sorted(root.glob("lake/*/v=*/part-0.parquet")))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))


def _drop_a_file(root: Path) -> None:
    next(p for p in sorted(root.glob("lake/*/v=*/part-0.parquet"))).unlink()


def _add_a_file(root: Path) -> None:
    (root / "data" / "planted.txt").write_text("not from the backup")


def _edit_the_manifest(root: Path) -> None:
    manifest = root / MANIFEST
    manifest.write_text(manifest.read_text().replace('"size": ', '"size": 1', 1))


@pytest.mark.parametrize("damage", [_flip_a_byte, _drop_a_file, _add_a_file, _edit_the_manifest])
def test_a_damaged_set_is_refused_before_anything_is_written(
    backup_set: Path, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    damaged = tmp_path / "set"
    shutil.copytree(backup_set, damaged)
    verify_backup(damaged)
    damage(damaged)
    target = tmp_path / "restored"
    with pytest.raises(BackupError, match=r"damaged|not in the manifest|does not match"):
        restore(city_settings(target), damaged, lake_views=lake_versions, passphrase=PASSPHRASE)
    assert not target.exists()


def test_a_wrong_passphrase_is_refused_before_anything_is_written(backup_set: Path, tmp_path: Path) -> None:
    target = tmp_path / "restored"
    with pytest.raises(BackupError, match="passphrase"):
        restore(city_settings(target), backup_set, lake_views=lake_versions, passphrase="not-the-passphrase")
    assert not target.exists()


def test_a_non_empty_target_is_refused_unless_forced_aside(backup_set: Path, live: Path) -> None:
    settings = city_settings(live)
    with pytest.raises(BackupError, match="not empty"):
        restore(settings, backup_set, lake_views=lake_versions, passphrase=PASSPHRASE)
    (live / "kept.txt").write_text("what was there")
    result = restore(settings, backup_set, lake_views=lake_versions, passphrase=PASSPHRASE, force=True)
    [aside] = result.moved_aside
    assert (aside / "kept.txt").read_text() == "what was there"
    assert not (live / "kept.txt").exists()
    assert result.tables == verify_backup(backup_set)["tables"]


def test_keys_are_sealed_never_copied_in_clear(city: Path, backup_set: Path, tmp_path: Path) -> None:
    key_files = sorted((city / "keys").iterdir())
    assert key_files  # the licence key at least
    held = b"".join(p.read_bytes() for p in sorted(backup_set.rglob("*")) if p.is_file())
    for key in key_files:
        secret = key.read_text().split()[0].encode()
        assert secret not in held
    opened = unpack_keys(unseal((backup_set / "keys.enc").read_bytes(), PASSPHRASE))
    assert {f"data/keys/{k.name}" for k in key_files} <= set(opened)

    with pytest.raises(BackupError, match="passphrase"):
        backup(city_settings(city), tmp_path / "set", lake_views=lake_versions)
    made = backup(city_settings(city), tmp_path / "set", lake_views=lake_versions, keys=False)
    assert made.keys == 0
    assert not (tmp_path / "set" / "keys.enc").exists()
    assert not list((tmp_path / "set").rglob("*.key"))


def test_a_backup_never_goes_inside_what_it_backs_up(city: Path) -> None:
    with pytest.raises(BackupError, match="cannot go inside"):
        backup(city_settings(city), city / "backups" / "today", lake_views=lake_versions, keys=False)


def test_the_commands_refuse_keys_without_a_passphrase_and_a_damaged_set(
    city: Path, backup_set: Path, tmp_path: Path
) -> None:
    refused = shgov(["backup", str(tmp_path / "set")], city)
    assert refused.returncode == 1
    assert "--no-keys" in refused.stderr
    assert not (tmp_path / "set" / MANIFEST).exists()

    damaged = tmp_path / "damaged"
    shutil.copytree(backup_set, damaged)
    _flip_a_byte(damaged)
    checked = shgov(["restore", str(damaged), "--verify-only"], tmp_path / "target")
    assert checked.returncode == 1
    assert "SM3 differs" in " ".join(checked.stderr.split())
    assert not (tmp_path / "target").exists()
