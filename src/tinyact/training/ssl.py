"""Self-supervised training of the edge encoder (``tinyact train ssl``): its config, run folder and epochs.

The parts live beside it: the window cache, views and augmentations in :mod:`tinyact.training.ssl_views`,
the objectives in :mod:`tinyact.training.ssl_objectives`, the per-epoch probe in
:mod:`tinyact.training.ssl_probe`, label-free adaptation (``tinyact train adapt``) in
:mod:`tinyact.training.adapt`; the epochs run in :mod:`tinyact.training.loop`.

Reconstruction training never beat random weights for actions (docs/MODELS.md); these objectives learn from
*videos* instead, by comparing or ordering clips cut from one video::

    manifest ─► window cache (per video, W frames spread over the whole video, decoded once; resumable)
       └─ per step, B videos ─► ρ views each: T frames at stride s from a random start, maybe reversed
            ─► augment (random resized crop, flip, colour jitter, greyscale; one draw per clip, all frames)
            ─► normalise ─► VideoAutoEncoder3D.encode ─► z [ρ·B, 1024]
                 rho-byol:   projector ─► predictor ─► cosine to the EMA target's projection of the other views
                 rho-simclr: projector ─► InfoNCE (the other views of the same video are the positives)
                 speed:      linear ─► which of {stride s₁, s₂, …, reversed} the clip was cut at
       └─ per epoch: linear probe and k-NN on latents (fit on the train split, scored on val), when labelled

Run folder ``cfg.out``::

    config.yaml     the resolved config
    last.pt         resume checkpoint (encoder, heads, EMA target, optimiser, RNG states, epoch, best)
    model.pt        model file (tinyact.models.checkpoint format) after the latest epoch
    best.pt         model file of the epoch with the best linear probe (when the manifest has labels)
    metrics.csv     per epoch (row 0 = the starting weights): loss, probe_linear, probe_knn, z_std, clips/s …
    curves.png      loss and probe accuracy against epoch

Exact resume: epoch ``e``'s order, views and augmentations come from a generator seeded with ``(seed, e)``;
``last.pt`` holds everything else, so ``train_ssl(cfg, resume=True)`` after a kill ends with the same weights
as an uninterrupted run (tested).
"""

from __future__ import annotations

import copy
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from tinyact.config import TinyActConfig
from tinyact.data.cache import ClipCache
from tinyact.data.manifest import SPLITS, Manifest
from tinyact.data.transforms import normalize
from tinyact.data.video import ClipSampling
from tinyact.errors import ConfigError
from tinyact.models.autoencoder3d import PRESETS, VideoAutoEncoder3D
from tinyact.models.checkpoint import load_model, save_model, state_dict_hash
from tinyact.training.loop import (
    Epoch,
    Objective,
    Step,
    Trainer,
    checkpoint_state,
    prepare_device,
    refuse_overwrite,
    restore,
    run_epochs,
)
from tinyact.training.runtime import (
    MetricsLog,
    Precision,
    autocast,
    epoch_generator,
    load_checkpoint,
    make_optimizer,
    seed_everything,
    warmup_cosine_lr,
)
from tinyact.training.ssl_objectives import (
    RECOMMENDED,
    SSLHeads,
    ema_momentum,
    ema_update,
    objective_loss,
    resolve_objective,
)
from tinyact.training.ssl_probe import ProbeSet, load_probe_set, probe_model
from tinyact.training.ssl_views import augment_clips, build_window_cache, sample_views

logger = logging.getLogger(__name__)

ObjectiveName = Literal["ssl", "rho-byol", "rho-simclr", "speed"]

#: Fields that change the model, the data or the views; a resumed run must keep them.
_SHAPE_FIELDS = ("objective", "init", "preset", "size", "frames", "model_overrides", "window_frames", "windows",
                 "window_stride", "rho", "strides", "seed", "train_splits", "proj_dim", "proj_hidden")


