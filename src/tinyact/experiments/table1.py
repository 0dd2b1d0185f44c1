"""The paper's Table 1 on any dataset we have: classical classifiers on the autoencoder's latents, with the
raw-pixel and random-encoder baselines beside them.

::

    DATA ─► manifest (kinetics layout, or folder + split file / seeded stratified split)   RUN/manifest.csv
         ─► clip cache (uint8, decoded once)                                             RUN/cache/
         ─► autoencoder training (unsupervised, tinyact.training.ae)                    RUN/ae/
         ─► latents: trained encoder, random encoder (same architecture, seed), raw pixels   RUN/latents/*.npz
         ─► every classifier on every latents file (grid search + k-fold on train, val, test)  RUN/classifiers/
         ─► RUN/metrics.json, RUN/table1.md, RUN/config.yaml

Every stage resumes: the cache and extraction pick up where they stopped, training resumes from its last
checkpoint, and a classifier already fitted on the same latents with the same grid is not fitted again.

``metrics.json`` (the issue's shape, plus details)::

    {"classifiers": {"svm": {"top1", "top5", "precision", "recall", "f1", ...}, "rf": ..., "xgboost": ..., "dt": ...},
     "baselines": {"raw_pixels": {"top1", "classifier", "by_classifier": {...}}, "random_encoder": {...}},
     "n_train": 0, "n_val": 0, "n_test": 0, "classes": [...], "config": {...}, ...}

``best`` and each baseline's ``top1`` are the test top-1 of the classifier chosen on the validation split (then
k-fold CV on train): test numbers choose nothing, so "encoder minus random" compares like with like.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from tinyact.classifiers.estimators import FACTORIES
from tinyact.data.manifest import Manifest
from tinyact.data.video import ClipSampling
from tinyact.errors import ConfigError, DatasetError
from tinyact.experiments.dataset import DatasetSource
from tinyact.experiments.table1_report import choose_on_val, format_table1
from tinyact.latents import LatentsFile

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

#: The suffix of a row (and of its folders) whose features were read mirrored too (``Table1Config.mirror``).
MIRRORED = "+mirror"

class Table1Config(DatasetSource):
    """Everything ``tinyact experiment table1`` runs with (echoed to ``RUN/config.yaml``)."""

    split_fractions: tuple[float, float, float] = Field((0.6, 0.2, 0.2), title="train/val/test for the stratified split")
    encoder: str = Field("zoo:everyday-64", title="Encoder: zoo:NAME (pretrained), a model file, or scratch",
                         description="scratch trains the paper's autoencoder on this dataset (the original Table 1)")
    adapt: str = Field("none", title="Adapt the encoder on this data's clips first: none, an SSL objective without "
                       "labels (ssl, rho-simclr, rho-byol, speed), or supervised (fine-tuning on the train labels)",
                       description="kept only when it raises the linear probe on val (RUN/adapt/adapt.json; "
                                   "supervised: RUN/finetune/finetune.json)")
    adapt_epochs: int = Field(5, ge=1, title="Adaptation epochs")
    objective: str = Field("reconstruction", title="scratch: how the encoder learns without labels",
                           description="reconstruction (the paper's autoencoder) or a self-supervised objective: "
                                       "ssl, rho-simclr, rho-byol, speed (tinyact.training.ssl)")
    kind: Literal["ae3d", "ae2d"] = Field("ae3d", title="Autoencoder kind (scratch)")
    preset: str = Field("fast", title="Autoencoder preset (scratch)")
    size: int | None = Field(None, ge=16, le=512, title="Crop size (px) [default: the encoder's; scratch: 112]")
    frames: int | None = Field(None, ge=2, le=64, title="Frames per clip [default: the encoder's; scratch: 16]")
    sampling: dict[str, Any] = Field(
        default_factory=dict, title="How the encoder reads a video (ClipSampling fields besides frames and size)",
        description="default: the zoo entry's own (everyday-64: the mean latent of 4 windows at 8 frames/s); "
        "uniform for scratch and model files. The pixel and motion-history baselines always read the frames "
        "spread over the whole video (uniform), their own best reading")
    epochs: int = Field(10, ge=1, title="Autoencoder epochs")
    batch_size: int = Field(8, ge=1, title="Autoencoder batch size")
    lr: float = Field(1e-3, gt=0, title="Autoencoder learning rate")
    precision: Literal["fp32", "bf16", "amp"] = Field("fp32", title="Training precision")
    device: str = Field("auto", title="Device (auto, cpu, cuda)")
    ae: dict[str, Any] = Field(default_factory=dict, title="Further AETrainConfig fields (e.g. a loss option)")
    seed: int = Field(0, title="Seed (split, training, folds, classifiers, random encoder)")
    workers: int = Field(0, ge=0, title="Decoder processes for the cache (0 = one per core)")
    train_workers: int = Field(0, ge=0, title="DataLoader workers while training")
    classifiers: list[str] = Field(["svm", "rf", "xgboost", "dt"], min_length=1, title="Classifiers")
    baseline_classifiers: list[str] | None = Field(None, title="Classifiers on the baselines [default: the same]")
    baselines: list[Literal["raw_pixels", "random_encoder", "motion_history"]] = Field(
        ["raw_pixels", "random_encoder", "motion_history"], title="Baselines")
    folds: int = Field(10, ge=2, title="Stratified k-fold CV on train (fewer when a class is smaller)")
    grids: dict[str, dict[str, Any]] = Field(default_factory=dict, title="Grid overrides per classifier kind")
    n_jobs: int = Field(1, ge=1, title="Parallel CV fits")
    extract_batch: int = Field(8, ge=1, title="Clips per encoder call when extracting")
    mirror: Literal["auto", "on", "off"] = Field(
        "auto", title="Also read every video mirrored left-right (features averaged with the mirror image's)",
        description="auto: every kind of features is classified both ways and the reading chosen on val with the "
        "classifier (rows `KIND+mirror`); off for classes that depend on direction (walking left / right), "
        "which auto also finds on val")


def _machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
        "loadavg": [round(v, 2) for v in load] if load else None,
    }


def make_manifest(cfg: Table1Config) -> Manifest:
    """Read the dataset in its layout (seeded stratified split for a folder without a split file) and write
    ``RUN/manifest.csv``."""
    from tinyact.data.layouts import read_layout

    entries, report = read_layout(cfg.layout, cfg.data, split_file=cfg.split_file, annotations=cfg.annotations,
                                  labels=cfg.labels, fractions=cfg.split_fractions, seed=cfg.seed)
    if not entries:
        raise DatasetError(f"no usable clips found in {cfg.data} ({report.missing} listed but missing)")
    manifest = Manifest(entries, Path(cfg.data).resolve())
    splits = {e.split for e in manifest.entries}
    for needed in ("train", "test"):
        if needed not in splits:
            raise DatasetError(f"{cfg.data}: no {needed} clips after splitting; Table 1 needs train and test")
    manifest.write(Path(cfg.out) / "manifest.csv")
    return Manifest.read(Path(cfg.out) / "manifest.csv")


def check_training_clips(manifest: Manifest, cache_dir: Path) -> None:
    """Raise :class:`DatasetError` naming every class left without a decodable train clip (the classifiers
    need each class in train), before any training time is spent."""
    from tinyact.data.cache import ClipCache

    skipped = ClipCache(cache_dir).skipped
    usable = {e.label for e in manifest.entries if e.split == "train" and e.clip_id not in skipped}
    missing = sorted({e.label for e in manifest.entries} - usable)
    if missing:
        raise DatasetError(
            f"class(es) without a usable training clip: {', '.join(missing)} (undecodable files are listed in "
            f"{Path(cache_dir) / 'skipped.csv'}); add train clips for them or remove them from the dataset"
        )


def architecture_overrides(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of an ``AutoEncoder3DConfig`` dict that fix its architecture (for a random twin of it)."""
    keys = ("channels", "stem_stride", "stem_kernel", "block_stride", "pool_size", "latent_dim", "in_channels",
            "normalization", "input_mode", "residual_gain", "seed_channels")
    return {k: tuple(config[k]) if isinstance(config[k], list) else config[k] for k in keys if k in config}


