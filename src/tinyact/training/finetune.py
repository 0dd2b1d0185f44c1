"""Supervised fine-tuning of a pretrained encoder on a user's labelled clips (``tinyact train finetune``).

::

    zoo:NAME / model.pt ─► the manifest's clips read as the encoder reads them (a zoo entry's windows), cached
      ─► before: linear probe of the start (logistic regression on the train windows' latents, top-1 on val's)
      ─► cross-entropy on every train window, one window per example (the pretraining objective: cosine
         learning rate, random crops; left-right flips only when asked, as classes may depend on direction)
      ─► every epoch: the head's top-1 on the val windows picks the epoch ─► after: the same probe on it
      ─► OUT/model.pt: the fine-tuned encoder if its probe beats the start's, else the start (OUT/finetune.json);
         OUT/epochs/: the best epoch's encoder and the curves, OUT/last.pt: resume

This is what a user of mmaction2 does with a Kinetics checkpoint and a few labelled clips of their own: the
encoder keeps what pretraining taught it and learns the user's classes. Each window counts as one example because
that is what an edge camera sends. A run resumes from ``OUT/last.pt`` when called again with ``resume``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch.utils.data import DataLoader

from tinyact.config import TinyActConfig
from tinyact.data.cache import ClipCache, build_cache
from tinyact.data.datasets import CachedWindows
from tinyact.data.manifest import Manifest
from tinyact.data.video import ClipSampling
from tinyact.errors import ConfigError
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.checkpoint import save_model
from tinyact.training.loop import run_epochs
from tinyact.training.pretrain import PretrainConfig, encode_clips, resume_objective, supervised_objective
from tinyact.training.runtime import Precision, pick_device, seed_everything
from tinyact.training.ssl_probe import linear_probe

logger = logging.getLogger(__name__)


class FinetuneConfig(TinyActConfig):
    """What ``tinyact train finetune`` runs with (echoed to ``OUT/config.yaml``)."""

    manifest: Path = Field(..., title="Manifest CSV with labels (train and val splits)")
    out: Path = Field(..., title="Run folder")
    init: str = Field("zoo:everyday-64", title="Encoder to start from: zoo:NAME or a model file")
    sampling: dict[str, Any] = Field(
        default_factory=dict, title="How clips are read (ClipSampling fields)",
        description="default: the zoo entry's own reading (everyday-64: 4 windows at 8 frames/s, each a training "
                    "example); frames and size are the encoder's")
    cache_dir: Path | None = Field(None, title="Clip cache folder [default: OUT/cache]")
    epochs: int = Field(8, ge=1, title="Epochs")
    batch_size: int = Field(16, ge=2, title="Windows per batch")
    lr: float = Field(2e-3, gt=0, title="Peak learning rate (AdamW, cosine)")
    lr_min: float = Field(1e-5, ge=0, title="Final learning rate")
    weight_decay: float = Field(0.05, ge=0, title="AdamW weight decay")
    label_smoothing: float = Field(0.1, ge=0, lt=1, title="Label smoothing")
    dropout: float = Field(0.5, ge=0, lt=1, title="Dropout before the head")
    crop_scale: float = Field(0.85, gt=0, le=1, title="Smallest random crop (share of the side) per batch")
    frozen_stages: int = Field(
        0, ge=0, title="Encoder stages kept as pretrained (the stem first)",
        description="their weights and BatchNorm statistics stay; training back-propagates through fewer layers "
                    "(faster) and fewer weights fit a small set")
    flip: bool = Field(False, title="Random left-right flips",
                       description="only when no class depends on direction (never for 'walking left' vs 'right')")
    seed: int = Field(0, title="Seed")
    device: str = Field("auto", title="Device (auto, cpu, cuda)")
    precision: Precision = Field("fp32", title="fp32, bf16 (CPU or GPU) or amp (GPU)")
    threads: int = Field(0, ge=0, title="torch CPU threads (0 = torch's default)")
    workers: int = Field(0, ge=0, title="Decoder processes for the cache (0 = one per core)")


@dataclass
class FinetuneResult:
    """What :func:`finetune` kept and why."""

    model: Path  # OUT/model.pt: the kept encoder
    kept: Literal["finetuned", "original"]
    before: float  # linear probe of the start on the val windows
    after: float  # the same probe on the chosen epoch
    epoch: int  # the chosen epoch (0-based)
    encoder_hash: str
    report: Path  # OUT/finetune.json


def window_probe(model: VideoAutoEncoder3D, train: CachedWindows, val: CachedWindows, device: torch.device) -> float:
    """Top-1 on the val windows of a logistic regression fitted on the train windows' latents (frozen encoder)."""
    def latents(windows: CachedWindows) -> tuple[np.ndarray, np.ndarray]:
        # One batch of windows in memory at a time: a user's set can hold many thousands of them.
        batches = [(encode_clips(model, clips, device), labels.numpy()) for clips, labels in DataLoader(windows, 64)]
        return np.concatenate([z for z, _ in batches]), np.concatenate([y for _, y in batches])

    return linear_probe(*latents(train), *latents(val))


