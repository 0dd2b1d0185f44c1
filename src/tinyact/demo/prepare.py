"""What the demo needs before anything runs: dataset, clip cache, encoder, classifier, camera playlists.

Each step is reused when an earlier run made it with the same settings (the folder names carry a hash of
them), so a second ``tinyact demo`` goes straight to the live part.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyact.data.cache import ClipCache, build_cache
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest, ManifestEntry, balance
from tinyact.data.synth import SynthConfig, generate
from tinyact.data.synth.generator import ClipPlan, plan_dataset, render_clip
from tinyact.data.transforms import normalize
from tinyact.data.video import ClipSampling
from tinyact.demo.config import DemoConfig
from tinyact.errors import TinyActError
from tinyact.latents import LatentsFile
from tinyact.paths import atomic_write_text

logger = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything :func:`prepare` made, with the seconds each step took (``steps``)."""

    manifest: Manifest
    cache_dir: Path
    checkpoint: Path
    encoder_hash: str
    classifier_dir: Path
    classifier_metrics: dict[str, Any]
    playlists: list[Path]
    finetuned: dict[str, Any] | None = None  # finetune.json of the fine-tuned encoder in use (None: frozen)
    steps: dict[str, float] = field(default_factory=dict)


def _key(*parts: Any) -> str:
    """A short hash of the settings a reusable artefact was made with (part of its folder name)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def with_encoder_input_size(cfg: DemoConfig) -> DemoConfig:
    """``cfg`` with ``clip_size`` set to the input size of a named encoder (``scratch`` keeps ``clip_size``)."""
    if cfg.encoder == "scratch":
        return cfg
    from tinyact.zoo import load_model_spec

    model, _ = load_model_spec(cfg.encoder)
    size = getattr(getattr(model, "config", None), "input_size", (cfg.clip_size, cfg.clip_size))
    return cfg.model_copy(update={"clip_size": int(size[0])})


def encoder_reading(cfg: DemoConfig) -> ClipSampling:
    """How the demo's encoder reads a video file: a zoo entry's own sampling (everyday-64: the mean latent of 4
    windows at 8 frames/s, what its cameras grab), else 16 frames spread over the video."""
    from tinyact.zoo import encoder_sampling, get_entry

    entry = get_entry(cfg.encoder[4:]) if cfg.encoder.startswith("zoo:") else None
    return encoder_sampling(entry, 16, cfg.clip_size)


def demo_synth_config(cfg: DemoConfig) -> SynthConfig:
    """What the demo's synthetic set is generated with."""
    return SynthConfig(
        out=cfg.data, classes=cfg.classes, clips_per_class=cfg.clips_per_class, actors=cfg.actors,
        size=cfg.video_size, seed=cfg.seed, min_seconds=cfg.clip_seconds[0], max_seconds=cfg.clip_seconds[1],
    )


def ensure_dataset(cfg: DemoConfig) -> Manifest:
    """Generate the synthetic set if it is missing (or was made with other settings).

    Returns:
        Its balanced manifest (also written to ``DATA/manifest.csv``).
    """
    synth_cfg = demo_synth_config(cfg)
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
    """The encoder as a model file: the pretrained (zoo) or given one, or with ``encoder: scratch`` the
    autoencoder trained briefly here (reused when the same settings ran before).

    Returns:
        ``(model file, encoder hash)``.
    """
    from tinyact.models.checkpoint import load_model

    if cfg.encoder != "scratch":
        from tinyact.zoo import materialize

        checkpoint = materialize(cfg.encoder, cfg.models_dir() / "zoo")
        _, info = load_model(checkpoint)
        logger.info("demo: using the encoder %s (%s)", cfg.encoder, checkpoint)
        return checkpoint, str(info["hash"])
    from tinyact.training.ae import AETrainConfig, train_autoencoder

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
    atomic_write_text(marker, json.dumps({"checkpoint": str(result.checkpoint), "encoder_hash": result.encoder_hash}))
    return Path(result.checkpoint), result.encoder_hash


