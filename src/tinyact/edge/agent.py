"""The edge agent: round-robin capture, one encoder batch per round, durable delivery, results back.

Data path of one round (every ``schedule.interval_s``)::

    cameras (FileCamera / StreamCamera, grabbed in parallel threads, each with a timeout)
       │ one clip per camera that is up: uint8 [T, 3, H, W], its snapshot JPEG -> snapshots/<camera>.jpg
       ▼
    encoder.encode([K, T, 3, H, W])          ONE call for the K clips of the round
       │ latents [K, D] -> wire encoding (float16 default, int8 + scale, float32), a fresh uuid4 clip_id each
       ▼
    EdgeStore.enqueue(...)                   captures + outbox rows in one SQLite transaction, BEFORE any send
       ▼
    sender thread: outbox (due, oldest first) -> transport (HTTP POST /v1/clips | MQTT QoS 1)
       │ 200 -> results stored, clips delivered;  failure -> retry with exponential backoff + jitter
       ▼                                        (the cloud is idempotent by clip_id: a retry is never a duplicate)
    results: POST response, MQTT result topic, and GET /v1/results?since=cursor after an outage

Frames never leave this process: only the wire fields of :class:`tinyact.wire.ClipIn` are stored and sent;
every clip names the encoder that made it (``encoder_hash``). Every loss path has a counter and a log line: a
camera that fails (``cameras[].failures``), a round whose encoding failed (``encode_failures``,
``lost_encode``), the outbox bound (``dropped``), a clip the cloud refused for good (``rejected``), held clips
the operator dropped (``discarded``).

Encoder mismatch: when the cloud's classifier was fitted on another encoder's latents (``GET /v1/model``, or
the cloud's 409 / MQTT ``encoder_mismatch`` refusal), the clips are *held* in the outbox, not rejected: new
clips go in held, nothing of this encoder is sent, ``GET /v1/model`` is read again every
``transport.model_check_s`` (60 s), and the held clips of the encoder the cloud's classifier matches are sent
as soon as it does. The status (``encoder_mismatch``), the page and ``tinyact edge status`` show it;
``tinyact edge outbox drop --reason encoder_mismatch`` gives up on the held clips.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tinyact.edge.config import EdgeConfig
from tinyact.edge.encoder import EdgeEncoder, load_encoder
from tinyact.edge.sources import Camera, CameraError, Grab, StreamCamera, open_camera
from tinyact.edge.store import EdgeStore
from tinyact.errors import ConfigError
from tinyact.models.allocator import allocator_name
from tinyact.wire import ENCODER_MISMATCH, ClipIn, ModelInfo, encode_latent

logger = logging.getLogger(__name__)

RESULTS_PAGE = 1000


def write_jpeg(path: Path, rgb: np.ndarray, quality: int = 80) -> int:
    """Write an RGB ``[h, w, 3]`` image atomically (readers never see half a file); returns its size."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(rgb).save(tmp, format="JPEG", quality=quality)
    tmp.replace(path)
    return path.stat().st_size


def enforce_retention(folder: Path, max_age_s: float, max_bytes: float, now: float | None = None) -> tuple[int, int]:
    """Delete files under ``folder`` older than ``max_age_s``, then the oldest until the rest take at most
    ``max_bytes``. Returns ``(files deleted, bytes kept)``."""
    now = time.time() if now is None else now
    files = []
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            files.append((st.st_mtime, st.st_size, path))
    files.sort()
    deleted = 0
    total = sum(size for _, size, _ in files)
    for mtime, size, path in files:
        if now - mtime <= max_age_s and total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        deleted += 1
    return deleted, total


MISMATCH_FIX = ("activate a classifier fitted on this encoder's latents on the cloud (`tinyact cloud model DIR "
                "--allow-encoder-change`), or set encoder.checkpoint to the encoder the cloud's classifier was "
                "fitted on; held clips are sent once they match, or give up on them with `tinyact edge outbox drop "
                "--reason encoder_mismatch`")