def train_encoder(cfg: Table1Config, manifest_path: Path, cache_dir: Path) -> tuple[Path, str]:
    """Train the encoder without labels (resuming a partial run in ``RUN/ae`` or ``RUN/ssl``); returns (model file,
    encoder hash). The reconstruction autoencoder, or a self-supervised objective chosen on val by its probe."""
    if cfg.objective != "reconstruction":
        from tinyact.training.ssl import SSLTrainConfig, train_ssl

        ssl_dir = Path(cfg.out) / "ssl"
        ssl_cfg = SSLTrainConfig.from_dict({
            "manifest": manifest_path, "out": ssl_dir, "objective": cfg.objective, "preset": cfg.preset,
            "size": cfg.size or 112, "frames": cfg.frames or 16, "epochs": cfg.epochs, "seed": cfg.seed,
            "device": cfg.device, "precision": cfg.precision, "model_overrides": cfg.ae.get("model_overrides", {}),
        }, source="table1 self-supervised settings")
        ssl_result = train_ssl(ssl_cfg, resume=(ssl_dir / "last.pt").is_file())
        model_file = ssl_result.best_model or ssl_result.model
        from tinyact.models.checkpoint import load_model

        return model_file, str(load_model(model_file)[1]["hash"])
    from tinyact.training.ae import AETrainConfig, train_autoencoder

    ae_dir = Path(cfg.out) / "ae"
    ae_cfg = AETrainConfig.from_dict({
        "manifest": manifest_path, "out": ae_dir, "kind": cfg.kind, "preset": cfg.preset, "size": cfg.size or 112,
        "frames": cfg.frames or 16, "batch_size": cfg.batch_size, "lr": cfg.lr, "epochs": cfg.epochs, "seed": cfg.seed,
        "workers": cfg.train_workers, "precision": cfg.precision, "device": cfg.device, "cache_dir": cache_dir,
        **cfg.ae,
    }, source="table1 autoencoder settings")
    resume = any(ae_dir.glob("**/*.pt")) if ae_dir.exists() else False
    result = train_autoencoder(ae_cfg, resume=resume)
    return Path(result.checkpoint), str(result.encoder_hash)


