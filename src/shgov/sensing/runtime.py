"""The sensing parts that live as long as the web process: its ingestion pipeline (opened on first use, so
a process that never sees a reading never takes a node) and the background work of the deployment — the
evaluation of the vital signs, the demo simulator and, when ``SHGOV_SENSING__MQTT_URL`` is set, the MQTT
subscriber.

``shgov serve --workers N`` runs N processes, each with its own runtime. Each process ingests what reaches
it (HTTP batches) into a node of its own — the configured node, or ``<node>-2``, ``<node>-3``… when another
process owns it — and publishes its latest values for the others (``Pipeline.write_live``), so every
worker sees the whole city. The background work runs in exactly one of them, the *leader*: the process
holding ``<data_dir>/sensing/LEADER`` (an ``flock``, released by the kernel when its holder dies). The
others say once, at INFO, that another process leads, try again quietly every few seconds and take over
when the leader stops."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from datetime import timedelta
from typing import IO

from starlette.requests import Request

from shgov.core.db import Database, utcnow
from shgov.core.regions.service import RegionIndex
from shgov.core.settings import Settings
from shgov.sensing import indicators
from shgov.sensing.indicators import FRESH_MS, Reading
from shgov.sensing.mqtt import Subscriber
from shgov.sensing.pipeline import NodeBusyError, Overlay, Pipeline
from shgov.sensing.seasonal import Deviation, SeasonalWatch

log = logging.getLogger("shgov.sensing")

LEADER_RETRY_SECONDS = 5.0  # how often a process that does not lead checks whether the leader stopped
LIVE_SECONDS = 2.0  # how often a process publishes its latest values for the others (when they changed)
NODE_SLOTS = 64  # nodes a deployment's processes may take: <node>, <node>-2 … <node>-64


def runtime_of(request: Request) -> SensingRuntime:
    """The sensing parts of the app serving ``request``."""
    runtime: SensingRuntime = request.app.state.runtimes["sensing"]
    return runtime


def node_names(node: str) -> list[str]:
    """The nodes this process may own, in the order it tries them (each name fits the setting's pattern)."""
    return [node, *(f"{node[:29]}-{k}" for k in range(2, NODE_SLOTS + 1))]


class LeaderLock:
    """The deployment's one place for background work: an exclusive ``flock`` on a file in the data
    directory. The kernel releases it when the holding process ends, however it ends, so another process
    can take over; the file names the holder's pid, for the followers' log line."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = path
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        """Whether this process leads."""
        return self._file is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits."""
        if self._file is not None:
            return True
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the life of the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def holder(self) -> str:
        """The pid the lock file names (``?`` when unreadable)."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                return handle.read().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        """Give the lead up (a stopping process)."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class SensingRuntime:
    """Opens this process's pipeline once, publishes its live values, leads the background work when this
    process holds the lead, and closes everything with the app."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._pipeline: Pipeline | None = None
        self._subscriber: Subscriber | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._leader = LeaderLock(settings.data_dir / "sensing" / "LEADER")
        self._elector: threading.Thread | None = None
        self._publisher: threading.Thread | None = None
        self._simulator: threading.Thread | None = None
        self._index: RegionIndex | None = None
        self._seasonal: SeasonalWatch | None = None
        self.warnings_version = 0  # bumped when an evaluation changed a warning

    @property
    def leads(self) -> bool:
        """Whether this process runs the deployment's sensing background work."""
        return self._leader.held

    def pipeline(self) -> Pipeline:
        """This process's pipeline, opened (and recovered) on first use, on the first node no other process
        owns."""
        with self._lock:
            if self._pipeline is None:
                self._pipeline = self._open_node()
                self._pipeline.start()
            return self._pipeline

    def _open_node(self) -> Pipeline:
        from shgov.sensing.service import open_pipeline

        names = node_names(self.settings.sensing.node)
        for name in names:
            try:
                pipeline = open_pipeline(self.settings, self.db, node=name)
            except NodeBusyError:
                continue  # another worker (or a `shgov sensing ingest`) owns it
            if name != names[0]:
                log.info("sensing node %s is owned by another process: this one ingests as node %s", names[0], name)
            return pipeline
        raise NodeBusyError(f"every sensing node {names[0]}, {names[1]} … {names[-1]} is owned by another process")

    def registry_changed(self) -> None:
        """Devices were added or changed: the pipeline re-reads the registry before its next batch."""
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.registry_stale()

    def readings(self) -> list[Reading]:
        """Every vital sign now: this process's devices and what other ingest nodes last wrote."""
        from shgov.sensing.service import live_dir

        return indicators.compute_all(self.pipeline(), live_dir(self.settings))

    def overlay(self) -> Overlay | None:
        """The latest values other ingest nodes last wrote (None: no other node writes any)."""
        from shgov.sensing.service import live_dir

        return self.pipeline().overlay(live_dir(self.settings))

    def watch_once(self) -> int:
        """Evaluate the vital signs and the device anomalies once; returns how many warnings changed."""
        from shgov.sensing import watch

        pipeline = self.pipeline()
        with self.db.session() as session:
            if self._index is None:  # the divisions change with a data load, not while the app runs
                self._index = RegionIndex.from_session(session)
            index = self._index
            readings = self.readings()
            changes = watch.evaluate(session, self.settings, index, readings)
            changes += watch.note_anomalies(session, pipeline)
            changes += watch.note_seasonal(session, self._seasonal_deviations(pipeline))
        if changes:
            self.warnings_version += 1
        return len(changes)

    def _seasonal_deviations(self, pipeline: Pipeline) -> list[Deviation]:
        """The districts' current means against the same window on earlier days (from the lake)."""
        if self._seasonal is None:
            sensing = self.settings.sensing
            self._seasonal = SeasonalWatch(
                pipeline.analytics,
                window=timedelta(minutes=sensing.seasonal_window_minutes),
                days=sensing.seasonal_days,
                min_days=sensing.seasonal_min_days,
            )
        return self._seasonal.deviations(utcnow(), pipeline.registry.spans())

    def stamp(self) -> str:
        """Changes whenever the live values or the warnings change (what the dashboard's stream watches):
        this process's, or those another process published (the leader republishes after an evaluation
        changed a warning)."""
        from shgov.sensing.service import live_dir

        pipeline = self.pipeline()
        try:
            published = max((f.stat().st_mtime_ns for f in live_dir(self.settings).glob("*.arrow")), default=0)
        except OSError:  # a file replaced while listed: the next look sees the new one
            published = -1
        return f"{pipeline.node}.{pipeline.version}.{self.warnings_version}.{published}"

    def _lead(self) -> None:
        """Wait for the lead (quietly: one INFO line), then run the background work until the app stops."""
        told = False
        while not self._leader.try_acquire():
            if not told:
                log.info(
                    "the sensing background work runs in another process (pid %s): this one serves requests "
                    "and takes over if that process stops",
                    self._leader.holder(),
                )
                told = True
            if self._stop.wait(LEADER_RETRY_SECONDS):
                return
        log.info("this process (pid %d) runs the sensing background work", os.getpid())
        try:
            self.pipeline()
        except Exception:  # a node could not be opened (its disk): the requests will say so
            log.exception("the sensing pipeline could not be opened")
        self._start_background()
        self._recover_orphans()
        while not self._stop.wait(self.settings.sensing.watch_seconds):
            try:
                self.watch_once()
            except Exception:  # the next round tries again
                log.exception("evaluating the vital signs failed")

    def _recover_orphans(self) -> None:
        """Store what the nodes of workers that are gone left in their logs (a worker killed, then fewer
        workers started): a node no process owns is opened — which recovers its log — and closed."""
        from shgov.sensing.service import open_pipeline

        wal = self.settings.data_dir / "sensing" / "wal"
        own = self._pipeline.node if self._pipeline is not None else None
        for name in node_names(self.settings.sensing.node):
            if name == own or self._stop.is_set() or not any((wal / name).glob("*.wal")):
                continue
            try:
                orphan = open_pipeline(self.settings, self.db, node=name)
            except NodeBusyError:
                continue  # a live worker's
            except Exception:  # the next leader tries again
                log.exception("recovering the log of sensing node %s failed", name)
                continue
            orphan.close()

    def _publish(self) -> None:
        """Leave this process's latest values for the other processes, whenever they changed."""
        from shgov.sensing.service import live_dir

        published: tuple[int, int] | None = None
        while not self._stop.wait(LIVE_SECONDS):
            pipeline = self._pipeline
            if pipeline is None or (pipeline.version, self.warnings_version) == published:
                continue
            try:
                published = (pipeline.version, self.warnings_version)
                pipeline.write_live(live_dir(self.settings), FRESH_MS)
            except OSError:  # the next round writes it again
                log.warning("publishing the live sensing values failed", exc_info=True)

    def _simulate(self) -> None:
        """The demo city's devices report once a minute (with incidents and faults) through the pipeline."""
        from shgov.sensing.simulator import Fleet, Simulator

        pipeline = self.pipeline()
        registry = pipeline.registry
        simulator = Simulator(Fleet.of(registry), registry.type_measures, incident_rate=0.002)
        while not self._stop.is_set():
            now = int(time.time() * 1000) // 1000 * 1000
            for district, type_code, batch in simulator.tick(now):
                pipeline.ingest(batch, "simulator", district=district, type_code=type_code)
            self._stop.wait(60)

    def start(self) -> None:
        """Publish this process's live values, and lead the background work when no other process does."""
        (self.settings.data_dir / "sensing").mkdir(parents=True, exist_ok=True)
        self._elector = threading.Thread(target=self._lead, name="sensing-lead", daemon=True)
        self._elector.start()
        self._publisher = threading.Thread(target=self._publish, name="sensing-live", daemon=True)
        self._publisher.start()

    def _start_background(self) -> None:
        """The leader's parts besides the evaluation: the demo simulator, and the MQTT subscriber when a
        broker is configured (a broker that is down is retried by paho)."""
        if self.settings.sensing.simulate:
            self._simulator = threading.Thread(target=self._simulate, name="sensing-simulator", daemon=True)
            self._simulator.start()
        url = self.settings.sensing.mqtt_url
        if not url or self._stop.is_set():
            return
        subscriber = Subscriber(
            self.pipeline(),
            url,
            group=self.settings.sensing.mqtt_group,
            city_code=self.settings.city_code,
            root=self.settings.sensing.mqtt_root,
        )
        try:
            subscriber.start()
        except OSError as exc:
            log.error("the MQTT broker %s is not reachable (%s): readings come over HTTP only", url, exc)
            return
        self._subscriber = subscriber

    def stop(self) -> None:
        """Stop the background work, unsubscribe, store what is logged, give up the node and the lead."""
        self._stop.set()
        for thread in (self._elector, self._simulator, self._publisher):
            if thread is not None:
                thread.join()
        self._elector = self._simulator = self._publisher = None
        if self._subscriber is not None:
            self._subscriber.stop()
            self._subscriber = None
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.close()
                self._pipeline = None
        self._leader.release()