def ensure_finetuned(cfg: DemoConfig, manifest_path: Path, reading_cache: Path) -> dict[str, Any] | None:
    """The pretrained encoder fine-tuned on the training actors' windows (``tinyact train finetune``), reused when
    the same settings ran before; ``None`` when fine-tuning is off or did not beat the frozen encoder on val.

    Returns:
        Its ``finetune.json`` (``model``, ``encoder_hash``, the val probe ``before`` and ``after`` …).
    """
    from tinyact.training.finetune import FinetuneConfig, finetune

    if cfg.finetune_epochs == 0 or not cfg.encoder.startswith("zoo:"):  # a model file of the user's stays as given
        return None
    synth_yaml = (cfg.data / "synth_config.yaml").read_text()
    key = _key(synth_yaml, cfg.encoder, cfg.finetune_epochs, cfg.finetune_frozen_stages, cfg.finetune_precision,
               cfg.seed)
    run = cfg.models_dir() / f"finetune-{key}"
    report = run / "finetune.json"
    if not report.is_file():
        logger.info("demo: fine-tuning %s on the training actors' windows for %d epochs", cfg.encoder,
                    cfg.finetune_epochs)
        finetune(FinetuneConfig(manifest=manifest_path, out=run, init=cfg.encoder, cache_dir=reading_cache,
                                epochs=cfg.finetune_epochs, frozen_stages=cfg.finetune_frozen_stages,
                                precision=cfg.finetune_precision, seed=cfg.seed),
                 resume=(run / "last.pt").is_file())  # a demo stopped while fine-tuning continues where it was
    else:
        logger.info("demo: reusing the encoder fine-tuned before (%s)", run)
    done: dict[str, Any] = json.loads(report.read_text())
    return done if done["kept"] == "finetuned" else None


def window_latents(checkpoint: Path, manifest: Manifest, cache_dir: Path, encoder_hash: str,
                   batch_size: int = 8) -> LatentsFile:
    """One row per window: each of a clip's K windows (a ``multi`` clip cache) is encoded and kept as its own
    row (``CLIP#wK``), so the classifier learns from what a camera sends — one window per clip — rather than from
    the mean of a clip's windows. Clips the cache skipped are left out."""
    from tinyact.models.base import config_of, encode_fn
    from tinyact.models.checkpoint import load_model

    model, _ = load_model(checkpoint)
    encode = encode_fn(model.eval())
    stats = config_of(model).normalization
    cache = ClipCache(cache_dir)
    entries = [e for e in manifest.entries if e.clip_id in cache]
    latents: list[np.ndarray] = []
    rows: list[tuple[str, str, str]] = []  # (clip id, label, split) of every window
    with torch.no_grad():
        for start in range(0, len(entries), batch_size):
            batch = entries[start : start + batch_size]
            clips = torch.stack([cache[e.clip_id] for e in batch])  # uint8 [B, K, T, 3, S, S]
            latents.append(encode(normalize(clips.flatten(0, 1), stats)).float().numpy())
            rows += [(f"{e.clip_id}#w{k}", e.label, e.split) for e in batch for k in range(clips.shape[1])]
    ids, labels, splits = zip(*rows, strict=True)
    return LatentsFile(np.concatenate(latents), np.asarray(labels), list(manifest.label_names), np.asarray(ids),
                       np.asarray(splits), encoder_hash, meta={"rows": "windows", "sampling": cache.sampling.model_dump()})


