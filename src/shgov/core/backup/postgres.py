"""PostgreSQL's part of backups and restores, through PostgreSQL's own tools.

* **dump**: ``pg_dump`` of one database from a snapshot exported by a transaction that, under the same
  snapshot, also reads the row counts and the lake versions the database names as live — so the dump, the
  counts and the lake pointers of a backup set agree exactly. Restored by ``pg_restore`` into an empty
  database. Needs an ordinary connection; no point-in-time recovery.
* **base**: ``pg_basebackup`` of the whole server (tar format, with the WAL it needs), and the WAL streamed
  continuously by ``pg_receivewal`` into an archive (``stream_wal``; a replication slot keeps the server from
  dropping WAL the archive has not taken). A restore extracts the base backup into a private server of its
  own (``PrivateServer``: a folder, a Unix socket, no TCP port), replays the archived WAL up to the asked
  time (``recovery_target_time``), and copies the recovered database into the target with ``pg_dump`` and
  ``pg_restore``. Needs a role with REPLICATION and a ``replication`` line in the server's pg_hba.conf.

The server binaries (``postgres``, ``initdb``, ``pg_ctl``) refuse to run as root: run as root, they are
started as the ``postgres`` user (``runuser``), who is given the private folder.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from shgov.core.backup.archive import BackupError

SLOT = "shgov_backup"
SERVER_USER = "postgres"
_PG_LIB = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class Conn:
    """How PostgreSQL's tools reach one database: a libpq connection string without the password (which
    goes in the environment, so that it never shows in a process list)."""

    conninfo: str
    password: str | None
    database: str
    user: str

    @classmethod
    def of(cls, url: str) -> Conn:
        """The connection parts of a SQLAlchemy URL (``postgresql[+psycopg]://user:pass@host:port/db``)."""
        parsed = make_url(url)
        params: dict[str, str] = {str(k): str(v) for k, v in parsed.query.items() if isinstance(v, str)}
        if parsed.host:
            params["host"] = parsed.host
        if parsed.port:
            params["port"] = str(parsed.port)
        if parsed.username:
            params["user"] = parsed.username
        params["dbname"] = parsed.database or "postgres"
        user = parsed.username or os.environ.get("PGUSER") or pwd.getpwuid(os.getuid()).pw_name
        return cls(make_conninfo("", **params), parsed.password, params["dbname"], user)

    @property
    def env(self) -> dict[str, str]:
        """The environment for a tool run against this database."""
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def connect(self, **kwargs: object) -> psycopg.Connection[tuple[object, ...]]:
        """A psycopg connection (autocommit unless told otherwise)."""
        options = {"autocommit": True, "connect_timeout": 10, **kwargs}
        return psycopg.connect(self.conninfo, password=self.password, **options)  # type: ignore[arg-type]


def server_major(conn: Conn) -> int:
    """The server's major version (15 for 15.x): the tools used with it must be of that version or newer."""
    with conn.connect() as db:
        row = db.execute("SHOW server_version_num").fetchone()
    assert row is not None  # noqa: S101 - SHOW always answers
    return int(str(row[0])) // 10000


def tool(name: str, *, major: int | None = None, bindir: Path | None = None) -> str:
    """The path of a PostgreSQL program: in ``bindir`` when given, else Debian's folder of the server's major
    version, else on PATH, else the newest installed."""
    candidates: list[Path] = []
    if bindir is not None:
        candidates.append(bindir / name)
    if major is not None:
        candidates.append(_PG_LIB / str(major) / "bin" / name)
    on_path = shutil.which(name)
    if on_path and bindir is None:
        candidates.append(Path(on_path))
    candidates.extend(sorted(_PG_LIB.glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]), reverse=True))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise BackupError(f"{name} (PostgreSQL {major or ''}) is not installed; install the PostgreSQL client/server")


def _as_server_user(command: list[str]) -> list[str]:
    # The server programs refuse root; a root operator runs them as the owner of PostgreSQL's files.
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        raise BackupError("running as root, the private PostgreSQL server needs runuser to start as postgres")
    return [runuser, "-u", SERVER_USER, "--", *command]


def _give_to_server_user(path: Path) -> None:
    if os.geteuid() != 0:
        return
    owner = pwd.getpwnam(SERVER_USER)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, owner.pw_uid, owner.pw_gid)
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), owner.pw_uid, owner.pw_gid, follow_symlinks=False)