def _fit_or_reuse(latents: LatentsFile, kind: str, out: Path, cfg: Table1Config) -> dict[str, Any]:
    """Test metrics of ``kind`` on ``latents``: from an earlier identical fit in ``out`` when there is one."""
    from tinyact.classifiers.search import fit_classifier

    grid = cfg.grids.get(kind)
    key = {"encoder_hash": latents.encoder_hash, "sampling": latents.meta.get("sampling"), "grid": grid,
           "folds": cfg.folds, "seed": cfg.seed, "n": len(latents)}
    done = out / "table1_fit.json"
    if done.is_file():
        previous = json.loads(done.read_text())
        if previous.get("key") == json.loads(json.dumps(key, default=str)):
            logger.info("table1: reusing %s fit in %s", kind, out)
            return previous["summary"]
    result = fit_classifier(latents, kind, out, folds=cfg.folds, grid=grid, seed=cfg.seed, n_jobs=cfg.n_jobs)
    summary = result.summary()
    done.write_text(json.dumps({"key": key, "summary": summary}, indent=2, default=str))
    return summary


def _row(summary: dict[str, Any]) -> dict[str, Any]:
    metrics = summary["metrics"]
    row = {k: metrics[k] for k in ("top1", "top5", "precision", "recall", "f1") if k in metrics}
    cv_scores = [c["cv_top1"] for c in summary.get("candidates", []) if c.get("cv_top1") is not None]
    row["cv_top1"] = max(cv_scores) if cv_scores else None
    row.update(folds=summary["folds"], best_params=summary["best_params"], val_top1=summary["val_top1"],
               fit_seconds=summary["fit_seconds"])
    if summary.get("folds_note"):
        row["folds_note"] = summary["folds_note"]
    return row


