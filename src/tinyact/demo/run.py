"""The live part of the demo, in one process: cloud service, registered device, edge agent, cameras, pages.

:func:`run_demo` prepares (:mod:`tinyact.demo.prepare`), starts the cloud (uvicorn in a thread on a free
port) and the edge agent with its page, draws the live table for ``duration_s``, flushes the outbox and writes
``summary.json``.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from tinyact.demo.config import DEMO_DEVICE, DemoConfig
from tinyact.demo.live import LiveState, live_table, read_clips
from tinyact.demo.prepare import Prepared, prepare, with_encoder_input_size
from tinyact.demo.summary import summarise, write_live_records
from tinyact.paths import atomic_write_text

if TYPE_CHECKING:
    from rich.console import Console

    from tinyact.edge.agent import EdgeAgent
    from tinyact.edge.config import EdgeConfig
    from tinyact.edge.simulate import RecordingCamera
    from tinyact.edge.sources import Camera

logger = logging.getLogger(__name__)


def _fresh_databases(out: Path) -> Path:
    """Delete the previous run's databases (the numbers of summary.json are this run's); returns the edge folder."""
    edge_dir = out / "edge"
    for path in (out / "cloud.db", edge_dir / "edge.db"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    edge_dir.mkdir(parents=True, exist_ok=True)
    return edge_dir


def _write_secret(path: Path, secret: str) -> Path:
    """Write ``secret`` to ``path`` readable by the owner only; returns ``path``."""
    path.write_text(secret)
    path.chmod(0o600)
    return path


def _edge_config(cfg: DemoConfig, ready: Prepared, cloud_url: str, key_file: Path, token_file: Path,
                 edge_dir: Path) -> EdgeConfig:
    """The edge agent's config: one camera per playlist, the prepared encoder, HTTP to the demo's cloud."""
    from tinyact.edge.config import (
        CameraConfig,
        EdgeConfig,
        EncoderConfig,
        ScheduleConfig,
        TransportConfig,
        WebConfig,
    )

    return EdgeConfig(
        device_id=DEMO_DEVICE, cloud_url=cloud_url, device_key_file=key_file,
        encoder=EncoderConfig(checkpoint=ready.checkpoint, backend=cfg.backend),
        cameras=[CameraConfig(id=f"cam-{k + 1}", source=str(p)) for k, p in enumerate(ready.playlists)],
        schedule=ScheduleConfig(interval_s=cfg.interval_s, frames_per_clip=16, capture_fps=cfg.capture_fps),
        transport=TransportConfig(wire_dtype=cfg.wire_dtype, results_poll_s=5.0, retry_max_s=5.0),
        web=WebConfig(enabled=False, token_file=token_file),
        data_dir=edge_dir,
    )


def _recording_cameras(edge_cfg: EdgeConfig) -> dict[str, RecordingCamera]:
    """One file camera per configured playlist, wrapped so it records which action it showed when."""
    from tinyact.edge.simulate import Playlist, RecordingCamera
    from tinyact.edge.sources import FileCamera

    return {c.id: RecordingCamera(FileCamera(c.id, c.source), Playlist.load(c.source)) for c in edge_cfg.cameras}


def _as_cameras(cameras: dict[str, RecordingCamera]) -> list[Camera]:
    """The recording cameras as the agent takes them: each wraps a FileCamera and hands on everything but
    ``grab`` (which it records) to it, so it is a :class:`~tinyact.edge.sources.Camera` by behaviour."""
    return cast("list[Camera]", list(cameras.values()))


def _watch(agent: EdgeAgent, cameras: dict[str, RecordingCamera], cfg: DemoConfig, live: bool,
           draw: bool) -> LiveState:
    """Refresh the live state for ``cfg.duration_s``.

    Args:
        agent: The running edge agent.
        cameras: Its recording cameras (they know the truth).
        cfg: The demo's settings (``duration_s``).
        live: Show progress at all.
        draw: Draw the live table (a terminal); else, with ``live``, log a line every 10 s.

    Returns:
        The last state read.
    """
    from rich.live import Live

    from tinyact.console import console

    state = LiveState()

    def refresh() -> None:
        state.rows = read_clips(agent.store, cameras)
        state.counts = agent.store.counts()
        state.now_on_screen = {cid: cam.now_label() for cid, cam in cameras.items()}
        state.bytes_per_clip = agent.status().get("transport", {}).get("bytes_per_clip")

    run_start = time.monotonic()
    view: AbstractContextManager[Any] = (
        Live(live_table(state, 0, cfg.duration_s), console=console, refresh_per_second=2, auto_refresh=False,
             transient=False) if draw else nullcontext())
    with view as shown:
        last_log = 0.0
        while (elapsed := time.monotonic() - run_start) < cfg.duration_s:
            time.sleep(min(0.5, cfg.duration_s - elapsed))
            refresh()
            if draw:
                shown.update(live_table(state, time.monotonic() - run_start, cfg.duration_s), refresh=True)
            elif live and elapsed - last_log >= 10:
                last_log = elapsed
                logger.info("demo: %3.0f/%.0f s: %d captured, %d delivered, %d with a result", elapsed,
                            cfg.duration_s, state.counts.get("captured", 0), state.counts.get("delivered", 0),
                            sum(r.label is not None for r in state.rows))
    return state


def _h264_bytes_per_clip(cameras: dict[str, RecordingCamera], fps: float) -> float | None:
    """Mean H.264 size of the first clip of each camera (the same frames the encoder saw), for comparison."""
    from tinyact.edge.simulate import h264_bytes

    samples = [c.first_clip for c in cameras.values() if c.first_clip is not None]
    return float(np.mean([h264_bytes(clip, fps) for clip in samples])) if samples else None


def _run_facts(cfg: DemoConfig, ready: Prepared, h264: float | None) -> dict[str, Any]:
    """The settings and artefacts of this run, for summary.json next to its numbers."""
    scratch = {"preset": cfg.encoder_preset, "epochs": cfg.encoder_epochs} if cfg.encoder == "scratch" else {}
    return {
        "h264_bytes_per_clip": round(h264, 1) if h264 else None,
        "h264_note": "the same 16 frames at the encoder's input size as H.264 (crf 23), the first clip per camera",
        "wire_dtype": cfg.wire_dtype,
        "encoder": {"spec": cfg.encoder, "checkpoint": str(ready.checkpoint), "hash": ready.encoder_hash,
                    "backend": cfg.backend, "size": cfg.clip_size, "finetuned": ready.finetuned, **scratch},
        "classifier": {"kind": cfg.classifier, "folder": str(ready.classifier_dir),
                       "test_metrics": {k: v for k, v in ready.classifier_metrics.items() if isinstance(v, (int, float))}},
        "interval_s": cfg.interval_s,
        "duration_s": cfg.duration_s,
    }


def run_demo(cfg: DemoConfig, *, live: bool = True, serve: bool = False,
             on_ready: Callable[[dict], None] | None = None,
             on_summary: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run the demo and return the summary (also written to ``cfg.out/summary.json``).

    Args:
        cfg: The demo's settings.
        live: Draw the per-camera table while it runs.
        serve: After the summary, keep the agent, the cloud and both pages running until Ctrl-C.
        on_ready: Called with the URLs (and tokens) once everything is up.
        on_summary: Called with the summary, before serving.

    Returns:
        The summary: delivery counts, accuracy, bytes, latency, the encoder and classifier, URLs, step times.
    """
    from tinyact.cloud.server import serve_in_background
    from tinyact.console import console, progress_enabled
    from tinyact.edge.agent import EdgeAgent
    from tinyact.edge.web import create_edge_app, serve_edge_app

    started = time.perf_counter()
    cfg = with_encoder_input_size(cfg)  # the encoder decides the clip size
    cfg.out.mkdir(parents=True, exist_ok=True)
    cfg.save(cfg.out)
    ready = prepare(cfg)
    steps = ready.steps
    edge_dir = _fresh_databases(cfg.out)
    admin_token, viewer_token, edge_token = (secrets.token_urlsafe(24) for _ in range(3))
    summary: dict[str, Any] = {}
    with ExitStack() as stack:
        t0 = time.perf_counter()
        logger.info("demo: starting the cloud service, the edge agent and its page")
        cloud = stack.enter_context(serve_in_background(
            ready.classifier_dir, cfg.out / "cloud.db", admin_token=admin_token, viewer_token=viewer_token))
        key_file = _write_secret(edge_dir / "device.key", cloud.add_device(DEMO_DEVICE))
        token_file = _write_secret(edge_dir / "web.token", edge_token)
        edge_cfg = _edge_config(cfg, ready, cloud.url, key_file, token_file, edge_dir)
        edge_cfg.save(edge_dir, "edge.yaml")
        cameras = _recording_cameras(edge_cfg)
        agent = EdgeAgent(edge_cfg, cameras=_as_cameras(cameras))
        current = {"agent": agent}  # --serve starts a second agent after the summary; the page follows it
        web_app = create_edge_app(lambda: current["agent"].status(), agent.store, edge_cfg.snapshot_dir, edge_token)
        edge_url, stop_web = serve_edge_app(web_app)
        stack.callback(stop_web)
        # The token is shown next to the address, never inside it (URLs end up in history and logs).
        urls = {"edge": f"{edge_url}/", "edge_token": edge_token, "cloud_dashboard": f"{cloud.url}/",
                "cloud_viewer_token": viewer_token, "cloud_api_docs": f"{cloud.url}/docs"}
        logger.info("demo: cloud at %s, edge page at %s", cloud.url, edge_url)
        agent.start()
        stack.callback(agent.stop)
        steps["start_services"] = round(time.perf_counter() - t0, 1)
        if on_ready:
            on_ready(urls)

        t0 = time.perf_counter()
        draw = live and progress_enabled()
        state = _watch(agent, cameras, cfg, live, draw)
        steps["run"] = round(time.perf_counter() - t0, 1)
        # Stop capturing, then deliver what is still in the outbox and read any result not yet back (before
        # the transport closes: with an already empty outbox nothing would reopen it).
        t0 = time.perf_counter()
        flushed, _ = agent.finish(timeout=60)
        steps["flush"] = round(time.perf_counter() - t0, 1)
        transport = agent.status().get("transport", {})
        state.rows = read_clips(agent.store, cameras)
        playlists = {cid: Path(c.source) for cid, c in zip(cameras, edge_cfg.cameras, strict=True)}
        summary = summarise(state.rows, agent.store.counts(), cloud.db_url,
                            int(transport.get("bytes_sent") or agent.bytes_sent), int(agent.clips_sent), playlists)
        if live and not draw:
            console.print(live_table(state, cfg.duration_s, cfg.duration_s))
        summary.update(_run_facts(cfg, ready, _h264_bytes_per_clip(cameras, cfg.capture_fps)))
        summary["files"] = write_live_records(state.rows, list(ready.manifest.label_names), cfg.out)
        summary.update({"flushed": flushed, "urls": urls, "steps_s": steps,
                        "elapsed_s": round(time.perf_counter() - started, 1)})
        atomic_write_text(cfg.out / "summary.json", json.dumps(summary, indent=2, default=str))
        if on_summary:
            on_summary(summary)
        if serve:  # capture again (a fresh agent on the same database) while the pages are open
            current["agent"] = EdgeAgent(edge_cfg, cameras=_as_cameras(_recording_cameras(edge_cfg)))
            current["agent"].start()
            stack.callback(current["agent"].stop)
            _wait_for_interrupt(console, urls)
    return summary


def _wait_for_interrupt(console: Console, urls: dict[str, str]) -> None:
    """Block until Ctrl-C or SIGTERM (then the caller's cleanup stops the agent, the pages and the cloud)."""
    import signal

    console.print(f"serving: edge page {urls['edge']} (token {urls['edge_token']})  ·  cloud dashboard {urls['cloud_dashboard']} "
                  f"(viewer token {urls['cloud_viewer_token']})  ·  Ctrl-C to stop")
    done = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: done.set())
    try:
        while not done.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("stopping")