class SSLTrainConfig(TinyActConfig):
    """What ``tinyact train ssl`` trains (YAML keys = field names)."""

    manifest: Path = Field(..., title="Manifest CSV", description="from `tinyact data manifest`; labels only feed the probe")
    out: Path = Field(..., title="Run folder")
    objective: ObjectiveName = Field("ssl", title="Objective", description=f"ssl (= {RECOMMENDED}), rho-byol, rho-simclr or speed")
    init: str | None = Field(None, title="Starting encoder", description="zoo:NAME or a model file; none = random weights")
    preset: str = Field("fast-motion", title="VideoAutoEncoder3D preset (ignored with init)")
    model_overrides: dict[str, Any] = Field({}, title="Model config overrides (ignored with init)")
    size: int = Field(112, ge=8, le=1024, title="Crop size (px)")
    frames: int = Field(16, ge=2, le=128, title="Frames per clip (T)")
    window_frames: int | None = Field(None, ge=2, le=512, title="Frames cached per window (W)", description="default 3·T")
    windows: int = Field(1, ge=1, le=64, title="Windows per video", description="1 = W frames over the whole video; "
                         "K > 1 = K dense windows (long footage)")
    window_stride: int = Field(1, ge=1, le=64, title="Video frames between window frames when windows > 1")
    rho: int = Field(2, ge=2, le=8, title="Views per video (ρ)")
    strides: list[int] = Field([1, 2, 3], min_length=1, title="View strides in window frames",
                               description="each view draws one; speed's classes are these plus 'reversed'")
    crop_scale: tuple[float, float] = Field((0.35, 1.0), title="Random resized crop: area share range")
    flip_p: float = Field(0.5, ge=0, le=1, title="Horizontal flip probability")
    jitter: float = Field(0.4, ge=0, lt=1, title="Brightness/contrast/saturation jitter strength")
    jitter_p: float = Field(0.8, ge=0, le=1, title="Colour jitter probability")
    grey_p: float = Field(0.2, ge=0, le=1, title="Greyscale probability")
    batch_size: int = Field(16, ge=2, title="Videos per step (ρ views each)")
    lr: float = Field(1e-3, gt=0, title="Peak AdamW learning rate (cosine decay, warm-up)")
    weight_decay: float = Field(1e-4, ge=0, title="AdamW weight decay")
    warmup_epochs: float = Field(1.0, ge=0, title="Linear warm-up (epochs)")
    epochs: int = Field(10, ge=1, title="Epochs")
    ema: float = Field(0.99, gt=0, lt=1, title="rho-byol: starting EMA momentum (cosine to 1)")
    temperature: float = Field(0.1, gt=0, title="rho-simclr: InfoNCE temperature")
    proj_hidden: int = Field(1024, ge=8, title="Projector/predictor hidden width")
    proj_dim: int = Field(256, ge=8, title="Projection width")
    seed: int = Field(0, title="Random seed")
    device: str = Field("auto", title="Device (auto, cpu, cuda)")
    precision: Precision = Field("fp32", title="fp32, bf16 (CPU or GPU) or amp (GPU)")
    threads: int | None = Field(None, ge=1, title="torch CPU threads")
    workers: int = Field(0, ge=0, title="Decoder processes for the window cache (0 = one per core)")
    cache_dir: Path | None = Field(None, title="Window cache folder", description="built if missing; default OUT/windows")
    train_splits: list[str] = Field(["train"], min_length=1, title="Splits whose videos train (labels unused)")
    probe: bool = Field(True, title="Probe every epoch", description="linear probe + k-NN, fit on probe_train_split, scored on probe_val_split")
    probe_train_split: str = Field("train", title="Split the probe is fitted on")
    probe_val_split: str = Field("val", title="Split the probe is scored on")
    max_batches: int | None = Field(None, ge=1, title="Stop each epoch after this many steps (smoke runs)")

    @model_validator(mode="after")
    def _views_fit_windows(self) -> SSLTrainConfig:
        needed = (self.frames - 1) * max(self.strides) + 1
        if needed > self.window():
            raise ValueError(f"a view at stride {max(self.strides)} spans {needed} window frames but windows hold "
                             f"{self.window()}; raise window_frames or lower strides")
        return self

    def window(self) -> int:
        """Frames per cached window (W)."""
        return self.window_frames or 3 * self.frames

    def sampling(self) -> ClipSampling:
        """How windows are read: W instants over the video (repeats for short videos), or K dense windows."""
        if self.windows == 1:
            return ClipSampling(strategy="uniform", num_frames=self.window(), size=self.size)
        return ClipSampling(strategy="multi", num_frames=self.window(), num_clips=self.windows,
                            stride=self.window_stride, size=self.size)


@dataclass
class SSLTrainResult:
    """Where a run left its model files, and what they measured."""

    model: Path  # the latest epoch's model file
    best_model: Path | None  # the best-probe epoch's model file (None without labels)
    run_dir: Path
    metrics_csv: Path
    encoder_hash: str
    metrics: dict[str, float] = field(default_factory=dict)  # the last epoch's row
    initial: dict[str, float] = field(default_factory=dict)  # row 0: the starting weights
    best: dict[str, float] = field(default_factory=dict)  # the best-probe epoch's row


