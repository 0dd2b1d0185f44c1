"""Getting latents to the cloud and results back: HTTP (``POST /v1/clips``) or MQTT (QoS 1).

A transport takes outbox messages (``ClipIn`` JSON strings, latent already encoded) and reports what
happened in a :class:`SendOutcome`; the agent turns that into store updates (delivered, retry later with
backoff, rejected). Nothing here decides to drop a clip.

HTTP: the answer to a POST carries one result per clip, so a 200 is the cloud's acknowledgement. Bodies are
gzip-compressed (``Content-Encoding: gzip``) when that saves at least 10 % (``gzip: auto``); a cloud that
does not accept compressed bodies is detected (its 415/422 to a compressed body) and sent plain from then
on. ``GET /v1/results?since=`` brings back results the device missed (e.g. a response lost in an outage).

MQTT: each clip is published at QoS 1 to ``tinyact/<device>/<camera>/clip``; the broker's PUBACK only says
the broker has it, so the clip stays in the outbox until its result arrives on
``tinyact/<device>/<camera>/result`` (or from the results feed); without one within ``ack_timeout_s`` it is
published again (the cloud's idempotency by ``clip_id`` makes that safe). A refusal on
``tinyact/<device>/<camera>/error`` marks the clip rejected. Only results and refusals for clips pending in the
outbox, on this device's own topics, with matching camera, are applied (see :class:`MqttTransport`).

Encoder mismatch (HTTP 409 / MQTT error ``encoder_mismatch``): the cloud's classifier was fitted on another
encoder's latents. That is not the clip's fault, so it is never a rejection: the outcome lists the clips in
``held`` and the agent keeps them in the outbox, held back, until a matching classifier is active.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
from pydantic import ValidationError

from tinyact.wire import (
    ENCODER_MISMATCH,
    ClipResult,
    ModelInfo,
    ResultsPage,
    mqtt_clip_topic,
    mqtt_error_topic,
    mqtt_result_topic,
)

logger = logging.getLogger(__name__)

GZIP_MIN_BYTES = 1024
GZIP_MIN_SAVING = 0.10
#: 422 error codes that are about the cloud's state, not the clip: retry later instead of rejecting the clip.
RETRYABLE_422 = {"wrong_latent_size", "model_changed", "no_model", "future_timestamp"}
#: codes on ``…/error`` that leave the clip in the outbox (published again after ``ack_timeout_s``); any other
#: code is the cloud refusing the clip itself, and the clip is marked rejected with the reason.
TRANSIENT_MQTT_ERRORS = RETRYABLE_422 | {"rate_limited", "database_unavailable", "internal"}


@dataclass
class SendOutcome:
    """What became of one send: ``delivered`` clip ids (acknowledged), ``results`` (verdicts received),
    ``retry`` ids (try again later; ``retry_after_s`` if the cloud said when), ``rejected`` ids with the reason
    (the cloud refused the clip itself: it will never be accepted), ``held`` ids with the reason (the cloud's
    classifier expects another encoder: keep them until it matches), ``error`` (why a retry is needed)."""

    delivered: list[str] = field(default_factory=list)
    results: list[ClipResult] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)
    retry_after_s: float | None = None
    error: str | None = None
    bytes_sent: int = 0


def _clip_id(message: str) -> str:
    return str(json.loads(message)["clip_id"])


def _encoder_of(message: str) -> str | None:
    return json.loads(message).get("encoder_hash")


class HttpTransport:
    """``POST /v1/clips`` with the device key; one request per batch of outbox messages."""

    kind = "http"

    def __init__(self, cloud_url: str, device_key: str, *, gzip_mode: str = "auto", timeout_s: float = 15.0,
                 client: httpx.Client | None = None) -> None:
        self.url = cloud_url.rstrip("/")
        self.gzip_mode = gzip_mode
        self.client = client or httpx.Client(timeout=timeout_s, headers={"Authorization": f"Bearer {device_key}"})
        self.gzip_refused = False
        self.bytes_sent = 0
        self.requests = 0

    def close(self) -> None:
        self.client.close()

    def body(self, messages: Sequence[str]) -> tuple[bytes, dict[str, str]]:
        """The request body for ``messages`` and its headers (compressed when it helps and is allowed)."""
        raw = ('{"clips":[' + ",".join(messages) + "]}").encode()
        headers = {"Content-Type": "application/json"}
        if self.gzip_mode == "never" or self.gzip_refused or (self.gzip_mode == "auto" and len(raw) < GZIP_MIN_BYTES):
            return raw, headers
        packed = gzip.compress(raw, compresslevel=6, mtime=0)
        if self.gzip_mode == "always" or len(packed) <= (1 - GZIP_MIN_SAVING) * len(raw):
            headers["Content-Encoding"] = "gzip"
            return packed, headers
        return raw, headers

    def send(self, messages: Sequence[str]) -> SendOutcome:
        """POST the messages; a 422 for the batch is narrowed down clip by clip so one bad clip never holds
        the others back."""
        ids = [_clip_id(m) for m in messages]
        body, headers = self.body(messages)
        outcome = SendOutcome(bytes_sent=len(body))
        try:
            response = self.client.post(f"{self.url}/v1/clips", content=body, headers=headers)
        except httpx.HTTPError as error:
            return SendOutcome(retry=ids, error=f"cloud unreachable: {type(error).__name__}: {error}", bytes_sent=0)
        self.requests += 1
        self.bytes_sent += len(body)
        if headers.get("Content-Encoding") == "gzip" and response.status_code in (400, 415, 422) \
                and _error_code(response) in ("invalid_request", "unsupported_media_type", "bad_request"):
            # The cloud did not understand the compressed body (an older service): send plain from now on.
            logger.warning("the cloud refused a gzip-compressed body (%s); sending uncompressed from now on",
                           response.status_code)
            self.gzip_refused = True
            return self.send(messages)
        if response.status_code == 200:
            try:
                results = [ClipResult.model_validate(r) for r in response.json()["results"]]
            except (ValueError, KeyError, ValidationError) as error:
                return SendOutcome(retry=ids, error=f"unreadable answer from the cloud: {error}", bytes_sent=len(body))
            outcome.results = results
            outcome.delivered = ids
            return outcome
        code = _error_code(response)
        detail = f"{response.status_code} {code}: {_detail(response)}"
        if response.status_code == 413 and len(messages) > 1:
            return self._split(messages, outcome)
        if response.status_code == 409 and code == ENCODER_MISMATCH:
            groups: dict[str | None, list[str]] = {}
            for message in messages:
                groups.setdefault(_encoder_of(message), []).append(message)
            if len(groups) > 1:  # clips of several encoders (the edge switched): the cloud may take some of them
                return self._merge([self.send(group) for group in groups.values()], outcome)
            outcome.held = dict.fromkeys(ids, detail)
            return outcome
        if response.status_code == 422 and code not in RETRYABLE_422:
            if len(messages) > 1:
                return self._split(messages, outcome)
            outcome.rejected = {ids[0]: detail}
            return outcome
        outcome.retry = ids
        outcome.error = detail
        retry_after = response.headers.get("Retry-After")
        if retry_after:
            with contextlib.suppress(ValueError):
                outcome.retry_after_s = float(retry_after)
        return outcome

    def _split(self, messages: Sequence[str], outcome: SendOutcome) -> SendOutcome:
        half = len(messages) // 2
        return self._merge([self.send(part) for part in (messages[:half], messages[half:])], outcome)

    @staticmethod
    def _merge(parts: list[SendOutcome], outcome: SendOutcome) -> SendOutcome:
        for sub in parts:
            outcome.delivered += sub.delivered
            outcome.results += sub.results
            outcome.retry += sub.retry
            outcome.rejected.update(sub.rejected)
            outcome.held.update(sub.held)
            outcome.bytes_sent += sub.bytes_sent
            outcome.error = outcome.error or sub.error
            outcome.retry_after_s = outcome.retry_after_s or sub.retry_after_s
        return outcome

    def model_info(self) -> ModelInfo | None:
        """The cloud's active classifier (``GET /v1/model``), or ``None`` if it cannot be read now."""
        try:
            response = self.client.get(f"{self.url}/v1/model", timeout=3.0)  # a start-up check: never hold it up long
            response.raise_for_status()
            return ModelInfo.model_validate(response.json())
        except (httpx.HTTPError, ValueError, ValidationError):
            return None

    def fetch_results(self, since: int, limit: int = 1000) -> tuple[list[ClipResult], int]:
        """Results after cursor ``since`` (oldest first) and the next cursor; raises ``httpx.HTTPError``."""
        response = self.client.get(f"{self.url}/v1/results", params={"since": since, "limit": limit})
        response.raise_for_status()
        page = ResultsPage.model_validate(response.json())
        return page.results, page.next_cursor


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except (ValueError, AttributeError):
        return ""


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:1000]
    except (ValueError, AttributeError):
        return response.text[:300]


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

    kind = "mqtt"

    def __init__(self, url: str, device_id: str, on_results: Callable[[list[ClipResult]], None], *,
                 pending_camera: Callable[[str], str | None],
                 on_rejected: Callable[[dict[str, str]], object] | None = None,
                 on_held: Callable[[dict[str, str]], object] | None = None,
                 username: str | None = None, password: str | None = None,
                 publish_timeout_s: float = 10.0) -> None:

        import paho.mqtt.client as paho

        from tinyact.wire import configure_mqtt_client, parse_mqtt_url

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
        self.bytes_sent = 0
        self.requests = 0
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
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != "tinyact" or parts[1] != self.device_id or parts[3] not in ("result", "error"):
            return self._ignore("foreign_topic", "message on %s, which is not this device's result or error topic", topic)
        if not payload:
            return "empty"
        camera, kind = parts[2], parts[3]
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
        ids = [_clip_id(m) for m in messages]
        if not self.connected.wait(timeout=min(2.0, self.publish_timeout_s)):
            return SendOutcome(retry=ids, error=f"MQTT broker {self.host}:{self.port} not connected")
        infos = []
        for message, clip_id in zip(messages, ids, strict=True):
            camera = json.loads(message)["camera_id"]
            infos.append((clip_id, self.client.publish(mqtt_clip_topic(self.device_id, camera), message, qos=1)))
            self.bytes_sent += len(message)
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
        self.requests += 1
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


def outbox_camera(store, clip_id: str) -> str | None:
    """The camera of ``clip_id`` if it is pending in the outbox of ``store`` (an :class:`EdgeStore`), else ``None``:
    what :class:`MqttTransport` checks a result or refusal against."""
    from sqlalchemy import select

    from tinyact.edge.schema import outbox

    with store.engine.connect() as db:
        return db.execute(select(outbox.c.camera_id).where(outbox.c.clip_id == clip_id)).scalar()


def new_clip_id() -> str:
    """A fresh clip id (UUID 4)."""
    return str(uuid.uuid4())
