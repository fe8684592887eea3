"""MQTT ingestion: SH-GOV subscribes to ``shgov/{tenant}/readings/{device_type}`` on any MQTT 5 broker (the
first level is ``SHGOV_SENSING__MQTT_ROOT``).

Each message is a gateway batch (JSON or the binary form, see ``readings``). The subscriber acknowledges a
QoS 1 message (PUBACK) only after the pipeline has logged it to disk, so a broker redelivers whatever a
crashed ingest process had not yet made durable; its session outlives a restart (a fixed client id, MQTT 5
session expiry), so messages published while it is down are delivered when it comes back.

Several ingest processes share the load through an MQTT shared subscription (``$share/<group>/…``): the
broker hands each message to one member of the group. Each process runs its own ``Pipeline`` node.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from shgov.core.errors import InvalidError
from shgov.core.i18n import N_
from shgov.sensing.pipeline import Pipeline
from shgov.sensing.readings import decode

log = logging.getLogger("shgov.sensing.mqtt")

SESSION_SECONDS = 24 * 3600  # the broker keeps a stopped subscriber's messages this long


@dataclass(frozen=True)
class Broker:
    """Where the broker is: ``mqtt://[user:password@]host[:port]`` or ``mqtts://`` (TLS)."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> Broker:
        """Read an MQTT URL; refuses any other scheme."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise InvalidError(
                N_("an MQTT broker is mqtt://host:port or mqtts://host:port, not {url!r}"), field="mqtt_url", url=url
            )
        tls = parts.scheme == "mqtts"
        return cls(
            parts.hostname,
            parts.port or (8883 if tls else 1883),
            tls,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )


def split_topic(topic: str, root: str = "shgov") -> tuple[str, str] | None:
    """(tenant, device type) of a readings topic ``<root>/{tenant}/readings/{type}``, or None."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != root or parts[2] != "readings" or not parts[1] or not parts[3]:
        return None
    return parts[1], parts[3]


class Subscriber:
    """Feeds a pipeline from an MQTT broker until stopped."""

    def __init__(
        self,
        pipeline: Pipeline,
        url: str,
        *,
        group: str | None = None,
        city_code: str = "310000",
        root: str = "shgov",
        client_id: str | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.broker = Broker.parse(url)
        self.city_code = city_code
        self.root = root
        topic = f"{root}/+/readings/+"
        self.topic = f"$share/{group}/{topic}" if group else topic
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"shgov-ingest-{pipeline.node}",
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if self.broker.username:
            self.client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            self.client.tls_set()
        self.client.on_connect = self._connected
        self.client.on_subscribe = self._subscribed
        self.client.on_message = self._message
        self.subscribed = threading.Event()
        self.messages = 0

    def _connected(
        self, client: paho.Client, _userdata: object, _flags: object, reason: ReasonCode, _props: object
    ) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s:%d refused the connection: %s", self.broker.host, self.broker.port, reason)
            return
        client.subscribe(self.topic, qos=1)

    def _subscribed(
        self, _client: paho.Client, _userdata: object, _mid: int, reasons: list[ReasonCode], _props: object
    ) -> None:
        # Only the broker's SUBACK makes it so: a message published before it reaches no one in the group.
        if any(r.is_failure for r in reasons):
            log.error(
                "MQTT broker %s:%d refused the subscription to %s: %s",
                self.broker.host,
                self.broker.port,
                self.topic,
                reasons,
            )
            return
        self.subscribed.set()
        log.info("subscribed to %s on %s:%d", self.topic, self.broker.host, self.broker.port)

    def _message(self, client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        source = f"mqtt:{message.topic}"
        payload = bytes(message.payload)
        where = split_topic(message.topic, self.root)
        try:
            if where is None:
                self.pipeline.log_unreadable(source, payload, f"not a topic {self.root}/{{tenant}}/readings/{{type}}")
            else:
                tenant, type_code = where
                batch = decode(payload)
                district = None if tenant == self.city_code else tenant
                self.pipeline.ingest(batch, source, district=district, type_code=type_code)
        except InvalidError as exc:
            self.pipeline.log_unreadable(source, payload, str(exc))
        except Exception:  # not acknowledged: the broker will hand the message over again
            log.exception("a batch from %s could not be ingested; it stays with the broker", message.topic)
            return
        self.messages += 1
        client.ack(message.mid, message.qos)

    def start(self) -> None:
        """Connect (keeping the session across restarts) and run the network loop in a background thread."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_SECONDS
        self.client.connect(self.broker.host, self.broker.port, keepalive=30, clean_start=False, properties=properties)
        self.client.loop_start()

    def wait_subscribed(self, seconds: float) -> bool:
        """Whether the broker confirmed the subscription within ``seconds``."""
        return self.subscribed.wait(seconds)

    def stop(self) -> None:
        """Disconnect and stop the network loop."""
        self.client.disconnect()
        self.client.loop_stop()
