"""MQTT transport: clips published at QoS 1, results and refusals back on the device's own topics.

Each clip is published at QoS 1 to ``tinyact/<device>/<camera>/clip``; the broker's PUBACK only says the broker
has it, so the clip stays in the outbox until its result arrives on ``tinyact/<device>/<camera>/result`` (or
from the results feed); without one within ``ack_timeout_s`` it is published again (the cloud's idempotency by
``clip_id`` makes that safe). A refusal on ``tinyact/<device>/<camera>/error`` marks the clip rejected. Only
results and refusals for clips pending in the outbox, on this device's own topics, with matching camera, are
applied (see :class:`MqttTransport`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError
from sqlalchemy import select

from tinyact.edge.schema import outbox
from tinyact.edge.transports.base import RETRYABLE_422, SendOutcome, clip_id_of
from tinyact.wire import (
    ENCODER_MISMATCH,
    ClipResult,
    configure_mqtt_client,
    mqtt_clip_topic,
    mqtt_error_topic,
    mqtt_result_topic,
    parse_mqtt_url,
    split_mqtt_topic,
)

if TYPE_CHECKING:
    from tinyact.edge.outbox import OutboxStore

logger = logging.getLogger(__name__)

#: codes on ``…/error`` that leave the clip in the outbox (published again after ``ack_timeout_s``); any other
#: code is the cloud refusing the clip itself, and the clip is marked rejected with the reason.
TRANSIENT_MQTT_ERRORS = RETRYABLE_422 | {"rate_limited", "database_unavailable", "internal"}


class MqttTransport:
    """Publish clips at QoS 1; results and refusals come back on this device's ``…/result`` and ``…/error``
    topics and are handed to ``on_results`` / ``on_rejected``.

    A message changes the outbox only if the edge can trust it: it arrived on this device's own topic, names a
    clip that is pending in the outbox (``pending_camera(clip_id)`` gives that clip's camera, ``None`` if it is
    not pending), and the topic's camera, the body's ``camera_id`` (and ``device_id``) match it. Anything else
    is ignored, counted in ``ignored`` and logged (at most once a minute per kind): a result for a clip never
    sent cannot mark a real clip delivered nor add a row. That no other account can write these topics is
    the broker's ACL (``tinyact cloud broker-config``). A refusal with a permanent code marks the clip
    rejected with the reason; a transient one (rate limit, no model yet, …) leaves it to be republished; an
    ``encoder_mismatch`` goes to ``on_held`` (the agent holds the clip until the cloud's classifier matches;
    without ``on_held`` it is treated as transient).
    """

    def __init__(self, url: str, device_id: str, on_results: Callable[[list[ClipResult]], object], *,
                 pending_camera: Callable[[str], str | None],
                 on_rejected: Callable[[dict[str, str]], object] | None = None,
                 on_held: Callable[[dict[str, str]], object] | None = None,
                 username: str | None = None, password: str | None = None,
                 publish_timeout_s: float = 10.0) -> None:
        import paho.mqtt.client as paho

        self.host, self.port, tls = parse_mqtt_url(url)
        self.device_id = device_id
        self.on_results = on_results
        self.on_rejected = on_rejected
        self.on_held = on_held
        self.pending_camera = pending_camera
        self.publish_timeout_s = publish_timeout_s
        self.ignored: dict[str, int] = {}
        self._log = _RateLimitedLog(60.0)
        # A persistent session (fixed client id, clean_session False): the broker keeps our subscription and
        # queues QoS 1 results while the agent is away.
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"tinyact-edge-{device_id}",
                                  clean_session=False, protocol=paho.MQTTv311)
        configure_mqtt_client(self.client, tls, username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            logger.warning("MQTT broker %s:%d refused the connection: %s (check the device's MQTT username and "
                           "password: `tinyact cloud device mqtt-password %s`)", self.host, self.port, reason_code,
                           self.device_id)
            return
        client.subscribe([(mqtt_result_topic(self.device_id, "+"), 1), (mqtt_error_topic(self.device_id, "+"), 1)])
        self.connected.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        if reason_code != 0:
            logger.warning("MQTT connection lost (%s); reconnecting", reason_code)

    def _on_message(self, _client, _userdata, message) -> None:
        try:
            self.handle(message.topic, message.payload, retained=bool(message.retain))
        except Exception:  # never let a store error kill paho's network thread
            logger.exception("could not handle the MQTT message on %s", message.topic)

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> str:
        """Apply one message from the broker; returns what was done: ``result``, ``rejected``, ``held``,
        ``transient``, ``empty`` (a cleared retained message) or ``ignored:<why>``."""
        parts = split_mqtt_topic(topic)
        if parts is None or parts[0] != self.device_id or parts[2] not in ("result", "error"):
            return self._ignore("foreign_topic", "message on %s, which is not this device's result or error topic", topic)
        if not payload:
            return "empty"
        _device, camera, kind = parts
        if kind == "result":
            try:
                result = ClipResult.model_validate_json(payload)
            except ValidationError:
                return self._ignore("unreadable", "unreadable result on %s", topic)
            why = self._untrusted(str(result.clip_id), camera, result.camera_id, result.device_id, retained)
            if why:
                return why
            self.on_results([result])
            return "result"
        try:
            body = json.loads(payload)
            clip_id, code = str(uuid.UUID(str(body["clip_id"]))), str(body["error"])
            detail = str(body.get("detail", ""))
        except (ValueError, TypeError, KeyError, AttributeError):
            return self._ignore("unreadable", "unreadable refusal on %s", topic)
        why = self._untrusted(clip_id, camera, camera, None, retained)
        if why:
            return why
        if code == ENCODER_MISMATCH and self.on_held is not None:
            self.on_held({clip_id: f"{code}: {detail}"[:500]})
            return "held"
        if code in TRANSIENT_MQTT_ERRORS or code == ENCODER_MISMATCH:
            self._log.log(logging.INFO, f"transient:{code}", "the cloud deferred clip %s (%s: %s); it will be "
                          "published again", clip_id, code, detail)
            return "transient"
        if self.on_rejected is not None:
            self.on_rejected({clip_id: f"{code}: {detail}"[:500]})
        return "rejected"

    def _untrusted(self, clip_id: str, topic_camera: str, body_camera: str, body_device: str | None,
                   retained: bool) -> str | None:
        """Why a message about ``clip_id`` cannot be trusted (``ignored:<why>``, logged), or ``None``."""
        if body_device is not None and body_device != self.device_id:
            return self._ignore("device_mismatch", "message for device %r on this device's topic (clip %s)",
                                body_device, clip_id)
        pending = self.pending_camera(clip_id)
        if pending is None:
            # A repeat of a result already stored (a retained message on resubscribing, or one the results feed
            # brought first) is normal; anything else for a clip this device never sent is not.
            return self._ignore("not_pending", "message for clip %s, which is not in the outbox", clip_id,
                                level=logging.DEBUG if retained else logging.INFO)
        if not (pending == topic_camera == body_camera):
            return self._ignore("camera_mismatch", "message for clip %s of camera %r came on %r naming camera %r",
                                clip_id, pending, topic_camera, body_camera)
        return None

    def _ignore(self, why: str, message: str, *args, level: int = logging.WARNING) -> str:
        self.ignored[why] = self.ignored.get(why, 0) + 1
        self._log.log(level, why, "ignored an MQTT " + message, *args)
        return f"ignored:{why}"

    def send(self, messages: Sequence[str]) -> SendOutcome:
        """Publish each clip; clips the broker acknowledged are *not* delivered yet (their result is), so they
        come back as ``retry`` with no error: the agent waits ``ack_timeout_s`` for the result."""
        ids = [clip_id_of(m) for m in messages]
        if not self.connected.wait(timeout=min(2.0, self.publish_timeout_s)):
            return SendOutcome(retry=ids, error=f"MQTT broker {self.host}:{self.port} not connected")
        infos = []
        for message, clip_id in zip(messages, ids, strict=True):
            camera = json.loads(message)["camera_id"]
            infos.append((clip_id, self.client.publish(mqtt_clip_topic(self.device_id, camera), message, qos=1)))
        outcome = SendOutcome(bytes_sent=sum(len(m) for m in messages))
        for clip_id, info in infos:
            try:
                info.wait_for_publish(timeout=self.publish_timeout_s)
                ok = info.is_published()
            except (RuntimeError, ValueError):
                ok = False
            outcome.retry.append(clip_id)
            if not ok:
                outcome.error = "the MQTT broker did not acknowledge the publish"
        return outcome


class _RateLimitedLog:
    """Log a kind of message at most once per ``interval_s``; the next one says how many were left out."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, key: str, message: str, *args) -> None:
        if not logger.isEnabledFor(level):
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -self.interval_s) < self.interval_s:
                self._skipped[key] = self._skipped.get(key, 0) + 1
                return
            self._last[key] = now
            skipped = self._skipped.pop(key, 0)
        if skipped:
            message += f" ({skipped} more like it not logged in the last {self.interval_s:g} s)"
        logger.log(level, message, *args)


def outbox_camera(store: OutboxStore, clip_id: str) -> str | None:
    """The camera of ``clip_id`` if it is pending in the outbox of ``store`` (an :class:`EdgeStore`), else ``None``:
    what :class:`MqttTransport` checks a result or refusal against."""
    with store.engine.connect() as db:
        return db.execute(select(outbox.c.camera_id).where(outbox.c.clip_id == clip_id)).scalar()
