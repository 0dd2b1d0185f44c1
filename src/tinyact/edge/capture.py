"""Capture rounds: every ``schedule.interval_s``, one clip per camera that is up, encoded as ONE batch.

Data path of one round::

    cameras (FileCamera / StreamCamera, grabbed in parallel threads, each with a timeout)
       │ one clip per camera that is up: uint8 [T, 3, H, W], its snapshot JPEG -> snapshots/<camera>.jpg
       ▼
    encoder.encode([K, T, 3, H, W])          ONE call for the K clips of the round
       │ latents [K, D] -> wire encoding (float16 default, int8 + scale, float32), a fresh uuid4 clip_id each
       ▼
    EdgeStore.enqueue(...)                   captures + outbox rows in one SQLite transaction, BEFORE any send

A camera that fails is counted (``cameras[].failures``) and retried later with backoff; a round whose encoding
failed is counted (``encode_failures``, ``lost_encode``); a round longer than the interval is counted
(``overruns``) and logged with its slowest cameras.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import wait as wait_futures
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np

from tinyact.edge.agent_base import AgentBase
from tinyact.edge.files import enforce_retention, write_jpeg
from tinyact.edge.sources import CameraError, Grab
from tinyact.wire import ENCODER_MISMATCH, ClipIn, encode_latent

logger = logging.getLogger(__name__)


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


def _stamp_ms(grab_ms: dict[str, float], camera_id: str, start: float, _done: object = None) -> None:
    """Record when ``camera_id``'s grab ended, in ms since ``start`` (the first time only)."""
    grab_ms.setdefault(camera_id, round((time.perf_counter() - start) * 1000, 1))


class CaptureRounds(AgentBase):
    """The agent's part that runs the schedule: grab, encode one batch, queue in the outbox, keep snapshots."""

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
                future.add_done_callback(partial(_stamp_ms, grab_ms, camera.camera_id, start))
            done, _ = wait_futures(futures, timeout=sched.capture_timeout_s + 1.0)  # stream grabs time out first
            for camera in futures.values():  # stalled: still grabbing now
                _stamp_ms(grab_ms, camera.camera_id, start)
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