def mismatch_problem(info: ModelInfo, edge_encoder_hash: str) -> str:
    """The sentence for an edge whose encoder is not the one the cloud's classifier was fitted on."""
    return (f"the cloud's classifier {info.version} was fitted on latents of encoder {info.encoder_hash}, but this "
            f"device runs encoder {edge_encoder_hash}: the cloud refuses its clips (encoder_mismatch), so they are "
            f"held in the outbox. Fix: {MISMATCH_FIX}")


def slowest_cameras(report: dict[str, Any], n: int = 2) -> str:
    """What made a round long, from a :meth:`EdgeAgent.run_round` report: ``"slowest camera(s): cam-3 7.0 s,
    cam-1 0.4 s; encode 80 ms"``."""
    grab_ms = report.get("grab_ms") or {}
    parts = []
    if grab_ms:
        worst = sorted(grab_ms.items(), key=lambda item: -item[1])[:n]
        parts.append("slowest camera(s): " + ", ".join(f"{cid} {ms / 1000:.1f} s" for cid, ms in worst))
    if report.get("encode_ms") is not None:
        parts.append(f"encode {report['encode_ms']:.0f} ms")
    return "; ".join(parts) or "no camera was grabbed"


class EdgeAgent:
    """Runs one edge device. ``start()`` starts the capture schedule and the sender in background threads;
    ``run_round()`` does one round now (tests, benchmarks); ``status()`` says how things stand.

    ``encoder``, ``transport``, ``store`` and ``cameras`` can be passed in (tests, the demo, benchmarks);
    by default they are built from ``cfg``.
    """

    def __init__(self, cfg: EdgeConfig, *, encoder: EdgeEncoder | None = None, transport: Any = None,
                 store: EdgeStore | None = None, cameras: list[Camera] | None = None) -> None:
        self.cfg = cfg
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = store or EdgeStore(cfg.db_path)
        self.encoder = encoder
        self.transport = transport
        self._owned: list[Any] = []  # transports this agent created (and closes); injected ones stay open
        self.cameras = cameras if cameras is not None else [
            open_camera(c, cfg.schedule.capture_timeout_s) for c in cfg.cameras if c.enabled]
        self.snapshot_dir = cfg.snapshot_dir
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(len(self.cameras), 8)), thread_name_prefix="grab")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._poller: Any = None
        self._round_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self.started_at: float | None = None
        self.rounds = 0
        self.overruns = 0
        self.encode_failures = 0
        self.lost_encode = 0
        self.last_round: dict[str, Any] = {}
        self.last_send_error: str | None = None
        self.model_problem: str | None = None
        self.cloud_model: ModelInfo | None = None  # the cloud's classifier as last read (GET /v1/model)
        self.encoder_hold: dict[str, Any] | None = None  # set while the cloud expects another encoder's latents
        self._last_model_check = 0.0  # time.monotonic() of the last GET /v1/model
        self._model_read_ok = False  # whether the last GET /v1/model answered
        self._probe: tuple[str, str | None] | None = None  # a held clip sent to learn whether the cloud takes them
        self.last_send_ok_at: float | None = None
        self.bytes_sent = 0
        self.clips_sent = 0
        self._last_retention = 0.0
        self._last_poll = 0.0
        self._last_status_write = 0.0

    # ---- life cycle ----------------------------------------------------------------------------------------
    def _ensure_encoder(self) -> EdgeEncoder:
        if self.encoder is None:
            encoder = load_encoder(self.cfg.encoder)
            wanted = self.cfg.schedule.frames_per_clip
            if wanted is not None and wanted != encoder.num_frames:
                raise ConfigError(f"schedule.frames_per_clip is {wanted} but the encoder takes {encoder.num_frames}-frame "
                                  "clips; leave frames_per_clip unset to use the encoder's")
            self.encoder = encoder
        return self.encoder

    def _ensure_transport(self) -> Any:
        if self.transport is None:
            from tinyact.edge.transports import HttpTransport, MqttTransport, outbox_camera

            t = self.cfg.transport
            if t.kind == "mqtt":
                username, password = self.cfg.mqtt_credentials()
                self.transport = MqttTransport(
                    t.mqtt_url, self.cfg.device_id, self.store.record_results,
                    pending_camera=lambda clip_id: outbox_camera(self.store, clip_id), on_rejected=self.store.reject,
                    on_held=self.hold_clips, username=username, password=password)
            else:
                self.transport = HttpTransport(self.cfg.cloud_url, self.cfg.device_key(), gzip_mode=t.gzip,
                                               timeout_s=t.timeout_s)
            self._owned.append(self.transport)
        if self._poller is None:
            from tinyact.edge.transports import HttpTransport

            if isinstance(self.transport, HttpTransport) or hasattr(self.transport, "fetch_results"):
                self._poller = self.transport
            else:  # MQTT: read missed results over HTTP when the device has a key
                try:
                    self._poller = HttpTransport(self.cfg.cloud_url, self.cfg.device_key(), timeout_s=self.cfg.transport.timeout_s)
                    self._owned.append(self._poller)
                except Exception:  # no key: MQTT's retained results and republishing cover it
                    self._poller = None
        return self.transport

    def check_cloud_model(self) -> str | None:
        """Compare the cloud's classifier with this encoder (``GET /v1/model``): a different latent size means
        every clip would be refused, a different encoder hash that the cloud refuses them (409
        ``encoder_mismatch``: the predictions would be meaningless), and the clips are then held in the outbox.
        When the cloud's classifier matches the encoder of held clips, they are released (sent next). Returns
        the problem (also logged and shown in the status), or ``None``; when the model cannot be read now, the
        last known problem."""
        self._ensure_transport()
        poller = self._poller
        self._last_model_check = time.monotonic()
        info = poller.model_info() if poller is not None and hasattr(poller, "model_info") else None
        encoder = self._ensure_encoder()
        self._model_read_ok = info is not None
        if info is None:
            return self.model_problem
        self.cloud_model = info
        problem = None
        mismatch = bool(info.encoder_hash and encoder.encoder_hash and info.encoder_hash != encoder.encoder_hash)
        if info.latent_dim != encoder.latent_dim:
            problem = (f"the cloud's classifier {info.version} takes {info.latent_dim}-d latents but this encoder "
                       f"makes {encoder.latent_dim}-d ones: clips will be refused until they match")
        elif mismatch:
            problem = mismatch_problem(info, encoder.encoder_hash)
        if problem and problem != self.model_problem:
            logger.warning("%s", problem)
        self.model_problem = problem
        if mismatch:
            self._enter_hold(problem or "")
        else:
            if self.encoder_hold is not None:
                logger.info("the cloud's classifier %s matches this device's encoder %s again", info.version,
                            encoder.encoder_hash)
            self.encoder_hold = None
        # The cloud's classifier takes latents of info.encoder_hash (any encoder's, when it recorded none).
        released = self.store.release(info.encoder_hash or None)
        if released:
            logger.info("the cloud's classifier %s takes latents of encoder %s: sending %d held clip(s)",
                        info.version, info.encoder_hash or "(any)", released)
            self._wake.set()
        return problem

    def hold_clips(self, reasons: dict[str, str]) -> int:
        """The cloud refused these clips with ``encoder_mismatch``: keep them (and every outbox clip of the same
        encoder) held in the outbox and read the cloud's model at the next chance (then every
        ``transport.model_check_s``); when they are this device's encoder's clips, new clips go in held too.
        Called by the sender (HTTP 409) and by the MQTT transport's thread. Returns how many clips are held."""
        hashes = self.store.outbox_encoders(list(reasons))
        held = self.store.hold(reasons, ENCODER_MISMATCH)
        first = next(iter(reasons.values()), "")
        mine = self.encoder is not None and (self.encoder.encoder_hash in hashes or not any(hashes))
        if mine and self.encoder_hold is None:
            self._enter_hold(first)
            logger.warning("the cloud refused clips of this encoder (%s); %d clip(s) held in the outbox until a "
                           "matching classifier is active (checked every %g s)", first, held,
                           self.cfg.transport.model_check_s)
            self._last_model_check = 0.0  # read GET /v1/model at the next chance: say what the cloud expects
        return held

    def _enter_hold(self, detail: str) -> None:
        if self.encoder_hold is None:
            self.encoder_hold = {"since": datetime.now(UTC).isoformat(), "detail": detail}
        elif detail:
            self.encoder_hold["detail"] = detail

    def recheck_cloud_model(self, force: bool = False) -> bool:
        """While clips are held (or the hold is on), read ``GET /v1/model`` again once ``transport.model_check_s``
        has passed since the last read (``force``: now), releasing the held clips the cloud's classifier now
        takes. Without a readable model (an MQTT device with no key for HTTP, a cloud that does not answer), the
        oldest held clip is sent as a probe: once one is delivered, the held clips of its encoder follow.
        Returns whether a check was made."""
        if not force and time.monotonic() - self._last_model_check < self.cfg.transport.model_check_s:
            return False
        if self.encoder_hold is None and not self.store.held_count():
            return False
        self.check_cloud_model()
        self._last_model_check = time.monotonic()
        if self._model_read_ok:
            self._probe = None
            return True
        if self._probe is not None:  # the last probe: delivered means the cloud takes that encoder's clips now
            clip_id, encoder_hash = self._probe
            if self.store.capture_state(clip_id) == "delivered":
                released = self.store.release(encoder_hash)
                logger.info("the cloud took a held clip of encoder %s: sending its %d other held clip(s)",
                            encoder_hash, released)
                if self.encoder is not None and encoder_hash == self.encoder.encoder_hash:
                    self.encoder_hold = None
                    self.model_problem = None
        own = self.encoder.encoder_hash if self.encoder is not None and self.encoder_hold is not None else None
        self._probe = self.store.release_oldest(own) or self.store.release_oldest(None)
        if self._probe is not None:
            self._wake.set()
        return True

    def start(self) -> None:
        """Load the encoder, connect the transport, start the schedule and the sender threads."""
        self._ensure_encoder()
        self._ensure_transport()
        self.check_cloud_model()
        self._last_model_check = time.monotonic()
        self.started_at = time.time()
        self._stop.clear()
        for camera in self.cameras:
            if isinstance(camera, StreamCamera):
                camera.start()  # its reader thread connects now, so the first round finds it up
        for target, name in ((self._schedule_loop, "edge-schedule"), (self._send_loop, "edge-sender")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        pending = self.store.counts()["pending"]
        # The allocator decides whether large encode buffers are reused or re-mapped every round
        # (tinyact.models.allocator: glibc re-maps them in worker threads such as the schedule thread; jemalloc does not).
        logger.info("edge agent %s started: %d camera(s), every %g s, %s transport, %d clip(s) pending from before, "
                    "%s allocator", self.cfg.device_id, len(self.cameras), self.cfg.schedule.interval_s,
                    self.cfg.transport.kind, pending, allocator_name())

    def stop(self, timeout: float = 30.0, flush_s: float = 5.0) -> None:
        """Stop the threads (a round in progress finishes), give pending clips one last chance to go out (up to
        ``flush_s`` seconds, only if the agent was running), close cameras and the transport; whatever is still
        pending stays in the outbox for the next start."""
        was_running = self.stop_threads(timeout)
        if was_running and flush_s > 0 and self.transport is not None and not self.last_send_error:
            try:
                self.flush(timeout=flush_s)
            except Exception:  # the outbox keeps them; never fail a shutdown over it
                logger.exception("last send before stopping failed")
        for camera in self.cameras:
            camera.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.write_status(running=False)
        for t in self._owned:
            with contextlib.suppress(Exception):
                t.close()
            if t is self.transport:
                self.transport = None
        self._owned.clear()
        self._poller = None

    def stop_threads(self, timeout: float = 30.0) -> bool:
        """Stop the schedule and sender threads (a round in progress finishes); the transport stays open.
        Returns whether they were running."""
        was_running = bool(self._threads)
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self._threads.clear()
        return was_running

    def finish(self, timeout: float = 60.0) -> tuple[bool, int]:
        """Stop capturing, send what is still in the outbox (ignoring backoff, up to ``timeout`` s), read the
        results not yet back, then :meth:`stop`. Returns ``(outbox emptied, results read)``."""
        self.stop_threads()
        try:
            self._ensure_transport()
            flushed = self.flush(timeout=timeout)
            return flushed, self.poll_results()  # before stop(): it closes the transport the poll reads with
        finally:
            self.stop()

    def __enter__(self) -> EdgeAgent:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def run_forever(self) -> None:
        """``start()``, then wait until SIGINT/SIGTERM (``tinyact edge run``)."""
        import signal

        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        try:
            seen = -1
            while not done.wait(1.0):
                if self.rounds != seen and self.rounds:  # one line per round: what a person watching the terminal needs
                    seen = self.rounds
                    s = self.status()
                    c = s["counts"]
                    logger.info("round %d: cameras up %d/%d, captured %d, delivered %d, pending %d, dropped %d, "
                                "encode %s ms%s", s["rounds"], s["cameras_up"], len(s["cameras"]), c["captured"],
                                c["delivered"], c["pending"], c["dropped"], s["encode"]["last_batch_ms"],
                                f"; send error: {s['transport']['last_error']}" if s["transport"]["last_error"] else "")
        finally:
            logger.info("stopping the edge agent")
            self.stop()

    # ---- capture rounds ------------------------------------------------------------------------------------
    def _schedule_loop(self) -> None:
        interval = self.cfg.schedule.interval_s
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.run_round()
            except Exception:  # a bug in one round must not end the schedule
                logger.exception("round failed")
            next_at += interval
            late = time.monotonic() - next_at
            if late > 0:
                self.overruns += 1
                logger.warning("round took %.1f s longer than the %g s interval (%s); starting the next one now",
                               late, interval, slowest_cameras(self.last_round))
                next_at = time.monotonic()
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def run_round(self) -> dict[str, Any]:
        """Capture one clip per camera that is up, encode them as one batch, put them in the outbox.

        Returns ``{"clips", "cameras_failed", "capture_ms", "encode_ms", "dropped"}``."""
        with self._round_lock:
            encoder = self._ensure_encoder()
            sched = self.cfg.schedule
            start = time.perf_counter()
            ready = [c for c in self.cameras if c.health.ready()]
            futures = {self._pool.submit(c.grab, encoder.num_frames, sched.capture_fps, encoder.input_size): c for c in ready}
            grab_ms: dict[str, float] = {}
            for future, camera in futures.items():
                future.add_done_callback(lambda _f, cid=camera.camera_id: grab_ms.setdefault(
                    cid, round((time.perf_counter() - start) * 1000, 1)))
            done, _ = wait_futures(futures, timeout=sched.capture_timeout_s + 1.0)  # stream grabs time out first
            for camera in futures.values():  # stalled: still grabbing now
                grab_ms.setdefault(camera.camera_id, round((time.perf_counter() - start) * 1000, 1))
            grabs: list[Grab] = []
            failed: dict[str, str] = {}
            for future, camera in futures.items():
                if future not in done:
                    reason = f"stalled: no clip within {sched.capture_timeout_s:g} s"
                else:
                    error = future.exception()
                    if error is None:
                        camera.health.ok()
                        grabs.append(future.result())
                        continue
                    reason = str(error) if isinstance(error, CameraError) else f"{type(error).__name__}: {error}"
                delay = camera.health.failed(reason)
                failed[camera.camera_id] = reason
                logger.warning("camera %s is down (%s); next try in %.1f s", camera.camera_id, reason, delay)
            capture_ms = (time.perf_counter() - start) * 1000
            report: dict[str, Any] = {"clips": 0, "cameras_failed": failed, "capture_ms": round(capture_ms, 1),
                                      "grab_ms": dict(grab_ms), "encode_ms": None, "dropped": 0, "at": datetime.now(UTC).isoformat()}
            if grabs:
                report.update(self._encode_and_queue(grabs))
            self.rounds += 1
            self.last_round = report
            if time.time() - self._last_retention > 60:
                self.apply_retention()
            self.write_status()
            return report

    def _encode_and_queue(self, grabs: list[Grab]) -> dict[str, Any]:
        encoder = self._ensure_encoder()
        batch = np.stack([g.frames for g in grabs])  # [K, T, 3, H, W] uint8
        step = self.cfg.encoder.max_batch or len(grabs)
        try:
            # The round's ONE encoder call (or ceil(K / max_batch) calls when memory is bounded).
            parts = [encoder.encode(batch[i : i + step]) for i in range(0, len(grabs), step)]
            latents = np.concatenate(parts)
            if len(parts) > 1:
                encoder.last_ms = sum(encoder.history_ms[-len(parts):])
        except Exception as error:
            self.encode_failures += 1
            self.lost_encode += len(grabs)
            self.store.increment("lost_encode", len(grabs))
            logger.error("encoding %d clip(s) failed (%s: %s); these clips are lost (counted in lost_encode)",
                         len(grabs), type(error).__name__, error)
            return {"clips": 0, "lost": len(grabs)}
        encode_ms = encoder.last_ms or 0.0
        per_clip = encode_ms / len(grabs)
        items = []
        encoder_hash = encoder.encoder_hash or None
        for grab, latent in zip(grabs, latents, strict=True):
            clip_id = str(uuid.uuid4())
            message = ClipIn(clip_id=clip_id, camera_id=grab.camera_id, captured_at=grab.captured_at,
                             encoder_hash=encoder_hash, latent=encode_latent(latent, self.cfg.transport.wire_dtype))
            items.append((clip_id, grab.camera_id, grab.captured_at, per_clip,
                          message.model_dump_json(exclude_none=True)))
        # Written before any send: from here on the clip survives a crash, a restart and a cloud outage. While the
        # cloud's classifier expects another encoder, the clips go in held (nothing is sent to be refused).
        held = ENCODER_MISMATCH if self.encoder_hold is not None else None
        dropped = self.store.enqueue(items, max_pending=self.cfg.outbox.max_pending, encoder_hash=encoder_hash,
                                     held=held)
        self._wake.set()
        for grab, (clip_id, *_rest) in zip(grabs, items, strict=True):
            self._save_snapshot(grab, clip_id)
        return {"clips": len(grabs), "encode_ms": round(encode_ms, 1), "dropped": dropped,
                "clip_ids": [item[0] for item in items]}

    def _save_snapshot(self, grab: Grab, clip_id: str) -> None:
        try:
            write_jpeg(self.snapshot_dir / f"{grab.camera_id}.jpg", grab.snapshot)
            if self.cfg.retention.keep_history:
                stamp = grab.captured_at.strftime("%Y%m%dT%H%M%S")
                write_jpeg(self.snapshot_dir / "history" / grab.camera_id / f"{stamp}_{clip_id}.jpg", grab.snapshot, quality=70)
        except OSError as error:  # a full disk must not stop capture; the page just shows an older picture
            logger.warning("could not write the snapshot of %s: %s", grab.camera_id, error)

    def apply_retention(self) -> None:
        """Delete snapshot history beyond the age and size limits, and capture rows beyond the age limit."""
        r = self.cfg.retention
        self._last_retention = time.time()
        deleted, _ = enforce_retention(self.snapshot_dir / "history", r.max_age_h * 3600, r.max_mb * 1e6)
        pruned = self.store.prune(time.time() - r.max_age_h * 3600)
        if deleted or pruned:
            logger.info("retention: deleted %d snapshot(s) and %d capture row(s)", deleted, pruned)

    # ---- delivery ------------------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.drain_once()
            except Exception:  # keep the sender alive whatever happens; the clips stay in the outbox
                logger.exception("sender failed")
                sent = 0
            if time.time() - self._last_poll > self.cfg.transport.results_poll_s:
                self.poll_results()
            try:
                self.recheck_cloud_model()
            except Exception:
                logger.exception("checking the cloud's model failed")
            if sent:
                continue
            wait = self.store.next_attempt_in()
            wait = min(self.cfg.transport.results_poll_s, self.cfg.transport.model_check_s, wait if wait is not None else float("inf"))
            self._wake.wait(timeout=max(0.05, wait))
            self._wake.clear()

    def drain_once(self) -> int:
        """Send one batch of due outbox clips and apply the outcome; returns the number of clips sent."""
        transport = self._ensure_transport()
        t = self.cfg.transport
        items = self.store.due(t.max_clips_per_request)
        if not items:
            return 0
        outcome = transport.send([item.message for item in items])
        self.bytes_sent += outcome.bytes_sent
        if outcome.results:
            self.store.record_results(outcome.results)
        if outcome.delivered:
            self.store.mark_delivered(outcome.delivered)
            self.clips_sent += len(outcome.delivered)
        if outcome.rejected:
            self.store.reject(outcome.rejected)
        if outcome.held:
            self.hold_clips(outcome.held)
        if outcome.retry:
            if outcome.error:
                delay = self.store.mark_failed(outcome.retry, outcome.error, t.retry_base_s, t.retry_max_s, outcome.retry_after_s)
                if self.last_send_error != outcome.error:
                    logger.warning("sending %d clip(s) failed (%s); retrying in %.1f s (backoff)", len(outcome.retry),
                                   outcome.error, delay)
                self.last_send_error = outcome.error
            else:  # MQTT: published; delivered when the result comes back, republished after ack_timeout_s
                self.store.defer(outcome.retry, t.ack_timeout_s, max_s=8 * t.ack_timeout_s)
                self.clips_sent += len(outcome.retry)
        if outcome.delivered or (outcome.retry and not outcome.error):
            if self.last_send_error:
                logger.info("the cloud is reachable again; sending the backlog")
                self.last_send_error = None
                self._last_poll = 0.0  # read the results feed now: responses may have been lost in the outage
            self.last_send_ok_at = time.time()
        if time.time() - self._last_status_write > 1.0:
            self.write_status()
        return len(items)

    def send_due(self, timeout: float = 30.0) -> int:
        """Send the outbox clips whose backoff has passed until none is due, a send fails or ``timeout`` passes
        (``tinyact edge run --rounds``: a cloud that is down costs one attempt per backoff step, not a busy loop).
        Returns the number of clips sent."""
        deadline = time.monotonic() + timeout
        before = self.clips_sent
        self.recheck_cloud_model()  # held clips: at most one GET /v1/model per model_check_s
        while time.monotonic() < deadline and self.store.due(1):
            self.drain_once()
            if self.last_send_error:  # failed: those clips wait for their next attempt
                break
        return self.clips_sent - before

    def poll_results(self) -> int:
        """Read ``GET /v1/results`` from the stored cursor to the end; returns the number of results."""
        self._last_poll = time.time()
        poller = self._poller
        if poller is None:
            return 0
        import httpx

        total = 0
        cursor = self.store.results_cursor
        try:
            while True:
                page, next_cursor = poller.fetch_results(cursor, RESULTS_PAGE)
                # The feed is per device id: results for clips another data directory captured are not ours.
                mine = self.store.known_clip_ids([str(r.clip_id) for r in page]) if page else set()
                results = [r for r in page if str(r.clip_id) in mine]
                if results:
                    self.store.record_results(results)
                    total += len(results)
                if next_cursor == cursor or not page:
                    break
                cursor = next_cursor
                self.store.results_cursor = cursor
        except (httpx.HTTPError, ValueError) as error:
            logger.debug("results feed not readable now: %s", error)
        return total

    def flush(self, timeout: float = 30.0) -> bool:
        """Send until the outbox is empty, ignoring backoff (shutdown, tests, the demo), or until ``timeout``;
        ``True`` if it emptied. Held clips (encoder mismatch) are not sent and do not count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.store.due(1, now=float("inf")):
                return True
            self.store.make_due()
            self.drain_once()
            if self.last_send_error:
                time.sleep(0.2)
        return not self.store.due(1, now=float("inf"))

    # ---- status --------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Cameras (up/down, last error, last result), counters, encode latency, transport state."""
        counts = self.store.counts()
        counts["lost_encode"] = self.store.counter("lost_encode")
        latest = self.store.latest_per_camera()
        cameras = []
        for camera in self.cameras:
            entry = camera.status()
            entry["last_result"] = latest.get(camera.camera_id)
            entry["snapshot"] = f"{camera.camera_id}.jpg" if (self.snapshot_dir / f"{camera.camera_id}.jpg").exists() else None
            cameras.append(entry)
        encoder = self.encoder
        history = encoder.history_ms if encoder else []
        clips = self.last_round.get("clips") or 0
        return {
            "device_id": self.cfg.device_id,
            "running": bool(self._threads) and not self._stop.is_set(),
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat() if self.started_at else None,
            "updated_at": datetime.now(UTC).isoformat(),
            "interval_s": self.cfg.schedule.interval_s,
            "rounds": self.rounds,
            "overruns": self.overruns,
            "cameras": cameras,
            "cameras_up": sum(1 for c in cameras if c["up"]),
            "counts": counts,
            "encode": {
                "backend": encoder.backend if encoder else self.cfg.encoder.backend,
                "calls": encoder.calls if encoder else 0,
                "last_batch_ms": round(encoder.last_ms, 1) if encoder and encoder.last_ms else None,
                "mean_batch_ms": round(float(np.mean(history)), 1) if history else None,
                "last_per_clip_ms": round(encoder.last_ms / clips, 1) if encoder and encoder.last_ms and clips else None,
                "failures": self.encode_failures,
                "cloud_model_problem": self.model_problem,
            },
            "encoder_mismatch": self.mismatch_status(counts.get("held", 0)),
            "transport": {
                "kind": self.cfg.transport.kind,
                "wire_dtype": self.cfg.transport.wire_dtype,
                "last_error": self.last_send_error,
                "last_ok_at": datetime.fromtimestamp(self.last_send_ok_at, UTC).isoformat() if self.last_send_ok_at else None,
                "bytes_sent": self.bytes_sent,
                "bytes_per_clip": round(self.bytes_sent / self.clips_sent) if self.clips_sent else None,
            },
            "last_round": {k: v for k, v in self.last_round.items() if k != "clip_ids"},
        }

    def mismatch_status(self, held: int) -> dict[str, Any] | None:
        """The encoder-mismatch hold for the status: ``None`` when nothing is held and the cloud matches, else
        ``{held, since, edge_encoder_hash, cloud_encoder_hash, cloud_model_version, detail, next_check_in_s,
        fix}``."""
        if self.encoder_hold is None and not held:
            return None
        hold = self.encoder_hold or {}
        info = self.cloud_model
        wait = self.cfg.transport.model_check_s - (time.monotonic() - self._last_model_check)
        return {
            "held": held,
            "since": hold.get("since"),
            "edge_encoder_hash": self.encoder.encoder_hash if self.encoder else None,
            "cloud_encoder_hash": info.encoder_hash if info else None,
            "cloud_model_version": info.version if info else None,
            "detail": hold.get("detail") or self.model_problem or "clips of another encoder are held in the outbox",
            "next_check_in_s": round(max(0.0, wait), 1),
            "fix": MISMATCH_FIX,
        }

    def write_status(self, running: bool | None = None) -> None:
        """Write :meth:`status` to ``<data_dir>/status.json`` (atomically) for ``tinyact edge status``."""
        with self._status_lock:
            self._last_status_write = time.time()
            try:
                status = self.status()
                if running is not None:
                    status["running"] = running
                tmp = self.cfg.status_path.with_name("status.json.tmp")
                tmp.write_text(json.dumps(status, indent=1, default=str))
                tmp.replace(self.cfg.status_path)
            except OSError as error:
                logger.warning("could not write %s: %s", self.cfg.status_path, error)