def ensure_classifier(cfg: DemoConfig, manifest: Manifest, checkpoint: Path, encoder_hash: str,
                      cache_dir: Path, reading: ClipSampling) -> tuple[Path, dict[str, Any]]:
    """Latents of every clip (read as ``reading``, from ``cache_dir``; with a windowed reading one row per window,
    as the cameras send them), then a classifier fitted on them (or both reused).

    Returns:
        ``(classifier folder, its metrics)``.
    """
    from tinyact.classifiers.saved import load_classifier
    from tinyact.classifiers.search import fit_classifier
    from tinyact.training.extract import extract_latents

    folder = cfg.models_dir() / f"{cfg.classifier}-{encoder_hash[:12]}-f{cfg.classifier_folds}"
    try:
        saved = load_classifier(folder, encoder_hash=encoder_hash)
        logger.info("demo: reusing the %s classifier fitted before (%s)", cfg.classifier, folder)
        return folder, dict(saved.metrics)
    except Exception:  # missing, partial or of other latents: fit it again
        pass
    latents_path = cfg.models_dir() / f"latents-{encoder_hash[:12]}-{_key(reading.model_dump(mode='json'))}.npz"
    if latents_path.is_file():
        latents = LatentsFile.load(latents_path)
    elif reading.strategy == "multi":
        logger.info("demo: encoding every window of every clip to a latent")
        latents = window_latents(checkpoint, manifest, cache_dir, encoder_hash)
        latents.save(latents_path)
    else:
        logger.info("demo: encoding every clip to a latent")
        latents = extract_latents(checkpoint, manifest, reading, latents_path, cache_dir=cache_dir, batch_size=8,
                                  encoder_hash=encoder_hash)
    logger.info("demo: fitting the %s classifier (grid search, %d folds)", cfg.classifier, cfg.classifier_folds)
    result = fit_classifier(latents, cfg.classifier, folds=cfg.classifier_folds, seed=cfg.seed, out=folder)
    return folder, dict(result.metrics)