def run_table1(cfg: Table1Config) -> dict[str, Any]:
    """Run the whole Table-1 pipeline into ``cfg.out``; returns the ``metrics.json`` dict."""
    from tinyact.classifiers.baselines import (
        motion_history_latents,
        random_encoder_latents,
        raw_pixel_latents,
    )
    from tinyact.data.cache import build_cache
    from tinyact.models.base import config_of
    from tinyact.training.extract import extract_latents
    from tinyact.zoo import encoder_sampling, resolve_encoder

    unknown = [k for k in [*cfg.classifiers, *(cfg.baseline_classifiers or [])] if k not in FACTORIES]
    if unknown:
        raise ConfigError(f"unknown classifier(s) {unknown}: use {', '.join(FACTORIES)}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    timings: dict[str, float] = {}

    def stage(name: str, started: float) -> None:
        timings[name] = round(time.perf_counter() - started, 1)
        logger.info("table1: %s done in %.1f s", name, timings[name])

    choice = resolve_encoder(cfg.encoder)
    pretrained = choice.model  # None for scratch
    if pretrained is None:
        size, frames, preset, overrides = cfg.size or 112, cfg.frames or 16, cfg.preset, cfg.ae.get("model_overrides", {})
    else:
        enc_config = config_of(pretrained).to_dict()
        size = cfg.size or int(enc_config["input_size"][0])
        frames = cfg.frames or int(enc_config["num_frames"])
        preset, overrides = str(enc_config.get("preset", "fast")), architecture_overrides(enc_config)
        if preset not in ("paper", "fast", "fast-motion"):
            preset = "fast"
        if size != int(enc_config["input_size"][0]):
            logger.warning("table1: the encoder was trained on %d px clips; running it at %d px as asked",
                           int(enc_config["input_size"][0]), size)
    t = time.perf_counter()
    manifest = make_manifest(cfg)
    stage("manifest", t)
    uniform = ClipSampling(num_frames=frames, size=size, strategy="uniform")
    sampling = encoder_sampling(choice.entry, frames, size, cfg.sampling)
    cache_dir = out / "cache"
    encoder_cache = cache_dir if sampling == uniform else out / f"cache-{sampling.strategy}"
    t = time.perf_counter()
    for folder, read in {cache_dir: uniform, encoder_cache: sampling}.items():
        read.save(folder)
        build_cache(manifest, folder, read, workers=cfg.workers)
    check_training_clips(manifest, cache_dir)
    stage("cache", t)

    checkpoint: nn.Module | Path
    if pretrained is None:
        t = time.perf_counter()
        checkpoint, encoder_hash = train_encoder(cfg, out / "manifest.csv", cache_dir)
        stage("train_autoencoder", t)
    else:
        checkpoint, encoder_hash = pretrained, str(choice.encoder_hash)
        if cfg.adapt == "supervised":
            from tinyact.models.checkpoint import load_model
            from tinyact.training.finetune import FinetuneConfig, finetune

            t = time.perf_counter()
            tuned = finetune(FinetuneConfig(
                manifest=out / "manifest.csv", out=out / "finetune", init=cfg.encoder, sampling=cfg.sampling,
                cache_dir=encoder_cache, epochs=cfg.adapt_epochs, seed=cfg.seed, device=cfg.device,
                workers=cfg.workers), resume=(out / "finetune" / "last.pt").is_file())
            checkpoint, encoder_hash = load_model(tuned.model)[0], tuned.encoder_hash
            stage("finetune", t)
        elif cfg.adapt != "none":
            from tinyact.models.checkpoint import load_model
            from tinyact.training.adapt import adapt_encoder

            t = time.perf_counter()
            adapted = adapt_encoder(pretrained, out / "manifest.csv", out / "adapt", objective=cfg.adapt,
                                    epochs=cfg.adapt_epochs, seed=cfg.seed, device=cfg.device)
            logger.info("table1: adaptation %s (val probe %.3f before, %.3f after); using the %s encoder",
                        cfg.adapt, adapted.before, adapted.after, adapted.kept)
            checkpoint, encoder_hash = load_model(adapted.model)[0], adapted.encoder_hash
            stage("adapt", t)

    # Each kind of features is read as recorded and/or mirrored (cfg.mirror); a row's key is KIND or KIND+mirror.
    readings = {"auto": {"": False, MIRRORED: True}, "on": {MIRRORED: True}, "off": {"": False}}[cfg.mirror]
    extractors: dict[str, tuple[ClipSampling, Callable[[ClipSampling, Path], LatentsFile]]] = {
        "trained": (sampling, lambda read, path: extract_latents(
            checkpoint, manifest, read, path, cache_dir=encoder_cache, batch_size=cfg.extract_batch,
            encoder_hash=encoder_hash)),
        "random_encoder": (sampling, lambda read, path: random_encoder_latents(
            manifest, read, path, kind=cfg.kind if choice.is_scratch else "ae3d", preset=preset, seed=cfg.seed,
            cache_dir=encoder_cache, batch_size=cfg.extract_batch,
            **overrides)),  # the same architecture as the encoder under test
        "raw_pixels": (uniform, lambda read, path: raw_pixel_latents(manifest, read, path, cache_dir=cache_dir)),
        "motion_history": (uniform, lambda read, path: motion_history_latents(manifest, read, path,
                                                                              cache_dir=cache_dir)),
    }
    latents: dict[str, dict[str, LatentsFile]] = {name: {} for name in ("trained", *cfg.baselines)}
    for suffix, mirror in readings.items():
        for name in latents:
            t = time.perf_counter()
            read, extract = extractors[name]
            latents[name][suffix] = extract(read.model_copy(update={"mirror": mirror}),
                                            out / "latents" / f"{name}{suffix}.npz")
            stage(f"extract_{name}{suffix}", t)

    def fit_all(name: str, kinds: list[str]) -> dict[str, dict[str, Any]]:
        """Every classifier of ``kinds`` on every reading of the ``name`` features: ``{KIND[+mirror]: row}``."""
        rows = {}
        for kind in kinds:
            for suffix, files in latents[name].items():
                t = time.perf_counter()
                rows[kind + suffix] = _row(_fit_or_reuse(files, kind, out / "classifiers" / name / (kind + suffix), cfg))
                stage(f"fit_{name}_{kind}{suffix}", t)
        return rows

    trained = next(iter(latents["trained"].values()))
    classifiers = fit_all("trained", cfg.classifiers)
    baselines: dict[str, dict[str, Any]] = {}
    for name in cfg.baselines:
        by_classifier = fit_all(name, cfg.baseline_classifiers or cfg.classifiers)
        best = choose_on_val(by_classifier)
        baselines[name] = {"top1": by_classifier[best]["top1"], "classifier": best, "by_classifier": by_classifier,
                           "encoder_hash": next(iter(latents[name].values())).encoder_hash}

    best_kind = choose_on_val(classifiers)
    counts = {split: int((trained.splits == split).sum()) for split in ("train", "val", "test")}
    metrics: dict[str, Any] = {
        "classifiers": classifiers,
        "baselines": baselines,
        "n_train": counts["train"],
        "n_val": counts["val"],
        "n_test": counts["test"],
        "classes": list(trained.label_names),
        "best": {"classifier": best_kind, "top1": classifiers[best_kind]["top1"]},
        "encoder": {"spec": cfg.encoder, "adapt": cfg.adapt, "objective": cfg.objective if choice.is_scratch else None, "checkpoint": str(checkpoint) if choice.is_scratch else cfg.encoder,
                    "hash": encoder_hash, "kind": cfg.kind if choice.is_scratch else "ae3d", "preset": preset,
                    "size": size, "frames": frames, "epochs": cfg.epochs if choice.is_scratch else None,
                    "sampling": sampling.model_dump(mode="json", exclude={"threads", "num_frames", "size", "mirror"}),
                    "mirror": cfg.mirror},
        "skipped_clips": len(trained.meta.get("skipped", {})),
        "timings_s": timings,
        "machine": _machine(),
        "config": cfg.model_dump(mode="json"),
    }
    if "random_encoder" in baselines:
        metrics["trained_minus_random_top1"] = classifiers[best_kind]["top1"] - baselines["random_encoder"]["top1"]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    (out / "table1.md").write_text(format_table1(metrics))
    logger.info("table1: best %s top-1 %.3f; wrote %s and %s", best_kind, classifiers[best_kind]["top1"],
                out / "metrics.json", out / "table1.md")
    write_run_bundle(out)
    return metrics


def write_run_bundle(out: Path) -> Path:
    """``RUN/bundle/``: the deployable bundle of ``metrics["best"]`` (:mod:`tinyact.classifiers.bundle`)."""
    from tinyact.classifiers.bundle import bundle_from_table1

    bundle = bundle_from_table1(out, out / "bundle")
    logger.info("table1: wrote the bundle %s", bundle.path)
    return bundle.path