def load_start_encoder(spec: str) -> VideoAutoEncoder3D:
    """``zoo:NAME`` or a model file -> the ``VideoAutoEncoder3D`` to start from."""
    if spec.startswith("zoo:"):
        from tinyact.zoo import resolve_encoder

        model = resolve_encoder(spec).model
    else:
        model, _ = load_model(spec)
    if not isinstance(model, VideoAutoEncoder3D):
        raise ConfigError(f"encoder {spec!r} is not a VideoAutoEncoder3D; self-supervised training needs one")
    return model


def build_model(cfg: SSLTrainConfig) -> VideoAutoEncoder3D:
    """The encoder ``cfg`` trains: ``cfg.init`` loaded, or the preset with random weights (seeded by the caller)."""
    if cfg.init:
        model = load_start_encoder(cfg.init)
        config = model.config
        if (config.num_frames, tuple(config.input_size)) != (cfg.frames, (cfg.size, cfg.size)):
            raise ConfigError(f"encoder {cfg.init} takes {config.num_frames} frames of {tuple(config.input_size)} px; "
                              f"set frames: {config.num_frames} and size: {config.input_size[0]}")
        return model
    if cfg.preset not in PRESETS:
        raise ConfigError(f"unknown preset {cfg.preset!r}: use one of {', '.join(PRESETS)}")
    overrides: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model_overrides.items()}
    return VideoAutoEncoder3D(replace(PRESETS[cfg.preset], num_frames=cfg.frames, input_size=(cfg.size, cfg.size), **overrides))


def _check_resumable(saved: dict[str, Any], cfg: SSLTrainConfig) -> None:
    now = cfg.model_dump(mode="json")
    changed = [k for k in _SHAPE_FIELDS if saved.get(k) != now.get(k)]
    if changed:
        raise ConfigError(f"cannot resume {cfg.out}: {', '.join(changed)} differ from the checkpoint "
                          f"({', '.join(f'{k}={saved.get(k)!r}' for k in changed)}); use another --out")


