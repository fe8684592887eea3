"""The sensing parts that live as long as the web process: its ingestion pipeline (opened on first use, so
a process that never sees a reading never takes the node) and, when ``SHGOV_SENSING__MQTT_URL`` is set,
its MQTT subscriber."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from starlette.requests import Request

from shgov.core.db import Database, utcnow
from shgov.core.regions.service import RegionIndex
from shgov.core.settings import Settings
from shgov.sensing import indicators
from shgov.sensing.indicators import Reading
from shgov.sensing.mqtt import Subscriber
from shgov.sensing.pipeline import Overlay, Pipeline
from shgov.sensing.seasonal import Deviation, SeasonalWatch

log = logging.getLogger("shgov.sensing")


def runtime_of(request: Request) -> SensingRuntime:
    """The sensing parts of the app serving ``request``."""
    runtime: SensingRuntime = request.app.state.runtimes["sensing"]
    return runtime


class SensingRuntime:
    """Opens the pipeline once, starts its flusher (and the subscriber), and closes both with the app."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._pipeline: Pipeline | None = None
        self._subscriber: Subscriber | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._simulator: threading.Thread | None = None
        self._index: RegionIndex | None = None
        self._seasonal: SeasonalWatch | None = None
        self.warnings_version = 0  # bumped when an evaluation changed a warning

    def pipeline(self) -> Pipeline:
        """This process's pipeline, opened (and recovered) on first use."""
        with self._lock:
            if self._pipeline is None:
                from shgov.sensing.service import open_pipeline

                self._pipeline = open_pipeline(self.settings, self.db)
                self._pipeline.start()
            return self._pipeline

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
        """Changes whenever the live values or the warnings change (what the dashboard's stream watches)."""
        pipeline = self.pipeline()
        return f"{pipeline.node}.{pipeline.version}.{self.warnings_version}"

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.sensing.watch_seconds):
            try:
                self.watch_once()
            except Exception:  # the next round tries again
                log.exception("evaluating the vital signs failed")

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
        """Evaluate the warnings every ``watch_seconds``; subscribe to the MQTT broker when one is configured
        (a broker that is down is retried by paho)."""
        self._watcher = threading.Thread(target=self._watch, name="sensing-watch", daemon=True)
        self._watcher.start()
        if self.settings.sensing.simulate:
            self._simulator = threading.Thread(target=self._simulate, name="sensing-simulator", daemon=True)
            self._simulator.start()
        url = self.settings.sensing.mqtt_url
        if not url:
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
        """Stop watching, unsubscribe, store what is logged and give up the node."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None
        if self._simulator is not None:
            self._simulator.join()
            self._simulator = None
        if self._subscriber is not None:
            self._subscriber.stop()
            self._subscriber = None
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.close()
                self._pipeline = None
