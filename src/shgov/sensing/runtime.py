"""The sensing parts that live as long as the web process: its ingestion pipeline (opened on first use, so
a process that never sees a reading never takes the node) and, when ``SHGOV_SENSING__MQTT_URL`` is set,
its MQTT subscriber."""

from __future__ import annotations

import logging
import threading

from shgov.core.db import Database
from shgov.core.settings import Settings
from shgov.sensing.mqtt import Subscriber
from shgov.sensing.pipeline import Pipeline

log = logging.getLogger("shgov.sensing")


class SensingRuntime:
    """Opens the pipeline once, starts its flusher (and the subscriber), and closes both with the app."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._pipeline: Pipeline | None = None
        self._subscriber: Subscriber | None = None
        self._lock = threading.Lock()

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

    def start(self) -> None:
        """Subscribe to the MQTT broker when one is configured (a broker that is down is retried by paho)."""
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
        """Unsubscribe, store what is logged and give up the node."""
        if self._subscriber is not None:
            self._subscriber.stop()
            self._subscriber = None
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.close()
                self._pipeline = None