def ensure_playlists(cfg: DemoConfig, manifest: Manifest) -> list[Path]:
    """One playlist per camera: the *test* actors (never seen in training) performing each action.

    Each segment is a take of a test clip's plan (its actor, action and frame rate) rendered at least
    ``min_segment_s`` long, so it plays once, as a camera watching a person would see it: a test clip looped to
    that length jumps back at its loop point, and a clip re-encoded into a playlist is compressed twice; neither
    happens to a camera (docs/BENCHMARKS.md, "The demo and fine-tuning"). Each camera starts at another class.
    Playlists made with the same settings are reused.

    Returns:
        The playlist videos, one per camera (each with its ``.json`` of segments and labels).
    """
    from tinyact.parallel import run_bounded, worker_count

    synth_cfg = demo_synth_config(cfg)
    plans = {plan.youtube_id: plan for plan in plan_dataset(synth_cfg)}
    test = manifest.split("test")
    by_label: dict[str, list[ManifestEntry]] = {}
    for entry in test.entries:
        by_label.setdefault(entry.label, []).append(entry)
    labels = [name for name in manifest.label_names if name in by_label]
    key = _key(synth_cfg.to_yaml(), cfg.cameras, cfg.playlist_clips, cfg.min_segment_s, "takes")
    folder = cfg.data / f"cameras-{key}"
    paths, jobs = [], []
    for k in range(cfg.cameras):
        path = folder / f"cam-{k + 1}.mp4"
        paths.append(path)
        if path.is_file() and path.with_suffix(".json").is_file():
            continue
        takes = []
        for j in range(cfg.playlist_clips):
            pool = by_label[labels[(k * 2 + j) % len(labels)]]
            entry = pool[(k + j // len(labels)) % len(pool)]
            name = Path(entry.path).name  # <youtube_id>_<start>_<end>.mp4 (the id may hold "_")
            takes.append((plans[name.rsplit("_", 2)[0]], entry.label, name))
        jobs.append((synth_cfg, takes, path, cfg.min_segment_s))
    run_bounded(_write_playlist, jobs, min(worker_count(), max(1, len(jobs))), lambda _: None)  # one per core
    logger.info("demo: %d camera playlists in %s", len(paths), folder)
    return paths


def _write_playlist(job: tuple[SynthConfig, list[tuple[ClipPlan, str, str]], Path, float]) -> None:
    """Worker: one camera's playlist file (render each take, encode once: seconds of one core)."""
    from tinyact.edge.simulate import Take, write_takes

    synth_cfg, takes, path, min_segment_s = job
    rendered = []
    for plan, label, source in takes:
        frames, fps, _ = render_clip(synth_cfg, plan, min_seconds=min_segment_s)
        rendered.append(Take(frames, fps, label, source))
    write_takes(rendered, path, min_segment_s=min_segment_s)


def uniform_cache_dir(cfg: DemoConfig) -> Path:
    """Where the demo caches 16 frames spread over each clip: what scratch training, int8 calibration and a
    uniform reading use."""
    return cfg.data / f"cache-{cfg.clip_size}"


def build_uniform_cache(cfg: DemoConfig, manifest: Manifest) -> Path:
    """Build (or finish; a no-op when complete) :func:`uniform_cache_dir` for ``manifest``."""
    build_cache(manifest, uniform_cache_dir(cfg), ClipSampling(size=cfg.clip_size, num_frames=16))
    return uniform_cache_dir(cfg)


def ensure_int8_encoder(backend: str, checkpoint: Path, manifest: Manifest, cache_dir: Path, clips: int = 32) -> Path:
    """Write the int8 encoder the edge's ``backend`` loads (next to the checkpoint), calibrated on training clips.

    Returns:
        The int8 file (reused when newer than the checkpoint).

    Raises:
        TinyActError: when the cache holds no training clip to calibrate on.
    """
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
    calibration = np.stack([cache[clip_id].numpy() for clip_id in train])  # [N, T, 3, S, S] uint8
    return write_int8_encoder(backend, checkpoint, model, calibration, encoder_hash=info.get("hash"))


def prepare(cfg: DemoConfig) -> Prepared:
    """Run every preparation step in order, timing each (``Prepared.steps``, seconds)."""
    steps: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        steps[name] = round(time.perf_counter() - start, 1)

    t0 = time.perf_counter()
    manifest = ensure_dataset(cfg)
    timed("dataset", t0)
    t0 = time.perf_counter()
    reading = encoder_reading(cfg)
    cache_dir = uniform_cache_dir(cfg)
    if cfg.encoder == "scratch" or cfg.backend.endswith("int8") or reading.strategy == "uniform":
        build_uniform_cache(cfg, manifest)
        timed("clip_cache", t0)
    t0 = time.perf_counter()
    checkpoint, encoder_hash = ensure_encoder(cfg, cfg.data / "manifest.csv", cache_dir)
    timed("encoder", t0)
    t0 = time.perf_counter()
    reading_cache = cache_dir
    if reading.strategy != "uniform":  # the encoder reads windows: a cache of those for its latents
        reading_cache = cfg.data / f"cache-{cfg.clip_size}-{reading.strategy}{reading.num_clips}-{reading.sample_fps}"
        build_cache(manifest, reading_cache, reading)
    timed("window_cache", t0)
    t0 = time.perf_counter()
    finetuned = ensure_finetuned(cfg, cfg.data / "manifest.csv", reading_cache)
    if finetuned is not None:
        checkpoint, encoder_hash = Path(finetuned["model"]), str(finetuned["encoder_hash"])
        timed("finetune", t0)
    if cfg.backend.endswith("int8"):
        t0 = time.perf_counter()
        logger.info("demo: preparing the %s encoder (calibrated on training clips)", cfg.backend)
        ensure_int8_encoder(cfg.backend, checkpoint, manifest, cache_dir)
        timed("int8", t0)
    t0 = time.perf_counter()
    classifier_dir, classifier_metrics = ensure_classifier(cfg, manifest, checkpoint, encoder_hash, reading_cache,
                                                           reading)
    timed("classifier", t0)
    t0 = time.perf_counter()
    logger.info("demo: writing the camera playlists")
    playlists = ensure_playlists(cfg, manifest)
    timed("playlists", t0)
    return Prepared(manifest, cache_dir, checkpoint, encoder_hash, classifier_dir, classifier_metrics, playlists,
                    finetuned, steps)
