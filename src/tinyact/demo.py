"""``tinyact demo``: the whole TinyAct system on this machine, with embedded defaults and no server to install.

Steps (each reuses what an earlier run left in the data directory, keyed by its settings)::

    synthetic action videos ─► manifest ─► clip cache ─► 3-D autoencoder (brief training) ─► latents
        ─► classifier (grid search) ─► cloud service (SQLite, in-process) + a registered device
        ─► 5 simulated CCTV cameras (looped playlists of held-out test clips, true labels known)
        ─► edge agent (round-robin capture, one encoder batch per round, durable outbox, HTTP)
        ─► live table per camera for ``duration_s`` ─► flush ─► summary.json (+ URLs of both web pages)

Everything runs in this process: the cloud is uvicorn in a thread on a free port, the edge page another.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from tinyact.config import TinyActConfig
from tinyact.data.cache import ClipCache, build_cache
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest, balance
from tinyact.data.synth import SynthConfig, generate
from tinyact.data.video import ClipSampling
from tinyact.errors import TinyActError
from tinyact.paths import data_home

logger = logging.getLogger(__name__)

DEMO_DEVICE = "demo-edge"


class DemoConfig(TinyActConfig):
    """Settings of ``tinyact demo``."""

    data: Path = Field(default_factory=lambda: data_home() / "synth", title="Synthetic dataset folder")
    out: Path = Field(default_factory=lambda: data_home() / "demo", title="Run folder (summary.json, databases)")
    models: Path | None = Field(None, title="Where trained models are kept for reuse", description="default: DATA/models")
    classes: int = Field(10, ge=2, le=12)
    clips_per_class: int = Field(20, ge=3)
    video_size: int = Field(128, ge=32, title="Height of generated videos (px)")
    clip_seconds: tuple[float, float] = Field((2.0, 4.0), title="Shortest and longest generated clip (s)")
    clip_size: int = Field(112, ge=16, title="Clip crop size fed to the encoder (px)")
    seed: int = 0
    # encoder + classifier
    encoder: str = Field(
        "zoo:everyday-64", title="Encoder: zoo:NAME, a model file, or scratch",
        description="zoo:NAME / a model.pt (e.g. a KD student): its input size replaces clip_size; scratch trains "
                    "the paper's autoencoder briefly on the demo's clips (close to chance: it shows the plumbing)")
    encoder_preset: str = Field(
        "fast-motion", title="3-D autoencoder preset (scratch)",
        description="fast-motion: background-subtracted input, what makes latents carry the action (docs/MODELS.md)",
    )
    encoder_epochs: int = Field(2, ge=1, title="Autoencoder training epochs (scratch; brief: this is a demo)")
    encoder_batch: int = Field(8, ge=1)
    classifier: str = Field("svm", title="Classifier kind (tinyact classify fit kinds)")
    classifier_folds: int = Field(3, ge=2)
    # the live system
    cameras: int = Field(5, ge=1, le=64, title="Simulated cameras")
    duration_s: float = Field(60.0, gt=0, title="How long the edge agent runs")
    interval_s: float = Field(2.0, gt=0, title="Seconds between two clips of one camera (paper: 10)")
    capture_fps: float = Field(6.0, gt=0, title="Frame rate of a clip's 16 frames (window = 15 / fps)")
    min_segment_s: float = Field(5.0, gt=0, title="Each action plays at least this long on a camera")
    playlist_clips: int = Field(10, ge=1, title="Action clips per camera playlist")
    wire_dtype: Literal["float16", "int8", "float32"] = "float16"
    backend: Literal["torch", "torch-bf16", "torch-int8", "onnx", "onnx-int8"] = Field(
        "torch", title="Edge encoder backend",
        description="int8 backends are quantised first, calibrated on 32 cached training clips (docs/EDGE.md)")

    def models_dir(self) -> Path:
        return self.models or (self.data / "models")


# ---- training (reused when the same settings ran before) ----------------------------------------------------
def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def ensure_dataset(cfg: DemoConfig) -> Manifest:
    """Generate the synthetic set if it is missing (or was made with other settings) and return its
    balanced manifest."""
    synth_cfg = SynthConfig(
        out=cfg.data, classes=cfg.classes, clips_per_class=cfg.clips_per_class, size=cfg.video_size, seed=cfg.seed,
        min_seconds=cfg.clip_seconds[0], max_seconds=cfg.clip_seconds[1],
    )
    saved = cfg.data / "synth_config.yaml"
    if not saved.exists() or saved.read_text() != synth_cfg.to_yaml():
        logger.info("demo: generating %d classes x %d clips in %s", cfg.classes, cfg.clips_per_class, cfg.data)
        generate(synth_cfg)
    manifest_path = cfg.data / "manifest.csv"
    entries, _ = read_kinetics(cfg.data)
    manifest = Manifest(balance(entries, seed=cfg.seed), cfg.data.resolve())
    manifest.write(manifest_path)
    return Manifest.read(manifest_path)


def ensure_encoder(cfg: DemoConfig, manifest_path: Path, cache_dir: Path) -> tuple[Path, str]:
    """The pretrained (zoo) or given encoder as a model file; with ``encoder: scratch`` the autoencoder trained
    briefly here, or reused when the same settings ran before. Returns ``(checkpoint, encoder_hash)``."""
    from tinyact.training.ae import AETrainConfig, train_autoencoder

    if cfg.encoder != "scratch":
        from tinyact.models.checkpoint import load_model
        from tinyact.zoo import materialize

        checkpoint = materialize(cfg.encoder, cfg.models_dir() / "zoo")
        _, info = load_model(checkpoint)
        logger.info("demo: using the encoder %s (%s)", cfg.encoder, checkpoint)
        return checkpoint, str(info["hash"])
    synth_yaml = (cfg.data / "synth_config.yaml").read_text()
    key = _key(synth_yaml, cfg.encoder_preset, cfg.clip_size, cfg.encoder_epochs, cfg.encoder_batch, cfg.seed)
    run = cfg.models_dir() / f"ae-{key}"
    marker = run / "demo_encoder.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        if Path(info["checkpoint"]).is_file():
            logger.info("demo: reusing the encoder trained before (%s)", run)
            return Path(info["checkpoint"]), info["encoder_hash"]
    logger.info("demo: training the %s 3-D autoencoder for %d epoch(s) at %d px", cfg.encoder_preset,
                cfg.encoder_epochs, cfg.clip_size)
    ae_cfg = AETrainConfig(
        manifest=manifest_path, out=run, kind="ae3d", preset=cfg.encoder_preset, size=cfg.clip_size, frames=16,
        batch_size=cfg.encoder_batch, epochs=cfg.encoder_epochs, seed=cfg.seed, cache_dir=cache_dir, grid_clips=0,
    )
    result = train_autoencoder(ae_cfg)
    marker.write_text(json.dumps({"checkpoint": str(result.checkpoint), "encoder_hash": result.encoder_hash}))
    return Path(result.checkpoint), result.encoder_hash


def ensure_classifier(cfg: DemoConfig, manifest: Manifest, checkpoint: Path, encoder_hash: str,
                      cache_dir: Path) -> tuple[Path, dict]:
    """Latents of every clip, then a classifier fitted on them (or both reused). Returns ``(folder, metrics)``."""
    from tinyact.classifiers.saved import load_classifier
    from tinyact.classifiers.search import fit_classifier
    from tinyact.latents import LatentsFile
    from tinyact.training.extract import extract_latents

    folder = cfg.models_dir() / f"{cfg.classifier}-{encoder_hash[:12]}-f{cfg.classifier_folds}"
    try:
        saved = load_classifier(folder, encoder_hash=encoder_hash)
        logger.info("demo: reusing the %s classifier fitted before (%s)", cfg.classifier, folder)
        return folder, dict(saved.metrics)
    except Exception:
        pass
    latents_path = cfg.models_dir() / f"latents-{encoder_hash[:12]}.npz"
    if latents_path.is_file():
        latents = LatentsFile.load(latents_path)
    else:
        logger.info("demo: encoding every clip to a latent")
        latents = extract_latents(checkpoint, manifest, ClipSampling(size=cfg.clip_size, num_frames=16), latents_path,
                                  cache_dir=cache_dir, batch_size=8, encoder_hash=encoder_hash)
    logger.info("demo: fitting the %s classifier (grid search, %d folds)", cfg.classifier, cfg.classifier_folds)
    result = fit_classifier(latents, cfg.classifier, folds=cfg.classifier_folds, seed=cfg.seed, out=folder)
    return folder, dict(result.metrics)


# ---- cameras --------------------------------------------------------------------------------------------------
def ensure_playlists(cfg: DemoConfig, manifest: Manifest) -> list[Path]:
    """One looped playlist per camera, made of held-out *test* clips (actors never seen in training), each
    camera starting at another class. Reused when made with the same settings."""
    from tinyact.edge.simulate import write_playlist

    test = manifest.split("test")
    by_label: dict[str, list] = {}
    for entry in test.entries:
        by_label.setdefault(entry.label, []).append(entry)
    labels = [name for name in manifest.label_names if name in by_label]
    key = _key((cfg.data / "synth_config.yaml").read_text(), cfg.cameras, cfg.playlist_clips, cfg.min_segment_s)
    folder = cfg.data / f"cameras-{key}"
    paths = []
    for k in range(cfg.cameras):
        path = folder / f"cam-{k + 1}.mp4"
        paths.append(path)
        if path.is_file() and path.with_suffix(".json").is_file():
            continue
        clips = []
        for j in range(cfg.playlist_clips):
            label = labels[(k * 2 + j) % len(labels)]
            pool = by_label[label]
            entry = pool[(k + j // len(labels)) % len(pool)]
            clips.append((test.resolve(entry), label))
        write_playlist(clips, path, min_segment_s=cfg.min_segment_s)
    logger.info("demo: %d camera playlists in %s", len(paths), folder)
    return paths


# ---- the live run ---------------------------------------------------------------------------------------------
@dataclass
class ClipRow:
    clip_id: str
    camera_id: str
    captured_at: float
    state: str
    label: str | None
    score: float | None
    result_at: float | None
    encode_ms: float | None
    truth: str | None = None
    purity: float | None = None

    @property
    def latency_s(self) -> float | None:
        return None if self.result_at is None else max(0.0, self.result_at - self.captured_at)


@dataclass
class LiveState:
    """What the live table shows (read from the edge database and the cameras' truths)."""

    rows: list[ClipRow] = field(default_factory=list)
    now_on_screen: dict[str, str | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    bytes_per_clip: float | None = None


def read_clips(store, cameras: dict) -> list[ClipRow]:
    """Every capture in the edge database with its truth (from the recording cameras)."""
    from sqlalchemy import select

    from tinyact.edge.store import captures

    c = captures.c
    with store.engine.connect() as db:
        raw = db.execute(select(c.clip_id, c.camera_id, c.captured_at, c.state, c.label, c.score, c.result_at,
                                c.encode_ms, c.delivered_at).order_by(c.captured_at)).all()
    rows = []
    for *r, delivered_at in raw:
        row = ClipRow(*r)
        # The first acknowledgement (the POST response carries the result) is when the result arrived:
        # result_at is rewritten when the same result comes again through the results feed.
        if row.result_at is not None and delivered_at is not None:
            row.result_at = min(row.result_at, delivered_at)
        camera = cameras.get(row.camera_id)
        if camera is not None:
            truth = camera.truth_of(datetime.fromtimestamp(row.captured_at, UTC))
            if truth is not None:
                row.truth, row.purity = truth.label, truth.purity
        rows.append(row)
    return rows


def live_table(state: LiveState, elapsed: float, duration: float):
    """The Rich table printed while the demo runs."""
    from rich.table import Table

    table = Table(title=f"TinyAct demo: edge → cloud  ({elapsed:4.0f} / {duration:.0f} s)", title_justify="left")
    for name, justify in (("camera", "left"), ("on screen now", "left"), ("last clip: true", "left"),
                          ("predicted", "left"), ("score", "right"), ("latency", "right"), ("clips", "right"),
                          ("correct", "right")):
        table.add_column(name, justify=justify)
    by_camera: dict[str, list[ClipRow]] = {}
    for row in state.rows:
        by_camera.setdefault(row.camera_id, []).append(row)
    for camera_id in sorted(set(state.now_on_screen) | set(by_camera)):
        rows = by_camera.get(camera_id, [])
        done = [r for r in rows if r.label is not None]
        last = done[-1] if done else None
        scored = [r for r in done if r.truth is not None and (r.purity or 0) >= 1.0]  # as in the summary
        correct = sum(r.label == r.truth for r in scored)
        predicted = "…" if last is None else (
            f"[green]{last.label}[/]" if last.label == last.truth else f"[red]{last.label}[/]")
        table.add_row(
            camera_id, state.now_on_screen.get(camera_id) or "", (last.truth or "?") if last else "", predicted,
            f"{last.score:.2f}" if last and last.score is not None else "",
            f"{last.latency_s * 1000:.0f} ms" if last and last.latency_s is not None else "",
            str(len(rows)), f"{correct}/{len(scored)}" if scored else "",
        )
    counts = state.counts
    scored = [r for r in state.rows if r.label is not None and r.truth is not None and (r.purity or 0) >= 1.0]
    accuracy = f"{sum(r.label == r.truth for r in scored) / len(scored):.0%}" if scored else "–"
    bpc = f"{state.bytes_per_clip:.0f} B/clip" if state.bytes_per_clip else "–"
    table.caption = (f"captured {counts.get('captured', 0)} · delivered {counts.get('delivered', 0)} · "
                     f"pending {counts.get('pending', 0)} · accuracy {accuracy} · {bpc} on the wire")
    table.caption_justify = "left"
    return table


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def summarise(rows: list[ClipRow], counts: dict, cloud_db: str, bytes_sent: int, clips_sent: int,
              playlists: dict[str, Path]) -> dict[str, Any]:
    """The numbers of summary.json (see :func:`run_demo`)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(cloud_db)
    try:
        with engine.connect() as db:
            cloud = db.execute(text(
                "SELECT p.clip_id FROM predictions p JOIN devices d ON d.id = p.device_id WHERE d.name = :n"),
                {"n": DEMO_DEVICE}).scalars().all()
    finally:
        engine.dispose()
    cloud_ids = [str(c).replace("-", "") for c in cloud]
    edge_ids = {r.clip_id.replace("-", "") for r in rows}
    delivered = [r for r in rows if r.state == "delivered"]
    with_result = [r for r in rows if r.label is not None]
    clean = [r for r in with_result if r.truth is not None and (r.purity or 0) >= 1.0]
    mixed = [r for r in with_result if r.truth is not None]
    latencies = [r.latency_s * 1000 for r in with_result if r.latency_s is not None]
    encode = [r.encode_ms for r in rows if r.encode_ms is not None]
    cameras = []
    for camera_id in sorted(playlists):
        mine = [r for r in rows if r.camera_id == camera_id]
        scored = [r for r in mine if r.label is not None and r.truth is not None and (r.purity or 0) >= 1.0]
        cameras.append({
            "camera_id": camera_id, "playlist": str(playlists[camera_id]), "clips": len(mine),
            "with_result": sum(r.label is not None for r in mine), "scored": len(scored),
            "correct": sum(r.label == r.truth for r in scored),
            "accuracy": round(sum(r.label == r.truth for r in scored) / len(scored), 4) if scored else None,
        })
    return {
        "clips_captured": int(counts.get("captured", len(rows))),
        "clips_delivered": len(delivered),
        "clips_pending": int(counts.get("pending", 0)),
        "clips_dropped": int(counts.get("dropped", 0)),
        "results_received": len(with_result),
        "cloud_rows": len(cloud_ids),
        "duplicates": len(cloud_ids) - len(set(cloud_ids)),
        "lost": len(edge_ids - set(cloud_ids)) - int(counts.get("pending", 0)) - int(counts.get("dropped", 0)),
        "accuracy": round(sum(r.label == r.truth for r in clean) / len(clean), 4) if clean else None,
        "accuracy_clips": len(clean),
        "chance": round(1 / max(1, len({r.truth for r in rows if r.truth})), 4) if any(r.truth for r in rows) else None,
        "accuracy_all_windows": round(sum(r.label == r.truth for r in mixed) / len(mixed), 4) if mixed else None,
        "accuracy_note": "accuracy: clips whose 16 frames all show one action; accuracy_all_windows: every clip "
                         "with a result, true label = the action of most of its frames",
        "bytes_sent": int(bytes_sent),
        "bytes_per_clip": round(bytes_sent / clips_sent, 1) if clips_sent else None,
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95),
                       "note": "end of the capture window -> result stored on the edge"},
        "encode_ms_per_clip": round(float(np.mean(encode)), 1) if encode else None,
        "cameras": cameras,
    }


def ensure_int8_encoder(backend: str, checkpoint: Path, manifest: Manifest, cache_dir: Path, clips: int = 32) -> Path:
    """Write the int8 encoder the edge's ``backend`` loads (next to the checkpoint), calibrated on training clips."""
    from tinyact.edge.encoder import default_int8_path, default_onnx_path, write_int8_encoder
    from tinyact.models.checkpoint import load_model

    out = default_int8_path(checkpoint) if backend == "torch-int8" else default_onnx_path(checkpoint, int8=True)
    if out.is_file() and out.stat().st_mtime >= checkpoint.stat().st_mtime:
        return out
    model, info = load_model(checkpoint)
    cache = ClipCache(cache_dir)
    train = [e.clip_id for e in manifest.split("train").entries if e.clip_id in cache][:clips]
    if not train:
        raise TinyActError(f"no cached training clips in {cache_dir} to calibrate the {backend} encoder on")
    calibration = np.stack([cache[clip_id].numpy() for clip_id in train])
    return write_int8_encoder(backend, checkpoint, model, calibration, encoder_hash=info.get("hash"))


def run_demo(cfg: DemoConfig, *, live: bool = True, serve: bool = False,
             on_ready: Callable[[dict], None] | None = None,
             on_summary: Callable[[dict], None] | None = None) -> dict:
    """Run the demo and return the summary (also written to ``cfg.out/summary.json``).

    ``live``: draw the per-camera table while it runs. ``serve``: after the summary, keep the agent, the
    cloud and both pages running until Ctrl-C. ``on_ready``: called with the URLs once everything is up;
    ``on_summary``: with the summary, before serving.
    """
    from rich.live import Live

    from tinyact.cloud.server import serve_in_background
    from tinyact.console import console, progress_enabled
    from tinyact.edge.agent import EdgeAgent
    from tinyact.edge.config import (
        CameraConfig,
        EdgeConfig,
        EncoderConfig,
        ScheduleConfig,
        TransportConfig,
        WebConfig,
    )
    from tinyact.edge.simulate import Playlist, RecordingCamera
    from tinyact.edge.sources import FileCamera
    from tinyact.edge.web import create_edge_app, serve_edge_app

    started = time.perf_counter()
    steps: dict[str, float] = {}
    if cfg.encoder != "scratch":  # the encoder decides the clip size
        from tinyact.zoo import load_model_spec

        model, _ = load_model_spec(cfg.encoder)
        size = getattr(getattr(model, "config", None), "input_size", (cfg.clip_size, cfg.clip_size))
        cfg = cfg.model_copy(update={"clip_size": int(size[0])})
    cfg.out.mkdir(parents=True, exist_ok=True)
    cfg.save(cfg.out)

    def step(name: str, t0: float) -> None:
        steps[name] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    manifest = ensure_dataset(cfg)
    manifest_path = cfg.data / "manifest.csv"
    step("dataset", t0)
    t0 = time.perf_counter()
    cache_dir = cfg.data / f"cache-{cfg.clip_size}"
    build_cache(manifest, cache_dir, ClipSampling(size=cfg.clip_size, num_frames=16))
    step("clip_cache", t0)
    t0 = time.perf_counter()
    checkpoint, encoder_hash = ensure_encoder(cfg, manifest_path, cache_dir)
    step("encoder", t0)
    if cfg.backend.endswith("int8"):
        t0 = time.perf_counter()
        logger.info("demo: preparing the %s encoder (calibrated on training clips)", cfg.backend)
        ensure_int8_encoder(cfg.backend, checkpoint, manifest, cache_dir)
        step("int8", t0)
    t0 = time.perf_counter()
    classifier_dir, classifier_metrics = ensure_classifier(cfg, manifest, checkpoint, encoder_hash, cache_dir)
    step("classifier", t0)
    t0 = time.perf_counter()
    logger.info("demo: writing the camera playlists")
    playlist_paths = ensure_playlists(cfg, manifest)
    step("playlists", t0)

    # Fresh databases per run: the numbers of summary.json are this run's.
    edge_dir = cfg.out / "edge"
    for path in (cfg.out / "cloud.db", edge_dir / "edge.db"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    edge_dir.mkdir(parents=True, exist_ok=True)
    admin_token, viewer_token, edge_token = (secrets.token_urlsafe(24) for _ in range(3))
    summary: dict[str, Any] = {}
    with ExitStack() as stack:
        t0 = time.perf_counter()
        logger.info("demo: starting the cloud service, the edge agent and its page")
        cloud = stack.enter_context(serve_in_background(
            classifier_dir, cfg.out / "cloud.db", admin_token=admin_token, viewer_token=viewer_token))
        key_file = edge_dir / "device.key"
        key_file.write_text(cloud.add_device(DEMO_DEVICE))
        key_file.chmod(0o600)
        token_file = edge_dir / "web.token"
        token_file.write_text(edge_token)
        token_file.chmod(0o600)
        edge_cfg = EdgeConfig(
            device_id=DEMO_DEVICE, cloud_url=cloud.url, device_key_file=key_file,
            encoder=EncoderConfig(checkpoint=checkpoint, backend=cfg.backend),
            cameras=[CameraConfig(id=f"cam-{k + 1}", source=str(p)) for k, p in enumerate(playlist_paths)],
            schedule=ScheduleConfig(interval_s=cfg.interval_s, frames_per_clip=16, capture_fps=cfg.capture_fps),
            transport=TransportConfig(wire_dtype=cfg.wire_dtype, results_poll_s=5.0, retry_max_s=5.0),
            web=WebConfig(enabled=False, token_file=token_file),
            data_dir=edge_dir,
        )
        edge_cfg.save(edge_dir, "edge.yaml")
        cameras = {c.id: RecordingCamera(FileCamera(c.id, c.source), Playlist.load(c.source)) for c in edge_cfg.cameras}
        agent = EdgeAgent(edge_cfg, cameras=list(cameras.values()))
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
        step("start_services", t0)
        if on_ready:
            on_ready(urls)

        state = LiveState()

        def refresh() -> None:
            state.rows = read_clips(agent.store, cameras)
            state.counts = agent.store.counts()
            state.now_on_screen = {cid: cam.now_label() for cid, cam in cameras.items()}
            transport = agent.status().get("transport", {})
            state.bytes_per_clip = transport.get("bytes_per_clip")

        t0 = time.perf_counter()
        run_start = time.monotonic()
        draw = live and progress_enabled()
        with Live(live_table(state, 0, cfg.duration_s), console=console, refresh_per_second=2,
                  auto_refresh=False, transient=False) if draw else _NullLive() as view:
            last_log = 0.0
            while (elapsed := time.monotonic() - run_start) < cfg.duration_s:
                time.sleep(min(0.5, cfg.duration_s - elapsed))
                refresh()
                if draw:
                    view.update(live_table(state, time.monotonic() - run_start, cfg.duration_s), refresh=True)
                elif live and elapsed - last_log >= 10:
                    last_log = elapsed
                    logger.info("demo: %3.0f/%.0f s: %d captured, %d delivered, %d with a result", elapsed,
                                cfg.duration_s, state.counts.get("captured", 0), state.counts.get("delivered", 0),
                                sum(r.label is not None for r in state.rows))
        step("run", t0)
        # Stop capturing, then deliver what is still in the outbox and read any result not yet back (before
        # the transport closes: with an already empty outbox nothing would reopen it).
        t0 = time.perf_counter()
        flushed, _ = agent.finish(timeout=60)
        step("flush", t0)
        status = agent.status()
        transport = status.get("transport", {})
        state.rows = read_clips(agent.store, cameras)
        counts = agent.store.counts()
        summary = summarise(state.rows, counts, cloud.db_url, int(transport.get("bytes_sent") or agent.bytes_sent),
                            int(agent.clips_sent), {cid: Path(c.source) for cid, c in zip(cameras, edge_cfg.cameras,
                                                                                           strict=True)})
        if live and not draw:
            console.print(live_table(state, cfg.duration_s, cfg.duration_s))
        from tinyact.edge.simulate import h264_bytes

        samples = [c.first_clip for c in cameras.values() if c.first_clip is not None]
        h264 = float(np.mean([h264_bytes(clip, cfg.capture_fps) for clip in samples])) if samples else None
        summary.update({
            "h264_bytes_per_clip": round(h264, 1) if h264 else None,
            "h264_note": "the same 16 frames at the encoder's input size as H.264 (crf 23), the first clip per camera",
            "flushed": flushed,
            "wire_dtype": cfg.wire_dtype,
            "encoder": {"spec": cfg.encoder, "checkpoint": str(checkpoint), "hash": encoder_hash, "backend": cfg.backend,
                        "size": cfg.clip_size,
                        **({"preset": cfg.encoder_preset, "epochs": cfg.encoder_epochs} if cfg.encoder == "scratch" else {})},
            "classifier": {"kind": cfg.classifier, "folder": str(classifier_dir),
                           "test_metrics": {k: v for k, v in classifier_metrics.items() if isinstance(v, (int, float))}},
            "interval_s": cfg.interval_s,
            "duration_s": cfg.duration_s,
            "urls": urls,
            "steps_s": steps,
            "elapsed_s": round(time.perf_counter() - started, 1),
        })
        (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        if on_summary:
            on_summary(summary)
        if serve:  # capture again (a fresh agent on the same database) while the pages are open
            cameras = {c.id: RecordingCamera(FileCamera(c.id, c.source), Playlist.load(c.source))
                       for c in edge_cfg.cameras}
            current["agent"] = EdgeAgent(edge_cfg, cameras=list(cameras.values()))
            current["agent"].start()
            stack.callback(current["agent"].stop)
            _wait_for_interrupt(console, urls)
    return summary


class _NullLive:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def _wait_for_interrupt(console, urls: dict) -> None:
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
