"""The service's core, shared by the HTTP API and MQTT ingest: authenticate, validate, classify, store,
send back.

One clip's path through :meth:`CloudService.process_clips`::

    ClipIn (validated JSON)   -> encoder_hash = the active classifier's encoder?                     [409]
                              -> check time stamp, decode latent (tinyact.wire), check its length   [422]
    float32 [N, D]            -> MicroBatcher: stacked with concurrent requests, predict_proba       [N, C]
    label, score, top-5       -> store.store_predictions (INSERT … ON CONFLICT DO NOTHING)
    ClipResult per clip       -> HTTP response / MQTT tinyact/<device>/<camera>/result
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import gc
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
import numpy as np
from pydantic import ValidationError
from pydantic_core import to_json
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from tinyact.cloud.batcher import MicroBatcher, NoModelError
from tinyact.cloud.config import CloudConfig
from tinyact.cloud.devices import DeviceInfo, find_device_by_key, find_device_by_name, hash_key
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
from tinyact.cloud.store import (
    CameraIds,
    CameraLimitError,
    GroupWriter,
    NewPrediction,
    StoredPrediction,
    purge_idempotency_keys,
)
from tinyact.wire import (
    ENCODER_MISMATCH,
    ClipIn,
    ClipResult,
    EncodedLatent,
    WireFormatError,
    decode_latent,
    mqtt_result_topic,
)

logger = logging.getLogger(__name__)

IDEMPOTENCY_TTL = timedelta(hours=24)
MAX_LATENT_ABS = 1e4
"""Largest magnitude a latent value may have. Encoder latents are O(1-10); values near float32's limit (3.4e38)
overflow inside classifiers (a StandardScaler squares them) and are refused with 422 before classifying."""
EARLIEST_CAPTURE = datetime(2000, 1, 1, tzinfo=UTC)
"""``captured_at`` before this is refused (422): a device clock at 0 (1970) or a bogus date, which would also
overflow time-zone conversion near year 1."""
CAMERA_RULE = "1-64 characters: letters, digits, _ . : - (starting with a letter or digit)"


class APIError(Exception):
    """An answer other than 2xx: HTTP ``status``, a short ``code`` and a sentence for a person."""

    def __init__(self, status: int, code: str, detail: str, *, errors: list[dict] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers

    def body(self) -> dict:
        out = {"error": self.code, "detail": self.detail}
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def describe_validation_error(error: ValidationError, root: str = "body") -> APIError:
    """A pydantic error as a 422 whose ``detail`` names the first failing field in plain words."""
    items = []
    for item in error.errors(include_url=False, include_input=False)[:20]:
        message = item["msg"]
        if item["type"] == "string_pattern_mismatch" and item["loc"] and item["loc"][-1] == "camera_id":
            message = f"camera_id must be {CAMERA_RULE}"
        elif item["type"] == "json_invalid":
            message = f"not valid JSON ({item.get('ctx', {}).get('error', message)})"
        items.append({"loc": [root, *item["loc"]], "msg": message, "type": item["type"]})
    # For a union (latent: object or list) name the branch that matched the input's type, e.g. "List should
    # have at most 16384 items", not "Input should be a valid dictionary" of the other branch.
    items.sort(key=lambda item: item["type"] in {"model_type", "list_type", "dict_type"})
    first = items[0] if items else {"loc": [root], "msg": "invalid"}
    where = ".".join(str(p) for p in first["loc"][1:] if p not in {"EncodedLatent", "list[float]"}) or root
    more = f" (and {len(error.errors()) - 1} more)" if len(error.errors()) > 1 else ""
    return APIError(422, "invalid_request", f"{where}: {first['msg']}{more}", errors=items)


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


@dataclass(frozen=True)
class Principal:
    """Who is calling: a device (``device`` set), the admin, or a dashboard viewer."""

    role: str  # "device" | "admin" | "viewer"
    device: DeviceInfo | None = None


def stored_to_dict(stored: StoredPrediction) -> dict:
    """A stored prediction as the JSON-ready dict of a :class:`ClipResult` (serialise with
    ``pydantic_core.to_json``: the same bytes as ``ClipResult.model_dump_json``, without building models)."""
    return {
        "clip_id": stored.clip_id,
        "camera_id": stored.camera,
        "captured_at": stored.captured_at,
        "label": stored.label,
        "score": stored.score,
        "top5": stored.top5,
        "model_version": stored.model_version,
        "device_id": stored.device,
        "cursor": stored.id,
    }


def stored_to_result(stored: StoredPrediction) -> ClipResult:
    """A stored prediction in the wire format."""
    return ClipResult.model_validate(stored_to_dict(stored))


def top_k(probabilities: np.ndarray, k: int = 5) -> tuple[list[list[int]], list[list[float]]]:
    """float ``[N, C]`` -> (label indices ``[N, min(k, C)]`` best first, their scores rounded to 6 digits)."""
    k = min(k, probabilities.shape[1])
    if probabilities.shape[1] > 4 * k:  # partial sort of the top k, then order those k
        part = np.argpartition(-probabilities, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(probabilities, part, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
    else:
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    scores = np.round(np.take_along_axis(probabilities, top, axis=1), 6)
    return top.tolist(), scores.tolist()


class CloudService:
    """State of one service process: database, model registry, batcher, metrics, MQTT bridge."""

    def __init__(
        self, config: CloudConfig, engine: Engine, *, admin_token: str | None = None, viewer_token: str | None = None
    ) -> None:
        self.config = config
        self.engine = engine
        self.admin_token = admin_token
        self.viewer_token = viewer_token
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
        self._auth_cache: dict[str, tuple[DeviceInfo, float]] = {}
        self._background: list[asyncio.Task] = []
        self._mqtt_tasks: set[asyncio.Task] = set()
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
            self.registry.load(active[1], allow_encoder_change=True)
        current = self.registry.current
        self.metrics.set_model(current.version, current.classifier.kind)

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

    def swap_model(self, path: str, *, allow_encoder_change: bool = False):
        """Load ``path`` and make it the active model here and, through the database, on every replica."""
        model = self.registry.load(path, allow_encoder_change=allow_encoder_change)
        record_model(self.engine, model, activate=True)
        self.metrics.set_model(model.version, model.classifier.kind)
        freeze_long_lived_objects()
        return model

    # ---- auth -------------------------------------------------------------------------------------------
    def _token_matches(self, token: str, expected: str | None) -> bool:
        return expected is not None and hmac.compare_digest(token.encode(), expected.encode())

    async def authenticate(self, token: str | None) -> Principal:
        """The caller behind a bearer token; raises a 401 :class:`APIError` for a missing, unknown or revoked key."""
        if not token:
            raise APIError(401, "unauthorized", "missing credentials: send `Authorization: Bearer <device key or token>`",
                           headers={"WWW-Authenticate": "Bearer"})
        if self._token_matches(token, self.admin_token):
            return Principal("admin")
        if self._token_matches(token, self.viewer_token):
            return Principal("viewer")
        digest = hash_key(token)
        cached = self._auth_cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            device = cached[0]
        else:
            device = await anyio.to_thread.run_sync(find_device_by_key, self.engine, token)
            if device is None:
                raise APIError(401, "unauthorized", "unknown key: register the device with `tinyact cloud device add`",
                               headers={"WWW-Authenticate": "Bearer"})
            if self.config.auth_cache_s > 0:  # off by default: a rotated or revoked key must die at once everywhere
                if len(self._auth_cache) > 10_000:
                    self._auth_cache.clear()
                self._auth_cache[digest] = (device, time.monotonic() + self.config.auth_cache_s)
        if device.revoked_at is not None:
            raise APIError(401, "revoked", f"the key of device {device.name!r} was revoked; ask the operator for a new one",
                           headers={"WWW-Authenticate": "Bearer"})
        return Principal("device", device)

    def check_rate(self, device: DeviceInfo) -> None:
        allowed, wait = self.rate_limiter.allow(device.name)
        if not allowed:
            self.metrics.rejects.labels("rate_limited").inc()
            raise APIError(429, "rate_limited",
                           f"device {device.name!r} is over {self.config.rate_limit_per_s:g} requests/s; retry later",
                           headers={"Retry-After": str(max(1, int(np.ceil(wait))))})

    # ---- clips ------------------------------------------------------------------------------------------
    def decode_clips(self, clips: list[ClipIn], where: str = "clips", device: str | None = None,
                     model: LoadedModel | None = None) -> tuple[np.ndarray, list[ClipIn]]:
        """Check every clip and decode its latent: (float32 ``[N, D]``, the clips). Raises a 422 :class:`APIError`
        naming the first bad clip (a clip id twice, a time stamp before 2000 or in the future, a latent of the
        wrong size, NaN/Inf or a value beyond ±:data:`MAX_LATENT_ABS`), or a 409 ``encoder_mismatch`` for a clip
        made by another encoder than the one ``model`` (default: the active one) was fitted on; nothing is stored
        then. Clips without ``encoder_hash`` (older edges) are accepted and counted."""
        model = model or self.registry.current
        if model is None:
            raise APIError(503, "no_model", "no classifier is loaded yet: an admin must POST /v1/admin/model",
                           headers={"Retry-After": "5"})
        self.check_encoder(model, clips, where)
        latest = datetime.now(UTC) + timedelta(seconds=self.config.max_future_s)
        dim = model.latent_dim
        unique: dict[uuid.UUID, ClipIn] = {}
        for index, clip in enumerate(clips):
            if clip.clip_id in unique:
                raise APIError(422, "duplicate_clip_id",
                               f"{_at(where, index)}.clip_id {clip.clip_id} appears twice in this request: "
                               "every clip needs its own id")
            unique[clip.clip_id] = clip
        rows = {clip_id: row for row, clip_id in enumerate(unique)}
        out = np.empty((len(unique), dim), np.float32)  # [U, D]
        for index, clip in enumerate(clips):
            if clip.captured_at.tzinfo is None or clip.captured_at.utcoffset() is None:
                raise APIError(422, "naive_timestamp",
                               f"{_at(where, index)}.captured_at has no time zone: send ISO 8601 with Z or ±HH:MM")
            if clip.captured_at < EARLIEST_CAPTURE:
                raise APIError(
                    422, "past_timestamp",
                    f"{_at(where, index)}.captured_at {clip.captured_at.isoformat()} is before "
                    f"{EARLIEST_CAPTURE:%Y-%m-%d}: check the device's clock (NTP)",
                )
            if clip.captured_at > latest:
                raise APIError(
                    422, "future_timestamp",
                    f"{_at(where, index)}.captured_at {clip.captured_at.isoformat()} is more than "
                    f"{self.config.max_future_s:g} s ahead of the server's clock: check the device's clock (NTP)",
                )
            latent = clip.latent
            if isinstance(latent, EncodedLatent) and latent.dtype != "int8":
                # Fast path for the edge's default encodings: base64 -> bytes -> one cast into the batch row;
                # NaN/Inf are checked once for the whole batch below.
                try:
                    raw = binascii.a2b_base64(latent.data, strict_mode=True)
                except (binascii.Error, ValueError):
                    raw = None
                itemsize = 2 if latent.dtype == "float16" else 4
                if raw is not None and len(raw) == dim * itemsize:
                    out[rows[clip.clip_id]] = np.frombuffer(raw, "<f2" if itemsize == 2 else "<f4")
                    continue
            try:
                vector = decode_latent(latent)  # the general path, with its precise error messages
            except WireFormatError as error:
                raise APIError(422, "bad_latent", f"{_at(where, index)}.latent: {error}") from None
            if vector.size != dim:
                raise APIError(
                    422, "wrong_latent_size",
                    f"{_at(where, index)}.latent has {vector.size} values but the loaded model {model.version} "
                    f"expects {dim}: the device's encoder does not match this classifier",
                )
            out[rows[clip.clip_id]] = vector
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            bad = next(i for i, clip in enumerate(clips) if not finite[rows[clip.clip_id]])
            raise APIError(422, "bad_latent", f"{_at(where, bad)}.latent: latent contains NaN or Inf")
        bounded = (np.abs(out) <= MAX_LATENT_ABS).all(axis=1)
        if not bounded.all():
            bad = next(i for i, clip in enumerate(clips) if not bounded[rows[clip.clip_id]])
            raise APIError(422, "bad_latent",
                           f"{_at(where, bad)}.latent: a value is beyond ±{MAX_LATENT_ABS:g}; encoder latents are "
                           "far smaller: check the device's encoder")
        unnamed = sum(1 for clip in clips if clip.encoder_hash is None)
        if unnamed:
            self._count_unnamed(device, unnamed)
        return out, list(unique.values())

    def check_encoder(self, model: LoadedModel, clips: list[ClipIn], where: str = "clips") -> None:
        """409 ``encoder_mismatch`` (naming both hashes and the fix) when a clip's ``encoder_hash`` is not the
        encoder ``model`` was fitted on; ``errors`` lists every such clip. A classifier that recorded no encoder
        hash, and clips that name none, are not checked."""
        expected = model.classifier.encoder_hash
        if not expected:
            return
        bad = [(i, clip) for i, clip in enumerate(clips) if clip.encoder_hash is not None and clip.encoder_hash != expected]
        if not bad:
            return
        index, first = bad[0]
        detail = (
            f"{_at(where, index)} was encoded by encoder {first.encoder_hash}, but the active classifier "
            f"{model.version} was fitted on latents of encoder {expected}: its predictions would be meaningless, so "
            "the clip is refused (nothing stored). Fix one side: activate a classifier fitted on latents of encoder "
            f"{first.encoder_hash} (`tinyact cloud model DIR --allow-encoder-change`), or start the edge with "
            f"encoder {expected} (encoder.checkpoint in its edge.yaml). The edge keeps the clip and sends it once "
            "they match (`tinyact edge outbox drop --reason encoder_mismatch` discards it instead)"
        )
        errors = [{"loc": ["body", *(([where, i]) if where else []), "encoder_hash"], "type": ENCODER_MISMATCH,
                   "msg": f"encoder {clip.encoder_hash}, expected {expected}"} for i, clip in bad[:20]]
        raise APIError(409, ENCODER_MISMATCH, detail, errors=errors)

    def _count_unnamed(self, device: str | None, n: int) -> None:
        """Clips without ``encoder_hash`` (older edges): accepted, counted, and logged once an hour per device."""
        self.metrics.unnamed_encoder.inc(n)
        key = device or "?"
        now = time.monotonic()
        if now - self._unnamed_logged.get(key, -3600.0) >= 3600.0:
            self._unnamed_logged[key] = now
            logger.warning(
                "device %s sends clips without encoder_hash (an older edge): accepted, but the cloud cannot check "
                "that they come from the encoder the classifier was fitted on; update the edge "
                "(counted in tinyact_clips_without_encoder_hash_total; logged once an hour per device)", key)

    async def process_clips(self, device: DeviceInfo, clips: list[ClipIn], where: str = "clips") -> tuple[list[dict], int]:
        """Validate, classify and store ``clips`` of ``device``: (one result per clip in order, as
        :func:`stored_to_dict` dicts; how many were stored now)."""
        with self.batcher.ticket() as ticket:
            checked = self.registry.current
            latents, unique = self.decode_clips(clips, where, device.name, checked)
            try:
                probabilities, model = await self.batcher.classify(latents, ticket)
            except NoModelError:
                raise APIError(503, "no_model", "no classifier is loaded", headers={"Retry-After": "5"}) from None
            except ClassifierMismatchError as error:  # swapped to a model of another latent size mid-request
                raise APIError(409, "model_changed", f"the model changed while classifying: {error}; retry") from None
            if checked is not None and model.classifier.encoder_hash != checked.classifier.encoder_hash:
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
                raise APIError(503, "database_unavailable", "the database is unavailable; retry later",
                               headers={"Retry-After": "5"}) from None
        labels = model.label_names
        rows = []
        for clip, indices, scores in zip(unique, *top_k(probabilities), strict=True):  # best first
            top5 = [{"label": labels[j], "score": score} for j, score in zip(indices, scores, strict=True)]
            rows.append(NewPrediction(clip.clip_id, clip.camera_id, clip.captured_at, top5[0]["label"],
                                      top5[0]["score"], top5, model.version))
        try:
            stored, new_ids = await self.writer.store(device.id, device.name, rows)
        except CameraLimitError as error:  # a race with another request adding cameras
            raise self._camera_limit_error(device, error) from None
        except SQLAlchemyError as error:
            logger.error("storing %d predictions failed: %s", len(rows), error)
            raise APIError(503, "database_unavailable", "the database is unavailable; retry later",
                           headers={"Retry-After": "5"}) from None
        self.metrics.clips.labels(model.version).inc(len(new_ids))
        if len(rows) > len(new_ids):
            self.metrics.duplicates.inc(len(rows) - len(new_ids))
        results = [stored_to_dict(stored[clip.clip_id]) for clip in clips]
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

    def _publish_results(self, results: list[StoredPrediction]) -> None:
        assert self.mqtt is not None
        for result in results:
            ok = self.mqtt.publish(
                mqtt_result_topic(result.device, result.camera), to_json(stored_to_dict(result)), retain=True
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
            self.mqtt.publish(f"tinyact/{device}/{camera}/error", json.dumps(body))

    # ---- health -----------------------------------------------------------------------------------------
    def database_ok(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False


def _at(where: str, index: int) -> str:
    return f"{where}[{index}]" if where else "clip"


def _clip_id_of(payload: bytes) -> str | None:
    """The clip id of a message that failed later checks (for the error reply), if it has one."""
    try:
        value = json.loads(payload).get("clip_id")
        return str(value) if isinstance(value, str) else None
    except Exception:
        return None