def run(command: list[str], *, env: Mapping[str, str] | None = None, what: str = "") -> str:
    """Run a PostgreSQL program; ``BackupError`` with the end of its error output when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)  # noqa: S603 - our arguments
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise BackupError(f"{what or Path(command[0]).name} failed: {' | '.join(tail)}")
    return done.stdout


# -- dump ------------------------------------------------------------------------------------------------


def dump(conn: Conn, out: Path, *, snapshot: str | None = None, major: int | None = None) -> None:
    """``pg_dump`` (custom format) of the database, from ``snapshot`` when given (see the module docstring)."""
    command = [tool("pg_dump", major=major), "--format=custom", "--no-password", f"--file={out}"]
    if snapshot:
        command.append(f"--snapshot={snapshot}")
    run([*command, f"--dbname={conn.conninfo}"], env=conn.env, what="pg_dump")


def restore_dump(conn: Conn, file: Path, *, major: int | None = None) -> None:
    """``pg_restore`` of a custom-format dump into the (empty) database, in one transaction, objects owned by
    the connecting role (the target server need not have the source's roles)."""
    run(
        [
            tool("pg_restore", major=major),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            "--no-password",
            f"--dbname={conn.conninfo}",
            str(file),
        ],
        env=conn.env,
        what="pg_restore",
    )


def is_empty(conn: Conn) -> bool:
    """Whether the database holds no table, view, sequence or other relation outside the system schemas."""
    try:
        with conn.connect() as db:
            row = db.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise BackupError(f"the target database cannot be reached ({exc}); create it empty first") from exc
    return row is not None and row[0] == 0


# -- base backups and WAL --------------------------------------------------------------------------------


def base_backup(conn: Conn, out: Path, *, major: int | None = None) -> None:
    """``pg_basebackup`` of the whole server into ``out`` (tar format, the WAL it needs streamed alongside)."""
    out.mkdir(parents=True, exist_ok=True)
    run(
        [
            tool("pg_basebackup", major=major),
            f"--dbname={conn.conninfo}",
            f"--pgdata={out}",
            "--format=tar",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--label=shgov-backup",
            "--no-password",
        ],
        env=conn.env,
        what="pg_basebackup (the role needs REPLICATION and pg_hba.conf a 'replication' line)",
    )
    extra = sorted(p.name for p in out.glob("*.tar") if p.name not in ("base.tar", "pg_wal.tar"))
    if extra:
        raise BackupError(f"the server has tablespaces ({', '.join(extra)}); backups cover the default one only")


def start_segment(base_tar: Path) -> str:
    """The WAL segment a base backup starts in (from its backup_label), e.g. ``000000010000000000000002``."""
    with tarfile.open(base_tar) as tar:
        handle = tar.extractfile("backup_label")
        label = handle.read().decode() if handle else ""
    found = re.search(r"START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)", label)
    if found is None:
        raise BackupError(f"{base_tar} has no readable backup_label")
    return found.group(1)


def create_slot(conn: Conn, slot: str = SLOT, *, major: int | None = None) -> None:
    """Create the replication slot that keeps WAL on the server until the archive has it (if missing)."""
    run(
        [
            tool("pg_receivewal", major=major),
            f"--dbname={conn.conninfo}",
            f"--slot={slot}",
            "--create-slot",
            "--if-not-exists",
            "--no-password",
        ],
        env=conn.env,
        what="pg_receivewal --create-slot",
    )


def stream_wal(
    conn: Conn, archive: Path, *, slot: str = SLOT, major: int | None = None, log: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``pg_receivewal`` streaming the server's WAL into ``archive`` through ``slot`` (created when
    missing), flushing each piece as it arrives (``--synchronous``); the caller stops the process."""
    archive.mkdir(parents=True, exist_ok=True)
    create_slot(conn, slot, major=major)
    command = [
        tool("pg_receivewal", major=major),
        f"--dbname={conn.conninfo}",
        f"--directory={archive}",
        f"--slot={slot}",
        "--synchronous",
        "--no-password",
    ]
    return subprocess.Popen(command, env=conn.env, stdout=log, stderr=log)  # noqa: S603 - our arguments


def _segment_order(name: str) -> str:
    return name.split(".", 1)[0]


def stage_wal(archive: Path, target: Path, first: str) -> int:
    """Copy the archive's segments from ``first`` on (and every timeline history) into ``target`` for a
    recovery; a segment still being written (``.partial``) is given its full name, as recovery expects.
    Returns the number of segments staged."""
    target.mkdir(parents=True, exist_ok=True)
    staged = 0
    for path in sorted(archive.iterdir()):
        name = path.name
        if name.endswith(".history"):
            shutil.copyfile(path, target / name)
            continue
        if not re.fullmatch(r"[0-9A-F]{24}(\.partial)?", name) or _segment_order(name) < first:
            continue
        full = _segment_order(name)
        if name.endswith(".partial") and (archive / full).exists():
            continue  # the completed segment is there too
        shutil.copyfile(path, target / full)
        staged += 1
    return staged


# -- a private server ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateServer:
    """A PostgreSQL server in a folder of its own: reachable only through a Unix socket in that folder
    (``listen_addresses = ''``), trusting local connections. A restore recovers a base backup in one; the
    tests and the bench start one as the source server of a backup, because it allows replication."""

    def __init__(self, home: Path, major: int, user: str = SERVER_USER) -> None:
        self.home = home
        self.data = home / "data"
        self.log = home / "server.log"
        self.major = major
        self.user = user
        self.port = _free_port()  # only names the socket file: nothing listens on TCP
        self._process: subprocess.Popen[bytes] | None = None

    # -- making one

    @classmethod
    def initdb(cls, home: Path, *, major: int | None = None, fast: bool = False) -> PrivateServer:
        """A new, empty server in ``home`` (a new folder, whose parents the server's user can traverse) whose
        superuser is ``postgres``, allowing replication from its socket. ``fast`` turns off fsync (tests and
        benchmarks only)."""
        initdb = tool("initdb", major=major)
        found = re.search(r"(\d+)", Path(initdb).parent.parent.name) if major is None else None
        server = cls(home, major or (int(found.group(1)) if found else 0))
        server.data.mkdir(parents=True)
        _give_to_server_user(home)
        run(
            _as_server_user(
                [
                    initdb,
                    f"--pgdata={server.data}",
                    f"--username={SERVER_USER}",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            ),
            what="initdb",
        )
        if not server.major:
            server.major = int((server.data / "PG_VERSION").read_text().strip())
        server.configure({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"} if fast else {})
        return server

    @classmethod
    def from_base(
        cls,
        home: Path,
        base: Path,
        *,
        user: str,
        wal_archive: Path | None = None,
        to_time: datetime | None = None,
    ) -> PrivateServer:
        """A server holding the base backup in ``base`` (base.tar, pg_wal.tar), set to replay the WAL of
        ``wal_archive`` up to ``to_time`` (to the archive's end without it) and then to open for writing."""
        server = cls(home, 0, user)
        server.data.mkdir(parents=True)
        with tarfile.open(base / "base.tar") as tar:
            tar.extractall(server.data, filter="data")
        with tarfile.open(base / "pg_wal.tar") as tar:
            tar.extractall(server.data / "pg_wal", filter="data")
        server.major = int((server.data / "PG_VERSION").read_text().strip())
        settings: dict[str, str] = {"hot_standby": "off", "archive_mode": "off"}
        if wal_archive is not None:
            staged = home / "wal"
            stage_wal(wal_archive, staged, start_segment(base / "base.tar"))
            settings["restore_command"] = f'\'cp "{staged}/%f" "%p"\''
            if to_time is not None:
                settings["recovery_target_time"] = f"'{to_time.isoformat()}'"
                settings["recovery_target_action"] = "'promote'"
            (server.data / "recovery.signal").write_text("")
        elif to_time is not None:
            raise BackupError("a point in time needs the WAL archive (--wal)")
        # The server's own configuration files are replaced (Debian keeps them outside the data folder; others
        # name paths and ports of the original machine).
        server.configure(settings)
        return server

    def configure(self, extra: Mapping[str, str]) -> None:
        """Write the private configuration (socket in ``home``, no TCP) plus ``extra`` settings."""
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.home}'",
            "port": str(self.port),
            "max_connections": "40",
            "shared_buffers": "128MB",
            "wal_level": "replica",
            "max_wal_senders": "4",
            "max_replication_slots": "4",
            "logging_collector": "off",
            "lc_messages": "'C'",
            "timezone": "'UTC'",
            **extra,
        }
        (self.data / "postgresql.conf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        (self.data / "postgresql.auto.conf").write_text("")
        (self.data / "pg_hba.conf").write_text("local all all trust\nlocal replication all trust\n")
        (self.data / "pg_ident.conf").write_text("")
        self.data.chmod(0o700)
        _give_to_server_user(self.home)

    # -- running it

    def url(self, database: str) -> str:
        """A SQLAlchemy URL of ``database`` on this server (psycopg, through the socket)."""
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.home}&port={self.port}"

    def conn(self, database: str) -> Conn:
        """How tools reach ``database`` on this server."""
        return Conn.of(self.url(database))

    def start(self, timeout: float = 3600.0) -> None:
        """Start the server and wait until it is open for writing (a recovery replays its WAL first)."""
        log = self.log.open("ab")
        command = _as_server_user([tool("postgres", major=self.major), "-D", str(self.data)])
        self._process = subprocess.Popen(command, stdout=log, stderr=log)  # noqa: S603 - our arguments
        log.close()
        deadline = time.monotonic() + timeout
        probe = self.conn("postgres")
        while True:
            if self._process.poll() is not None:
                self._process = None
                raise BackupError(f"the private PostgreSQL server stopped: {self.log_tail()}")
            with contextlib.suppress(psycopg.OperationalError):
                with probe.connect(connect_timeout=2) as db:
                    row = db.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise BackupError(f"the private PostgreSQL server did not open within {timeout:.0f} s")
            time.sleep(0.1)

    def log_tail(self, lines: int = 6) -> str:
        """The last lines of the server's log (why it stopped)."""
        if not self.log.exists():
            return "(no log)"
        text = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended)."""
        if self._process is None:
            return
        pg_ctl = tool("pg_ctl", major=self.major)
        done = subprocess.run(  # noqa: S603 - our arguments
            _as_server_user([pg_ctl, "stop", "-D", str(self.data), "-m", "fast", "-w"]),
            capture_output=True,
            check=False,
        )
        try:
            self._process.wait(timeout=60 if done.returncode == 0 else 5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> PrivateServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