def _start_encoder(spec: str) -> VideoAutoEncoder3D:
    """The encoder to fine-tune, in float32 (zoo weights are stored in float16)."""
    from tinyact.zoo import load_model_spec

    model, _ = load_model_spec(spec)
    if not isinstance(model, VideoAutoEncoder3D):
        raise ConfigError(f"fine-tuning starts from a VideoAutoEncoder3D, not a {type(model).__name__} ({spec})")
    return model.float()


def labelled_windows(cfg: FinetuneConfig, manifest: Manifest,
                     model: VideoAutoEncoder3D) -> tuple[CachedWindows, CachedWindows, ClipSampling]:
    """The train and val windows of ``manifest``, read as ``cfg.init`` reads videos and cached, and that reading.

    Raises:
        ConfigError: when no train or no val clip could be decoded.
    """
    from tinyact.zoo import encoder_sampling, get_entry

    entry = get_entry(cfg.init[4:]) if cfg.init.startswith("zoo:") else None
    reading = encoder_sampling(entry, model.config.num_frames, int(model.config.input_size[0]), cfg.sampling)
    cache_dir = Path(cfg.cache_dir or Path(cfg.out) / "cache")
    build_cache(manifest, cache_dir, reading, workers=cfg.workers)
    cache = ClipCache(cache_dir)
    train, val = CachedWindows(manifest.split("train"), cache), CachedWindows(manifest.split("val"), cache)
    for name, windows in (("train", train), ("val", val)):
        if not len(windows):
            raise ConfigError(f"{cfg.manifest}: no {name} clip could be decoded (see {cache_dir / 'skipped.csv'})")
    return train, val, reading


def finetune(cfg: FinetuneConfig, resume: bool = False) -> FinetuneResult:
    """Fine-tune ``cfg.init`` on the labelled windows of ``cfg.manifest`` into ``cfg.out``.

    Raises:
        ConfigError: when train has fewer than two classes or val has no clip (nothing to choose an epoch on), or
            ``frozen_stages`` would leave no stage to train.
    """
    out = Path(cfg.out)
    manifest = Manifest.read(cfg.manifest)
    train_manifest, val_manifest = manifest.split("train"), manifest.split("val")
    if len({e.label for e in train_manifest.entries}) < 2 or not val_manifest.entries:
        raise ConfigError(f"{cfg.manifest}: fine-tuning needs labelled train clips of at least 2 classes and some val "
                          f"clips to choose the epoch on (found {len(train_manifest)} train, {len(val_manifest)} val)")
    (out / "epochs").mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    model = _start_encoder(cfg.init).to(device)
    try:
        model.freeze_stages(cfg.frozen_stages)
    except ValueError as err:
        raise ConfigError(f"{cfg.init}: {err}") from err
    train, val, reading = labelled_windows(cfg, manifest, model)
    before = window_probe(model, train, val, device)
    logger.info("finetune: %d train / %d val windows; the start's probe on val: %.1f %%", len(train), len(val),
                100 * before)

    # The pretraining objective, on the user's windows, choosing the epoch by the head's val top-1; it writes the
    # best epoch's encoder to OUT/epochs/model.pt (kept apart from OUT/model.pt, so a resumed run still has it).
    # The training settings both configs name; init is the model already loaded here, not a file to start from.
    shared = (set(FinetuneConfig.model_fields) & set(PretrainConfig.model_fields)) - {"out", "threads", "init"}
    settings = PretrainConfig(corpus=cfg.manifest, out=out / "epochs", select_on="val",
                              **cfg.model_dump(include=shared))
    objective = supervised_objective(settings, model, train, DataLoader(val, batch_size=64), [], device,
                                     out / "last.pt", out / "metrics.csv")
    objective.label = "finetune"
    start_epoch = resume_objective(objective, resume)
    run_epochs(objective, range(start_epoch, cfg.epochs), objective.trainer)

    chosen = _start_encoder(str(out / "epochs" / "model.pt"))
    after = window_probe(chosen.to(device), train, val, device)
    kept: Literal["finetuned", "original"] = "finetuned" if after > before else "original"
    kept_model = chosen if kept == "finetuned" else _start_encoder(cfg.init)  # training changed `model` in place
    kept_file = out / "model.pt"
    encoder_hash = save_model(kept_file, kept_model, extra={
        "finetune": cfg.model_dump(mode="json"), "label_names": list(train.label_names), "kept": kept,
        "epoch": int(objective.best["epoch"]), "source": cfg.init})
    report = {"init": cfg.init, "kept": kept, "before": before, "after": after, "epochs": cfg.epochs,
              "epoch": int(objective.best["epoch"]), "val_head_top1": objective.best.get("val_top1"),
              "probe": "logistic regression on the train windows' latents, top-1 on the val windows",
              "train_windows": len(train), "val_windows": len(val), "reading": reading.model_dump(mode="json"),
              "model": str(kept_file), "encoder_hash": encoder_hash}
    (out / "finetune.json").write_text(json.dumps(report, indent=2))
    (logger.info if kept == "finetuned" else logger.warning)(
        "finetune: probe on val %.1f %% before, %.1f %% after (epoch %d); kept the %s encoder in %s",
        100 * before, 100 * after, objective.best["epoch"] + 1, kept, kept_file)
    return FinetuneResult(kept_file, kept, before, after, int(objective.best["epoch"]), encoder_hash,
                          out / "finetune.json")