class SSLObjective(Objective):
    """One self-supervised objective on the window cache: ρ views per video, a per-step warm-up and cosine
    schedule, the EMA target for ρBYOL, and the probe (when labelled) that picks ``best.pt``."""

    sum_keys = ("loss", "z_std", "clips")

    def __init__(self, cfg: SSLTrainConfig, objective: str, model: VideoAutoEncoder3D, heads: SSLHeads, trainer: Trainer,
                 device: torch.device, cache: ClipCache, train_ids: list[str], probe: ProbeSet | None) -> None:
        self.cfg, self.objective, self.model, self.heads, self.trainer = cfg, objective, model, heads, trainer
        self.label, self.epochs, self.device = f"ssl {objective}", cfg.epochs, device
        self.cache, self.train_ids, self.probe = cache, train_ids, probe
        self.target: VideoAutoEncoder3D | None = None
        self.target_projector: nn.Module | None = None
        if objective == "rho-byol":  # the momentum encoder and projector, never trained by gradients
            self.target, self.target_projector = copy.deepcopy(model), copy.deepcopy(heads.projector)
            for p in [*self.target.parameters(), *self.target_projector.parameters()]:
                p.requires_grad_(False)
        self.stats = model.config.normalization
        steps = max(1, len(train_ids) // cfg.batch_size)
        self.steps_per_epoch = min(steps, cfg.max_batches) if cfg.max_batches else steps
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.best: dict[str, float] = {}
        self.weights_hash = ""
        self.generator = torch.Generator()
        self.order: list[int] = []
        self.done = 0
        self.lr = self.momentum = float("nan")

    def modules(self) -> dict[str, nn.Module]:
        """The modules a checkpoint holds, by key."""
        modules = {"model": self.model, "heads": self.heads}
        if self.target is not None and self.target_projector is not None:
            modules |= {"target": self.target, "target_projector": self.target_projector}
        return modules

    def begin_epoch(self, epoch: int) -> Epoch:
        self.generator = epoch_generator(self.cfg.seed, epoch)
        self.order = torch.randperm(len(self.train_ids), generator=self.generator).tolist()
        self.model.train()
        self.heads.train()
        if self.target is not None and self.target_projector is not None:
            self.target.train()  # BatchNorm on the batch, as the online network
            self.target_projector.train()
        self.lr = self.momentum = float("nan")
        return Epoch([(epoch, step) for step in range(self.steps_per_epoch)], self.steps_per_epoch, unit="step")

    def step(self, batch: Any) -> Step:
        cfg, (epoch, step) = self.cfg, batch
        self.done = epoch * self.steps_per_epoch + step
        self.lr = warmup_cosine_lr(cfg.lr, self.done, self.total_steps, cfg.warmup_epochs * self.steps_per_epoch)
        for group in self.trainer.optimizer.param_groups:
            group["lr"] = self.lr
        batch_ids = [self.train_ids[i] for i in self.order[step * cfg.batch_size : (step + 1) * cfg.batch_size]]
        windows = torch.from_numpy(np.stack([self.cache.get_array(cid) for cid in batch_ids]))  # [B, K, W, 3, S, S]
        views, labels = sample_views(windows, cfg.frames, cfg.strides, cfg.rho, self.generator,
                                     speed_classes=self.objective == "speed")  # [ρ, B, T, 3, S, S]
        flat = augment_clips(views.flatten(0, 1), self.generator, crop_scale=cfg.crop_scale, flip_p=cfg.flip_p,
                             jitter=cfg.jitter, jitter_p=cfg.jitter_p, grey_p=cfg.grey_p)  # [ρB, T, 3, S, S]
        x = normalize(flat.to(self.device, non_blocking=True), self.stats)
        with autocast(self.device, cfg.precision):
            loss, z = objective_loss(self.objective, self.model, self.heads, x, labels.flatten().to(self.device),
                                     views.shape[0], target=self.target, target_projector=self.target_projector,
                                     temperature=cfg.temperature)
        # Collapse monitor: the std of the L2-normalised latent per dimension (≈ 1/√D when spread, 0 collapsed).
        z_std = float(F.normalize(z.detach().float(), dim=1).std(0).mean())
        return Step(loss, {"loss": float(loss.detach()) * len(flat), "z_std": z_std * len(flat), "clips": len(flat)})

    def after_step(self) -> bool:
        if self.target is not None and self.target_projector is not None:
            self.momentum = ema_momentum(self.cfg.ema, self.done + 1, self.total_steps)
            ema_update(self.target, self.model, self.momentum)
            ema_update(self.target_projector, self.heads.projector, self.momentum)
        return False

    def postfix(self, sums: Mapping[str, float]) -> str:
        return f"loss {sums['loss'] / sums['clips']:.4f}"

    def end_epoch(self, epoch: int, sums: dict[str, float], seconds: float) -> dict[str, float]:
        cfg, run_dir, clips = self.cfg, Path(self.cfg.out), sums["clips"]
        row = {"epoch": epoch + 1, "loss": sums["loss"] / max(1, clips), "z_std": sums["z_std"] / max(1, clips),
               **(probe_model(self.model, self.probe, self.device) if self.probe else {}),
               "clips_per_s": clips / seconds if seconds > 0 else float("nan"), "epoch_s": seconds, "lr": self.lr}
        if self.objective == "rho-byol":
            row["ema"] = self.momentum
        extra = {"epoch": epoch + 1, "metrics": row, "trained_with": cfg.model_dump(mode="json"),
                 "objective": self.objective}
        self.weights_hash = save_model(run_dir / "model.pt", self.model, extra=extra)
        if self.probe is not None and row["probe_linear"] > self.best.get("probe_linear", -1.0):
            self.best = dict(row)
            shutil.copyfile(run_dir / "model.pt", run_dir / "best.pt")
        logger.info("ssl: epoch %d/%d %s", epoch + 1, cfg.epochs,
                    " ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch"))
        return row

    def plot(self, log: MetricsLog, epoch: int, seconds: float) -> None:
        cfg = self.cfg
        groups = {"loss": ["loss"], **({"probe top-1 (val)": ["probe_linear", "probe_knn"]} if self.probe else {})}
        log.plot(Path(cfg.out) / "curves.png", groups,
                 title=f"{self.objective} {cfg.preset if not cfg.init else cfg.init} {cfg.size}px T={cfg.frames}")

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        return checkpoint_state(self.modules(), self.trainer, rng=True, epoch=epoch + 1, best=self.best,
                                objective=self.objective, config=self.cfg.model_dump(mode="json"))


