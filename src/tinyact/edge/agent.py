"""The edge agent: round-robin capture, one encoder batch per round, durable delivery, results back.

:class:`EdgeAgent` runs one device. It is put together from one part per concern, each in its own module:

* :mod:`tinyact.edge.capture`: the schedule; each round grabs one clip per camera, encodes them as ONE batch
  and puts them in the outbox (:mod:`tinyact.edge.outbox`) in one transaction, before any send;
* :mod:`tinyact.edge.delivery`: the sender thread; outbox -> transport (:mod:`tinyact.edge.transports`),
  results back, retries with backoff;
* :mod:`tinyact.edge.hold`: clips held while the cloud's classifier expects another encoder's latents;
* this module: start, stop, the status (``status.json``, the page, ``tinyact edge status``).

Frames never leave this process: only the wire fields of :class:`tinyact.wire.ClipIn` are stored and sent;
every clip names the encoder that made it (``encoder_hash``). Every loss path has a counter and a log line: a
camera that fails (``cameras[].failures``), a round whose encoding failed (``encode_failures``,
``lost_encode``), the outbox bound (``dropped``), a clip the cloud refused for good (``rejected``), held clips
the operator dropped (``discarded``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import numpy as np

from tinyact.edge.capture import CaptureRounds
from tinyact.edge.delivery import Delivery
from tinyact.edge.hold import EncoderHold
from tinyact.edge.streams import StreamCamera
from tinyact.models.allocator import allocator_name
from tinyact.paths import atomic_write_bytes

logger = logging.getLogger(__name__)


class EdgeAgent(CaptureRounds, Delivery, EncoderHold):
    """Runs one edge device. ``start()`` starts the capture schedule and the sender in background threads;
    ``run_round()`` does one round now (tests, benchmarks); ``status()`` says how things stand.

    ``encoder``, ``transport``, ``store`` and ``cameras`` can be passed in (tests, the demo, benchmarks);
    by default they are built from ``cfg``.
    """

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

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def run_forever(self) -> None:
        """``start()``, then wait until SIGINT/SIGTERM (``tinyact edge run``)."""
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

    def write_status(self, running: bool | None = None) -> None:
        """Write :meth:`status` to ``<data_dir>/status.json`` (atomically) for ``tinyact edge status``."""
        with self._status_lock:
            self._last_status_write = time.time()
            try:
                status = self.status()
                if running is not None:
                    status["running"] = running
                atomic_write_bytes(self.cfg.status_path, json.dumps(status, indent=1, default=str).encode())
            except OSError as error:
                logger.warning("could not write %s: %s", self.cfg.status_path, error)
