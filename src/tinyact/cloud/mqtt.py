"""MQTT side of the service: results out to ``tinyact/<device>/<camera>/result``, latents in from
``tinyact/<device>/<camera>/clip``.

Results are published at QoS 1 and retained, so an edge that (re)subscribes gets each camera's last result at
once; while the broker is unreachable, paho keeps QoS 1 messages queued (bounded) and sends them after it
reconnects (unlike QoS 0, which would drop them). Clip messages carry one :class:`tinyact.wire.ClipIn` as
JSON and go through the same validation, classification and idempotent store as ``POST /v1/clips``; what
cannot be accepted gets a JSON reason on ``tinyact/<device>/<camera>/error`` (QoS 1, not retained).

The topic names the device, so MQTT ingest trusts the broker to stop a device from publishing under another
device's name: ``tinyact cloud broker-config`` (:mod:`tinyact.cloud.broker`) writes Mosquitto's password file
and ACL so that each device logs in as itself, writes only ``tinyact/<itself>/+/clip`` and reads only its own
results and errors, and only the service's account writes results. The service logs in with
:func:`~tinyact.cloud.broker.cloud_credentials` and additionally drops clips from devices that are not
registered or were revoked. Replicas subscribe through a shared subscription (``$share/<group>/…``) so
each clip is classified by one of them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from tinyact.cloud.broker import cloud_credentials
from tinyact.wire import configure_mqtt_client, mqtt_clip_topic, parse_mqtt_url, split_mqtt_topic

logger = logging.getLogger(__name__)

CLIP_SUBSCRIPTION = mqtt_clip_topic("+", "+")
MAX_QUEUED = 100_000  # QoS 1 messages kept while disconnected; beyond this, publish fails and is counted


class MqttBridge:
    """A paho client running in its own thread.

    ``on_clip(device, camera, payload)`` is called from paho's thread for each clip message; it must hand the
    work to the service's event loop and return quickly. ``username``: the broker login (default
    ``$TINYACT_MQTT_USERNAME``, else ``tinyact-cloud`` when a password is known; see ``cloud_credentials``).
    """

    def __init__(
        self,
        url: str,
        *,
        on_clip: Callable[[str, str, bytes], None] | None = None,
        share_group: str | None = "tinyact-cloud",
        client_id: str | None = None,
        on_publish_failed: Callable[[], None] | None = None,
        username: str | None = None,
    ) -> None:
        import paho.mqtt.client as paho

        self.host, self.port, tls = parse_mqtt_url(url)
        self.on_clip = on_clip
        self.subscription = f"$share/{share_group}/{CLIP_SUBSCRIPTION}" if share_group else CLIP_SUBSCRIPTION
        self.on_publish_failed = on_publish_failed
        persistent = client_id is not None
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"tinyact-cloud-{uuid.uuid4().hex[:12]}",
            clean_session=not persistent,
            protocol=paho.MQTTv311,
        )
        self.client.max_queued_messages_set(MAX_QUEUED)
        configure_mqtt_client(self.client, tls, *cloud_credentials(username))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.connected = False

    def start(self) -> None:
        """Connect in the background (and keep reconnecting); returns at once."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> bool:
        """Publish at QoS 1; ``False`` if paho refused it (its queue is full)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (0, 4):  # 4 = MQTT_ERR_NO_CONN: queued, sent after reconnecting
            logger.warning("MQTT publish to %s failed (rc=%s)", topic, info.rc)
            if self.on_publish_failed:
                self.on_publish_failed()
            return False
        return True

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            logger.warning("MQTT broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        self.connected = True
        logger.info("connected to MQTT broker %s:%d", self.host, self.port)
        if self.on_clip is not None:
            client.subscribe(self.subscription, qos=1)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected = False
        if reason_code != 0:
            logger.warning("MQTT connection lost (%s); reconnecting", reason_code)

    def _on_message(self, _client, _userdata, message) -> None:
        parts = split_mqtt_topic(message.topic)
        if parts is None or parts[2] != "clip" or self.on_clip is None:
            return
        try:
            self.on_clip(parts[0], parts[1], message.payload)
        except Exception:  # never let one message kill paho's network thread
            logger.exception("MQTT clip from %s could not be handed over", message.topic)
