"""Unsupervised autoencoder training (``tinyact train ae``): Adam on the reconstruction MSE.

::

    manifest ─► clip cache (built once if missing) ─► uint8 clips [B, T, 3, S, S]
       ├─ normalise (ImageNet)  ─► model ─► (z, x̂ in [0, 1])
       └─ /255 (target in [0, 1]) ──────────┴─► MSE ─► Adam

The encoder sees ImageNet-normalised input; the loss compares the sigmoid reconstruction with the clip in
``[0, 1]``, so MSE and PSNR are on the usual 0–1 pixel scale.

Run folder ``cfg.out``::

    config.yaml          the resolved config
    checkpoint.pt        model, optimiser, grad scaler, RNG states and epoch (rewritten after every epoch)
    model.pt             the model file (tinyact.models.checkpoint format) after the latest epoch
    metrics.csv          per epoch: train/val MSE and PSNR, clips/s, seconds, learning rate
    loss_curve.png       MSE and PSNR against epoch (redrawn after each epoch longer than 10 s, and the last)
    recon/epoch_NNN.png  input (top) vs reconstruction (below) for a few validation clips

Exact resume: the training order of epoch ``e`` comes from a generator seeded with ``(seed, e)`` and the
checkpoint holds every RNG state, so ``train_autoencoder(cfg, resume=True)`` after a kill ends with the same
weights as an uninterrupted run (tested). bf16 autocast works on CPU and GPU; ``amp`` (float16 with a grad
scaler) needs a GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch.utils.data import DataLoader, RandomSampler

from tinyact.config import TinyActConfig
from tinyact.data.cache import ClipCache, build_cache
from tinyact.data.datasets import ClipDataset, collate_clips
from tinyact.data.manifest import SPLITS, Manifest
from tinyact.data.transforms import normalize, to_unit
from tinyact.data.video import ClipSampling
from tinyact.errors import ConfigError
from tinyact.models.base import ClipAutoEncoder
from tinyact.models.checkpoint import save_model, state_dict_hash
from tinyact.models.factory import build_autoencoder
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
    autocast,
    epoch_generator,
    load_checkpoint,
    make_scaler,
    psnr,
    seed_everything,
)

logger = logging.getLogger(__name__)

#: Fields that change the model or the data it sees; a resumed run must keep them.
_SHAPE_FIELDS = ("kind", "preset", "size", "frames", "model_overrides", "seed", "train_splits", "motion_weight", "target_pool")


class AETrainConfig(TinyActConfig):
    """What ``tinyact train ae`` trains (YAML keys = field names)."""

    manifest: Path = Field(..., title="Manifest CSV", description="from `tinyact data manifest`")
    out: Path = Field(..., title="Run folder", description="checkpoints, metrics, curves and the model file go here")
    kind: Literal["ae3d", "ae2d"] = Field("ae3d", title="Autoencoder kind", description="ae3d (3-D conv) or ae2d (per-frame 2-D conv)")
    preset: str = Field("fast", title="Preset", description="`tinyact models summary` lists them with params and FLOPs")
    size: int = Field(112, ge=8, le=1024, title="Crop size (px)")
    frames: int = Field(16, ge=1, le=128, title="Frames per clip (T)")
    model_overrides: dict[str, Any] = Field(
        {}, title="Model config overrides", description="fields of the model config, e.g. {channels: [32, 64, 128, 256]}"
    )
    batch_size: int = Field(8, ge=1, title="Clips per step")
    lr: float = Field(1e-3, gt=0, title="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, title="Adam weight decay")
    epochs: int = Field(10, ge=1, title="Epochs")
    seed: int = Field(0, title="Random seed")
    workers: int = Field(0, ge=0, title="Decoder processes for the cache", description="0 = one per CPU core")
    precision: Literal["fp32", "bf16", "amp"] = Field("fp32", title="Precision", description="bf16 autocast (CPU/GPU) or amp (float16, GPU)")
    device: str = Field("auto", title="Device", description="auto (CUDA when present), cpu, cuda, cuda:1 …")
    cache_dir: Path | None = Field(None, title="Clip cache folder", description="built if missing; default OUT/cache")
    train_splits: list[str] = Field(["train"], min_length=1, title="Splits trained on")
    val_split: str = Field("val", title="Split for validation MSE/PSNR and the reconstruction grid")
    grid_clips: int = Field(4, ge=0, le=16, title="Clips in the reconstruction grid")
    motion_weight: float = Field(
        0.0, ge=0, title="Motion loss weight",
        description="adds weight × MSE between the frame-to-frame differences of x̂ and x (0 = the paper's plain MSE)",
    )
    target_pool: int = Field(
        1, ge=1, title="Loss pooling (px)",
        description="compare x̂ and x after k×k average pooling, so the loss ignores detail finer than k px "
        "(such as the background edges that camera shake moves); 1 = the paper's per-pixel MSE. metrics.csv's "
        "train_mse is then the pooled loss; val_mse stays per pixel, comparable between runs",
    )
    threads: int | None = Field(None, ge=1, title="torch CPU threads", description="default: torch's choice")

    def sampling(self) -> ClipSampling:
        """How clips are read: ``frames`` frames spread uniformly over each video, ``size``² centre crop."""
        return ClipSampling(num_frames=self.frames, size=self.size)


@dataclass
class AETrainResult:
    """Where a finished run left its outputs."""

    checkpoint: Path  # the model file, loadable with tinyact.models.checkpoint.load_model
    run_dir: Path
    metrics_csv: Path
    encoder_hash: str
    metrics: dict[str, float] = field(default_factory=dict)  # last epoch's row


def _recon_grid(inputs: torch.Tensor, recon: torch.Tensor, out: Path, frames_shown: int = 8) -> Path:
    """PNG: for each clip, a row of input frames and below it the reconstructed frames.

    ``inputs`` and ``recon`` are float ``[N, T, 3, H, W]`` in ``[0, 1]``.
    """
    from PIL import Image

    n, t, _, h, w = inputs.shape
    picks = np.linspace(0, t - 1, min(frames_shown, t)).round().astype(int)
    pad = 2
    rows = []
    for i in range(n):
        for clip in (inputs[i], recon[i]):
            frames = [clip[j].clamp(0, 1).permute(1, 2, 0).numpy() for j in picks]  # [H, W, 3] each
            spaced = [np.pad(f, ((pad, pad), (pad, pad), (0, 0)), constant_values=1.0) for f in frames]
            rows.append(np.concatenate(spaced, axis=1))
        rows.append(np.ones((pad * 2, rows[-1].shape[1], 3)))  # gap between clips
    grid = (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)
    scale = max(1, 96 // h)  # tiny test clips are blown up so the PNG is readable
    image = Image.fromarray(grid)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    return out


def reconstruction_loss(
    recon: torch.Tensor, target: torch.Tensor, motion_weight: float = 0.0, pool: int = 1
) -> torch.Tensor:
    """MSE of ``[B, T, C, H, W]`` clips in ``[0, 1]``, plus ``motion_weight`` × MSE of their temporal differences.

    Plain MSE is dominated by the static background, which a clip latent can reproduce without encoding
    the movement at all; the difference term charges the decoder for getting the motion wrong. ``pool`` > 1
    compares both clips after ``pool``×``pool`` average pooling: an edge shifted by a pixel leaves a thin +/-
    pair in the residual that pooling largely cancels (fully when the pair falls in one cell), while a moving
    figure leaves a blob of one sign that it keeps.
    """
    if pool > 1:
        recon, target = (F.avg_pool2d(c.flatten(0, 1), pool, ceil_mode=True).unflatten(0, c.shape[:2]) for c in (recon, target))
    loss = F.mse_loss(recon, target)
    if motion_weight > 0 and recon.shape[1] > 1:
        loss = loss + motion_weight * F.mse_loss(recon[:, 1:] - recon[:, :-1], target[:, 1:] - target[:, :-1])
    return loss


def _check_resumable(saved: dict[str, Any], cfg: AETrainConfig) -> None:
    defaults = AETrainConfig.model_fields
    changed = [k for k in _SHAPE_FIELDS if saved.get(k, defaults[k].default) != cfg.model_dump(mode="json").get(k)]
    if changed:
        raise ConfigError(
            f"cannot resume {cfg.out}: {', '.join(changed)} differ from the checkpoint "
            f"({', '.join(f'{k}={saved.get(k)!r}' for k in changed)}); use another --out"
        )


@torch.no_grad()
def _evaluate(model: ClipAutoEncoder, loader: DataLoader, device: torch.device, cfg: AETrainConfig) -> float:
    """Mean per-pixel MSE over a loader (model in eval mode)."""
    model.eval()
    total, count = 0.0, 0
    stats = model.config.normalization
    for clips, _, _ in loader:
        if not len(clips):
            continue
        clips = clips.to(device)
        with autocast(device, cfg.precision):
            _, recon = model(normalize(clips, stats))
        total += F.mse_loss(recon.float(), model.reconstruction_target(to_unit(clips)), reduction="sum").item()
        count += clips.numel()
    return total / count if count else float("nan")


class ReconstructionObjective(Objective):
    """The reconstruction MSE (plus the optional motion term) on the train splits, a fresh order per epoch."""

    sum_keys = ("total", "count", "clips")

    def __init__(self, cfg: AETrainConfig, model: ClipAutoEncoder, trainer: Trainer, device: torch.device,
                 train_set: ClipDataset, val_loader: DataLoader) -> None:
        self.cfg, self.model, self.trainer, self.device = cfg, model, trainer, device
        self.label, self.epochs = "ae", cfg.epochs
        self.train_set, self.val_loader = train_set, val_loader
        self.stats = model.config.normalization
        self.weights_hash = ""
        self.grid_batch = torch.zeros(0)
        self.grid_target: torch.Tensor | None = None

    def set_grid(self, source: ClipDataset) -> None:
        """Pick the clips the reconstruction grid shows every epoch (none when ``grid_clips`` is 0)."""
        grid_clips = [source[i] for i in range(min(self.cfg.grid_clips, len(source)))]
        self.grid_batch = collate_clips(grid_clips)[0].to(self.device)
        # The grid's top rows (what the decoder should draw) are the same every epoch.
        self.grid_target = self.model.reconstruction_target(to_unit(self.grid_batch)).cpu() if len(self.grid_batch) else None

    def begin_epoch(self, epoch: int) -> Epoch:
        self.model.train()
        sampler = RandomSampler(self.train_set, generator=epoch_generator(self.cfg.seed, epoch))
        # A last batch of one clip breaks BatchNorm when the encoder's grid is 1 voxel (tiny inputs): drop it.
        drop_last = len(self.train_set) % self.cfg.batch_size == 1
        loader = DataLoader(self.train_set, batch_size=self.cfg.batch_size, sampler=sampler, collate_fn=collate_clips,
                            drop_last=drop_last)
        return Epoch(loader, total=len(self.train_set), unit="clip")

    def step(self, batch: Any) -> Step:
        clips = batch[0]
        if len(clips) < 2 and self.cfg.batch_size > 1:  # every clip of the batch but one failed to decode
            return Step(None, advance=len(clips))
        clips = clips.to(self.device, non_blocking=True)
        target = self.model.reconstruction_target(to_unit(clips))  # uint8 -> [0, 1] (or its residual)
        with autocast(self.device, self.cfg.precision):
            _, recon = self.model(normalize(clips, self.stats))
        loss = reconstruction_loss(recon.float(), target, self.cfg.motion_weight, self.cfg.target_pool)
        return Step(loss, {"total": loss.item() * target.numel(), "count": target.numel(), "clips": len(clips)},
                    advance=len(clips))

    def postfix(self, sums: Mapping[str, float]) -> str:
        return f"mse {sums['total'] / sums['count']:.4f}"

    def end_epoch(self, epoch: int, sums: dict[str, float], seconds: float) -> dict[str, float]:
        cfg = self.cfg
        train_mse = sums["total"] / max(sums["count"], 1)
        val_mse = _evaluate(self.model, self.val_loader, self.device, cfg)
        row = {
            "epoch": epoch + 1,
            "train_mse": train_mse,
            "train_psnr": psnr(train_mse),
            "val_mse": val_mse,
            "val_psnr": psnr(val_mse) if np.isfinite(val_mse) else float("nan"),
            "clips_per_s": sums["clips"] / seconds if seconds > 0 else float("nan"),
            "epoch_s": seconds,
            "lr": self.trainer.optimizer.param_groups[0]["lr"],
        }
        # Outputs first, the resume checkpoint last: a kill in between only repeats this epoch's writes.
        self.weights_hash = save_model(Path(cfg.out) / "model.pt", self.model,
                                       extra={"epoch": epoch + 1, "metrics": row, "trained_with": cfg.model_dump(mode="json")})
        logger.info(
            "train ae: epoch %d/%d  train mse %.5f (%.2f dB)  val mse %.5f (%.2f dB)  %.1f clips/s",
            epoch + 1, cfg.epochs, train_mse, row["train_psnr"], val_mse, row["val_psnr"], row["clips_per_s"],
        )
        return row

    def plot(self, log: MetricsLog, epoch: int, seconds: float) -> None:
        cfg, run_dir = self.cfg, Path(self.cfg.out)
        if seconds > 10 or epoch + 1 == cfg.epochs:  # drawing takes ~1 s: not worth it after each tiny epoch
            log.plot(run_dir / "loss_curve.png", {"MSE": ["train_mse", "val_mse"], "PSNR (dB)": ["train_psnr", "val_psnr"]},
                     title=f"{cfg.kind}/{cfg.preset} {cfg.size}px T={cfg.frames}")
        if self.grid_target is not None:
            self.model.eval()
            with torch.no_grad(), autocast(self.device, cfg.precision):
                _, recon = self.model(normalize(self.grid_batch, self.stats))
            _recon_grid(self.grid_target, recon.float().cpu(), run_dir / "recon" / f"epoch_{epoch + 1:03d}.png")

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        return checkpoint_state({"model": self.model}, self.trainer, rng=True, epoch=epoch + 1,
                                config=self.cfg.model_dump(mode="json"))


def train_autoencoder(
    cfg: AETrainConfig,
    resume: bool = False,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> AETrainResult:
    """Train an autoencoder as ``cfg`` says; returns where the model file and metrics are.

    Args:
        cfg: the run's config (echoed into ``cfg.out/config.yaml``).
        resume: continue from ``cfg.out/checkpoint.pt`` (exactly, at the last finished epoch). Without it, a
            run folder that already holds a checkpoint is refused rather than overwritten.
        on_epoch_end: called with ``(epoch, metrics row)`` after each epoch's checkpoint is written.

    Raises:
        ConfigError: a run is already in ``cfg.out`` (without ``resume``), the checkpoint's shape fields differ,
            unknown splits, no training clips, or ``amp`` without a GPU.
    """
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / "checkpoint.pt"
    refuse_overwrite(ckpt_path, resume)
    device = prepare_device(cfg.device, cfg.precision, cfg.threads)
    unknown = [s for s in [*cfg.train_splits, cfg.val_split] if s not in SPLITS]
    if unknown:
        raise ConfigError(f"unknown split(s) {unknown}; splits are {', '.join(SPLITS)}")

    state = load_checkpoint(ckpt_path, map_location=device) if resume and ckpt_path.exists() else None
    if state is not None:
        _check_resumable(state["config"], cfg)

    manifest = Manifest.read(cfg.manifest)
    train_manifest = manifest.split(*cfg.train_splits)
    val_manifest = manifest.split(cfg.val_split)
    if not len(train_manifest):
        raise ConfigError(f"{cfg.manifest} has no clips in split(s) {cfg.train_splits}")
    cfg.save(run_dir)

    # Decode once: every later epoch (and `tinyact extract` with the same cache) reads memory-mapped uint8.
    sampling = cfg.sampling()
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else run_dir / "cache"
    build_cache(manifest, cache_dir, sampling, workers=cfg.workers)
    cache = ClipCache(cache_dir)
    train_set = ClipDataset(train_manifest, sampling, cache=cache, skip_report=run_dir / "skipped.csv")
    val_set = ClipDataset(val_manifest, sampling, cache=cache, skip_report=run_dir / "skipped.csv")
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size, shuffle=False, collate_fn=collate_clips)

    seed_everything(cfg.seed)
    built = build_autoencoder(
        cfg.kind, cfg.preset, **{**cfg.model_overrides, "num_frames": cfg.frames, "input_size": cfg.size}
    )
    if not isinstance(built, ClipAutoEncoder):
        raise ConfigError(f"{cfg.kind}/{cfg.preset} is not a clip autoencoder")
    model = built.to(device)
    trainer = Trainer(
        optimizer=torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
        scaler=make_scaler(cfg.precision, device),
        checkpoint=ckpt_path,
        log=MetricsLog(run_dir / "metrics.csv"),
    )
    assert trainer.log is not None
    start_epoch = 0
    if state is not None:
        restore(state, {"model": model}, trainer, rng=True)
        start_epoch = int(state["epoch"])
        logger.info("train ae: resuming %s after epoch %d of %d", run_dir, start_epoch, cfg.epochs)
    trainer.log.truncate(start_epoch + 1)  # rows are numbered from 1; drop any of an epoch that did not finish

    objective = ReconstructionObjective(cfg, model, trainer, device, train_set, val_loader)
    objective.set_grid(val_set if len(val_set) else train_set)
    previous: dict[str, float] = trainer.log.rows[-1] if trainer.log.rows else {}
    row = run_epochs(objective, range(start_epoch, cfg.epochs), trainer, on_epoch_end) or previous
    # A resumed run that had already finished trained nothing: hash the weights it loaded.
    weights_hash = objective.weights_hash or state_dict_hash(model.state_dict())
    return AETrainResult(
        checkpoint=run_dir / "model.pt", run_dir=run_dir, metrics_csv=trainer.log.path, encoder_hash=weights_hash,
        metrics=row,
    )
