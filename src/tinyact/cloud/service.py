"""The service's core, shared by the HTTP API and MQTT ingest: authenticate, validate, classify, store,
send back.

One clip's path through :meth:`CloudService.process_clips`::

    ClipIn (validated JSON)   -> decode.decode_clips: encoder hash [409], time stamp, latent [422]
    float32 [N, D]            -> MicroBatcher: stacked with concurrent requests, predict_proba       [N, C]
    label, score, top-5       -> store.GroupWriter (INSERT … ON CONFLICT DO NOTHING)
    StoredPrediction          -> its ClipResult: HTTP response / MQTT tinyact/<device>/<camera>/result
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
from typing import Any

import anyio
import numpy as np
from pydantic import ValidationError
from pydantic_core import to_json
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from tinyact.cloud.auth import Authenticator
from tinyact.cloud.batcher import MicroBatcher, NoModelError
from tinyact.cloud.config import CloudConfig
from tinyact.cloud.decode import decode_clips, top_k
from tinyact.cloud.devices import DeviceInfo, find_device_by_name
from tinyact.cloud.errors import APIError, database_unavailable, describe_validation_error
from tinyact.cloud.idempotency import IDEMPOTENCY_TTL, purge_idempotency_keys
from tinyact.cloud.metrics import Metrics
from tinyact.cloud.mqtt import MqttBridge
from tinyact.cloud.ratelimit import RateLimiter
from tinyact.cloud.registry import (
    ClassifierMismatchError,
    LoadedModel,
    ModelRegistry,
    active_model_row,
    record_model,
)
from tinyact.cloud.store import CameraIds, CameraLimitError, GroupWriter, NewPrediction
from tinyact.wire import ClipIn, ClipResult, StoredPrediction, mqtt_error_topic, mqtt_result_topic

logger = logging.getLogger(__name__)


def freeze_long_lived_objects() -> None:
    """Take every object alive now (imported modules, the loaded classifier) out of the cyclic GC's sight.

    With torch, scikit-learn and SQLAlchemy loaded, a full (generation-2) collection walks the whole heap: it
    took 45-150 ms in the service, a stall every few seconds under load that queued ~25 requests and made
    p99 latency 40 ms while p95 was 4 ms (``benchmarks/cloud_load.py``, docs/BENCHMARKS.md). Frozen objects
    are still freed by reference counting; only cycles among them are never collected, which for modules and
    a model that lives until the next swap costs nothing.
    """
    gc.collect()
    gc.freeze()


class CloudService:
    """State of one service process: database, model registry, batcher, metrics, MQTT bridge."""

    def __init__(
        self, config: CloudConfig, engine: Engine, *, admin_token: str | None = None, viewer_token: str | None = None
    ) -> None:
        self.config = config
        self.engine = engine
        self.auth = Authenticator(engine, admin_token=admin_token, viewer_token=viewer_token,
                                  cache_s=config.auth_cache_s)
        self.metrics = Metrics()
        self.registry = ModelRegistry(config.expected_encoder_hash)
        self.batcher = MicroBatcher(
            self.registry,
            window_s=config.batch_window_ms / 1000.0,
            max_rows=config.batch_max_clips,
            on_batch=self.metrics.on_batch,
        )
        self.rate_limiter = RateLimiter(config.rate_limit_per_s, config.rate_limit_burst)
        self._unknown_devices_logged: dict[str, tuple[float, int]] = {}
        self.camera_ids = CameraIds(config.max_cameras_per_device)
        self.writer = GroupWriter(engine, self.camera_ids)
        self.mqtt: MqttBridge | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._background: list[asyncio.Task[None]] = []
        self._mqtt_tasks: set[asyncio.Task[ClipResult | None]] = set()
        self._unnamed_logged: dict[str, float] = {}  # device -> when clips without encoder_hash were last logged

    # ---- life cycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Migrate, load the model, start the batcher, MQTT and the model-follow loop."""
        from tinyact.cloud.db.engine import upgrade_database

        self.loop = asyncio.get_running_loop()
        if self.config.blas_threads:
            from threadpoolctl import threadpool_limits

            # Process-wide (OpenBLAS/MKL keep one setting); measured: 64×1024 logistic regression 21 ms with
            # 2 spinning OpenBLAS threads on a busy 2-core machine, 1.5 ms with one.
            threadpool_limits(limits=self.config.blas_threads, user_api="blas")
        if self.config.migrate:
            await anyio.to_thread.run_sync(upgrade_database, self.engine)
        await anyio.to_thread.run_sync(self._load_initial_model)
        self.batcher.start()
        self.writer.start()
        if self.config.mqtt:
            self.mqtt = MqttBridge(
                self.config.mqtt,
                on_clip=self._on_mqtt_clip if self.config.mqtt_ingest else None,
                share_group=self.config.mqtt_share_group or None,
                client_id=self.config.mqtt_client_id,
                on_publish_failed=lambda: self.metrics.mqtt.labels("out", "failed").inc(),
                username=self.config.mqtt_username,
            )
            self.mqtt.start()
        self._background.append(asyncio.create_task(self._housekeeping(), name="tinyact-housekeeping"))
        freeze_long_lived_objects()

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background.clear()
        if self.mqtt is not None:
            await anyio.to_thread.run_sync(self.mqtt.stop)
            self.mqtt = None
        await self.batcher.stop()
        await self.writer.stop()
        self.engine.dispose()

    def _load_initial_model(self) -> None:
        if self.config.model is not None:
            model = self.registry.load(self.config.model)
            active = active_model_row(self.engine)
            if active and active[0] != model.version:
                logger.warning(
                    "--model %s (%s) replaces the active model %s for every replica sharing this database",
                    self.config.model, model.version, active[0],
                )
            record_model(self.engine, model, activate=True)
        else:
            active = active_model_row(self.engine)
            if active is None:
                logger.warning("no model: /v1/clips answers 503 until an admin POSTs /v1/admin/model")
                return
            model = self.registry.load(active[1], allow_encoder_change=True)
        self.metrics.set_model(model.version, model.classifier.kind)

    async def _housekeeping(self) -> None:
        """Follow model activations of other replicas; forget old idempotency keys now and then."""
        last_purge = 0.0
        interval = self.config.model_poll_s or 60.0
        while True:
            await asyncio.sleep(interval)
            try:
                if self.config.model_poll_s:
                    await anyio.to_thread.run_sync(self._follow_active_model)
                if time.monotonic() - last_purge > 3600:
                    last_purge = time.monotonic()
                    await anyio.to_thread.run_sync(purge_idempotency_keys, self.engine, IDEMPOTENCY_TTL)
            except Exception:
                logger.exception("housekeeping failed; retrying later")

    def _follow_active_model(self) -> None:
        active = active_model_row(self.engine)
        current = self.registry.current
        if active is None or (current is not None and current.version == active[0]):
            return
        logger.info("another replica activated model %s; loading %s", active[0], active[1])
        model = self.registry.load(active[1], allow_encoder_change=True)
        self.metrics.set_model(model.version, model.classifier.kind)
        freeze_long_lived_objects()

    def swap_model(self, path: str, *, allow_encoder_change: bool = False) -> LoadedModel:
        """Load ``path`` and make it the active model here and, through the database, on every replica."""
        model = self.registry.load(path, allow_encoder_change=allow_encoder_change)
        record_model(self.engine, model, activate=True)
        self.metrics.set_model(model.version, model.classifier.kind)
        freeze_long_lived_objects()
        return model

    @property
    def admin_token(self) -> str | None:
        """The admin token (``None``: the admin API is off)."""
        return self.auth.admin_token

    @admin_token.setter
    def admin_token(self, value: str | None) -> None:
        self.auth.admin_token = value

    def check_rate(self, device: DeviceInfo) -> None:
        """Count a request of ``device``; 429 with ``Retry-After`` when it is over its rate."""
        allowed, wait = self.rate_limiter.allow(device.name)
        if not allowed:
            self.metrics.rejects.labels("rate_limited").inc()
            raise APIError(429, "rate_limited",
                           f"device {device.name!r} is over {self.config.rate_limit_per_s:g} requests/s; retry later",
                           headers={"Retry-After": str(max(1, int(np.ceil(wait))))})

    # ---- clips ------------------------------------------------------------------------------------------
    def _count_unnamed(self, device: str, n: int) -> None:
        """Clips without ``encoder_hash`` (older edges): accepted, counted, and logged once an hour per device."""
        self.metrics.unnamed_encoder.inc(n)
        now = time.monotonic()
        if now - self._unnamed_logged.get(device, -3600.0) >= 3600.0:
            self._unnamed_logged[device] = now
            logger.warning(
                "device %s sends clips without encoder_hash (an older edge): accepted, but the cloud cannot check "
                "that they come from the encoder the classifier was fitted on; update the edge "
                "(counted in tinyact_clips_without_encoder_hash_total; logged once an hour per device)", device)

    async def process_clips(
        self, device: DeviceInfo, clips: list[ClipIn], where: str = "clips"
    ) -> tuple[list[dict[str, Any]], int]:
        """Validate, classify and store ``clips`` of ``device``.

        Returns:
            One result per clip, in order (:meth:`StoredPrediction.result` dicts), and how many were stored now.

        Raises:
            APIError: the request is refused (nothing of it is stored).
        """
        with self.batcher.ticket() as ticket:
            checked = self.registry.current
            if checked is None:
                raise APIError(503, "no_model", "no classifier is loaded yet: an admin must POST /v1/admin/model",
                               headers={"Retry-After": "5"})
            latents, unique = decode_clips(clips, checked, max_future_s=self.config.max_future_s, where=where)
            unnamed = sum(1 for clip in clips if clip.encoder_hash is None)
            if unnamed:
                self._count_unnamed(device.name, unnamed)
            try:
                probabilities, model = await self.batcher.classify(latents, ticket)
            except NoModelError:
                raise APIError(503, "no_model", "no classifier is loaded", headers={"Retry-After": "5"}) from None
            except ClassifierMismatchError as error:  # swapped to a model of another latent size mid-request
                raise APIError(409, "model_changed", f"the model changed while classifying: {error}; retry") from None
            if model.classifier.encoder_hash != checked.classifier.encoder_hash:
                # Swapped to another encoder's classifier mid-request: the hashes were checked against the old one.
                raise APIError(409, "model_changed", "the model changed to another encoder's while classifying; retry")
        cameras_sent = {clip.camera_id for clip in unique}
        if not self.camera_ids.known(device.id, cameras_sent):  # a new camera: refuse it here, not in the group
            try:
                await anyio.to_thread.run_sync(self._check_camera_room, device.id, cameras_sent)
            except CameraLimitError as error:
                raise self._camera_limit_error(device, error) from None
            except SQLAlchemyError as error:
                logger.error("checking the cameras of %s failed: %s", device.name, error)
                raise database_unavailable() from None
        labels = model.label_names
        rows = []
        for clip, indices, scores in zip(unique, *top_k(probabilities), strict=True):  # best first
            top5: list[dict[str, Any]] = [{"label": labels[j], "score": score} for j, score in zip(indices, scores, strict=True)]
            rows.append(NewPrediction(clip.clip_id, clip.camera_id, clip.captured_at, labels[indices[0]],
                                      scores[0], top5, model.version))
        try:
            stored, new_ids = await self.writer.store(device.id, device.name, rows)
        except CameraLimitError as error:  # a race with another request adding cameras
            raise self._camera_limit_error(device, error) from None
        except SQLAlchemyError as error:
            logger.error("storing %d predictions failed: %s", len(rows), error)
            raise database_unavailable() from None
        self.metrics.clips.labels(model.version).inc(len(new_ids))
        if len(rows) > len(new_ids):
            self.metrics.duplicates.inc(len(rows) - len(new_ids))
        results = [stored[clip.clip_id].result() for clip in clips]
        if self.mqtt is not None and new_ids:
            self._publish_results([stored[c] for c in sorted(new_ids, key=lambda c: stored[c].id)])
        return results, len(new_ids)

    def _check_camera_room(self, device_id: int, names: set[str]) -> None:
        with self.engine.connect() as connection:
            self.camera_ids.check_room(connection, device_id, names)

    def _camera_limit_error(self, device: DeviceInfo, error: CameraLimitError) -> APIError:
        return APIError(
            422, "too_many_cameras",
            f"device {device.name!r} already has {error.limit} cameras, the limit (max_cameras_per_device); "
            f"new camera_id {error.new[0]!r} refused: reuse a camera name or raise the limit",
        )

    def _publish_results(self, predictions: list[StoredPrediction]) -> None:
        assert self.mqtt is not None
        for prediction in predictions:
            ok = self.mqtt.publish(
                mqtt_result_topic(prediction.device, prediction.camera), to_json(prediction.result()), retain=True
            )
            self.metrics.mqtt.labels("out", "published" if ok else "failed").inc()

    # ---- MQTT ingest ------------------------------------------------------------------------------------
    def _on_mqtt_clip(self, device: str, camera: str, payload: bytes) -> None:
        """Called in paho's thread: hand the message to the event loop."""
        if self.loop is None or self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.ingest_mqtt(device, camera, payload), self.loop)

    def _log_unknown_device(self, device_name: str, every_s: float = 60.0) -> None:
        """One warning a minute for MQTT clips from unknown or revoked devices (a flood of them made one log line
        each), with how many were dropped since; the metric counts every one."""
        now = time.monotonic()
        last, dropped = self._unknown_devices_logged.get(device_name, (-every_s, 0))
        if now - last < every_s:
            self._unknown_devices_logged[device_name] = (last, dropped + 1)
            return
        if len(self._unknown_devices_logged) >= 1024:  # bounded: names are chosen by whoever publishes
            self._unknown_devices_logged.clear()
        self._unknown_devices_logged[device_name] = (now, 0)
        logger.warning("MQTT clip from unknown or revoked device %r dropped (%d more since the last warning)",
                       device_name, dropped)

    async def ingest_mqtt(self, device_name: str, camera: str, payload: bytes) -> ClipResult | None:
        """Classify one MQTT clip message; reasons for refusing it go to ``…/error``."""
        task = asyncio.current_task()
        if task is not None:
            self._mqtt_tasks.add(task)
        try:
            device = await anyio.to_thread.run_sync(find_device_by_name, self.engine, device_name)
            if device is None or device.revoked_at is not None:
                # No error reply: the sender may not even be a device of ours.
                self.metrics.rejects.labels("mqtt_unknown_device").inc()
                self.metrics.mqtt.labels("in", "unknown_device").inc()
                self._log_unknown_device(device_name)
                return None
            try:
                clip = ClipIn.model_validate_json(payload)
                if clip.camera_id != camera:
                    raise APIError(422, "camera_mismatch",
                                   f"camera_id {clip.camera_id!r} differs from the topic's camera {camera!r}")
                allowed, _ = self.rate_limiter.allow(device.name)
                if not allowed:
                    raise APIError(429, "rate_limited", f"device {device.name!r} is over its rate limit; retry later")
                results, _ = await self.process_clips(device, [clip], where="")
            except ValidationError as error:
                self._mqtt_reject(device.name, camera, _clip_id_of(payload),
                                  describe_validation_error(error, root="message"))
                return None
            except APIError as error:
                self._mqtt_reject(device.name, camera, _clip_id_of(payload), error)
                return None
            self.metrics.mqtt.labels("in", "classified").inc()
            return ClipResult.model_validate(results[0])
        except Exception:
            logger.exception("MQTT clip from %s/%s failed", device_name, camera)
            self.metrics.mqtt.labels("in", "error").inc()
            return None
        finally:
            if task is not None:
                self._mqtt_tasks.discard(task)

    def _mqtt_reject(self, device: str, camera: str, clip_id: str | None, error: APIError) -> None:
        self.metrics.rejects.labels(error.code).inc()
        self.metrics.mqtt.labels("in", "rejected").inc()
        if self.mqtt is not None:
            body = {"clip_id": clip_id, **error.body()}
            self.mqtt.publish(mqtt_error_topic(device, camera), json.dumps(body))

    # ---- health -----------------------------------------------------------------------------------------
    def database_ok(self) -> bool:
        """Whether the database answers a ``SELECT 1``."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False


def _clip_id_of(payload: bytes) -> str | None:
    """The clip id of a message that failed later checks (for the error reply), if it has one."""
    try:
        value = json.loads(payload).get("clip_id")
        return str(value) if isinstance(value, str) else None
    except Exception:
        return None