def train_ssl(
    cfg: SSLTrainConfig,
    resume: bool = False,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> SSLTrainResult:
    """Train the encoder with ``cfg.objective`` (see the module docstring); returns its model files and metrics.

    Args:
        cfg: the run's config (echoed to ``cfg.out/config.yaml``).
        resume: continue from ``cfg.out/last.pt`` exactly; without it a folder that holds a run is refused.
        on_epoch_end: called with ``(epoch, metrics row)`` after each epoch's checkpoint is written.

    Raises:
        ConfigError: a run is already in ``cfg.out`` (without ``resume``), the checkpoint was trained with other
            shape fields or objective, unknown splits, fewer than 2 videos, or ``amp`` without a GPU.
    """
    objective = resolve_objective(cfg.objective)
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / "last.pt"
    refuse_overwrite(ckpt_path, resume)
    unknown = [s for s in [*cfg.train_splits, cfg.probe_train_split, cfg.probe_val_split] if s not in SPLITS]
    if unknown:
        raise ConfigError(f"unknown split(s) {unknown}; splits are {', '.join(SPLITS)}")
    device = prepare_device(cfg.device, cfg.precision, cfg.threads)
    state = load_checkpoint(ckpt_path, map_location=device) if resume and ckpt_path.exists() else None
    if state is not None:
        _check_resumable(state["config"], cfg)
        if state.get("objective", objective) != objective:
            raise ConfigError(f"cannot resume {cfg.out}: it trained {state['objective']!r}, now {cfg.objective!r} "
                              f"means {objective!r}; use another --out")

    manifest = Manifest.read(cfg.manifest)
    cfg.save(run_dir)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else run_dir / "windows"
    build_window_cache(manifest, cache_dir, cfg.sampling(), workers=cfg.workers)
    cache = ClipCache(cache_dir)
    train_ids = [e.clip_id for e in manifest.split(*cfg.train_splits).entries if e.clip_id in cache]
    if len(train_ids) < 2:
        raise ConfigError(f"{cfg.manifest}: {len(train_ids)} decodable video(s) in split(s) {cfg.train_splits}; "
                          "self-supervised training needs at least 2")
    probe = load_probe_set(manifest, cache, cfg.frames, cfg.probe_train_split, cfg.probe_val_split) if cfg.probe else None
    if probe is not None and not probe.usable:
        logger.info("ssl: no labelled %s/%s clips for the probe; training without the readout",
                    cfg.probe_train_split, cfg.probe_val_split)
        probe = None

    seed_everything(cfg.seed)
    model = build_model(cfg).to(device)
    heads = SSLHeads(objective, model.config.latent_dim, cfg).to(device)
    encoder_params = [p for m in model.encoder_modules() for p in m.parameters()]
    trainer = Trainer(
        optimizer=make_optimizer([*encoder_params, *heads.parameters()], "adamw", cfg.lr, cfg.weight_decay),
        scaler=torch.amp.GradScaler("cuda", enabled=cfg.precision == "amp"),
        checkpoint=ckpt_path,
        log=MetricsLog(run_dir / "metrics.csv"),
    )
    log = trainer.log
    assert log is not None
    task = SSLObjective(cfg, objective, model, heads, trainer, device, cache, train_ids, probe)
    start_epoch = 0
    if state is not None:
        restore(state, task.modules(), trainer, rng=True)
        start_epoch, task.best = int(state["epoch"]), dict(state["best"])
        logger.info("ssl: resuming %s after epoch %d of %d", run_dir, start_epoch, cfg.epochs)
    log.truncate(start_epoch + 1)  # row 0 (the starting weights) and every finished epoch stay

    if start_epoch == 0:
        log.rows = []
        log.append({"epoch": 0, **(probe_model(model, probe, device) if probe else {})})
    initial = dict(log.rows[0]) if log.rows else {}
    previous: dict[str, float] = log.rows[-1] if log.rows else {}
    row = run_epochs(task, range(start_epoch, cfg.epochs), trainer, on_epoch_end) or previous
    # A resumed run that had already finished trained nothing: hash the weights it loaded.
    weights_hash = task.weights_hash or state_dict_hash(model.state_dict())
    best_model = run_dir / "best.pt" if (run_dir / "best.pt").is_file() else None
    return SSLTrainResult(model=run_dir / "model.pt", best_model=best_model, run_dir=run_dir, metrics_csv=log.path,
                          encoder_hash=weights_hash, metrics=row, initial=initial, best=task.best)


__all__ = ["RECOMMENDED", "SSLTrainConfig", "SSLTrainResult", "build_model", "load_start_encoder", "train_ssl"]
