"""Supervised training of the in-project teacher (``tinyact train teacher``).

The teacher (:class:`~tinyact.models.teacher3d.Teacher3D`) is trained with cross-entropy on the manifest's
train split, selected on val, and saved as a model file that ``inproject:PATH`` teacher specs load. The loop
has the same run-folder contract as the autoencoder trainer::

    RUN/config.yaml      the resolved TeacherTrainConfig
    RUN/checkpoint.pt    model, optimiser, grad scaler, best weights, epoch (written after every epoch; ``resume=True``)
    RUN/model.pt         the best-on-val weights (tinyact.models.checkpoint format, label names in its config)
    RUN/metrics.csv      per epoch: train_loss, train_top1, val_loss, val_top1, lr
    RUN/curves.png       the same as curves

It runs under ``torchrun`` like the KD trainer (see :mod:`tinyact.training.loop`).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from tinyact.config import TinyActConfig
from tinyact.console import progress_bar
from tinyact.data.manifest import Manifest
from tinyact.data.transforms import normalize
from tinyact.data.video import ClipSampling
from tinyact.models.checkpoint import save_model
from tinyact.models.teacher3d import PRESETS, Teacher3D
from tinyact.training.loop import (
    DistInfo,
    Schedule,
    all_reduce_sum,
    barrier,
    convert_sync_batchnorm,
    eval_loader,
    init_distributed,
    lr_at,
    make_optimizer,
    open_cache,
    set_lr,
    shutdown_distributed,
    split_or_fail,
    train_loader,
    unwrap,
    wrap_ddp,
)
from tinyact.training.runtime import (
    MetricsLog,
    Precision,
    autocast,
    backward_step,
    load_checkpoint,
    make_scaler,
    restore_scaler,
    save_checkpoint,
    seed_everything,
)

logger = logging.getLogger(__name__)


class TeacherTrainConfig(TinyActConfig):
    """What ``tinyact train teacher`` trains."""

    manifest: Path = Field(..., title="Manifest CSV")
    out: Path = Field(..., title="Run folder")
    cache_dir: Path | None = Field(None, title="Clip cache", description="built with the same frames and size")
    preset: Literal["r2plus1d_18", "small"] = Field("small", title="Network preset")
    widths: tuple[int, ...] | None = Field(None, title="Stage widths", description="overrides the preset")
    blocks: tuple[int, ...] | None = Field(None, title="Blocks per stage", description="overrides the preset")
    dropout: float = Field(0.2, ge=0, lt=1, title="Dropout before the head")
    motion: bool = Field(False, title="Frame differences as extra input channels", description="see Teacher3D")
    size: int = Field(112, ge=16, title="Crop size (px)")
    frames: int = Field(16, ge=2, title="Frames per clip")
    batch_size: int = Field(8, ge=1, title="Global batch size")
    epochs: int = Field(15, ge=1, title="Epochs")
    optimizer: Literal["adam", "sgd"] = Field("adam", title="Optimiser")
    lr: float = Field(1e-3, gt=0, title="Initial learning rate")
    lr_min: float = Field(1e-5, gt=0, title="Final learning rate")
    schedule: Schedule = Field("cosine", title="Learning-rate schedule")
    weight_decay: float = Field(1e-4, ge=0, title="Weight decay")
    label_smoothing: float = Field(0.1, ge=0, lt=1, title="Label smoothing")
    flip: bool = Field(
        False, title="Random horizontal flips",
        description="off by default: mirroring turns 'walking left' into 'walking right' (direction-labelled classes)",
    )
    seed: int = Field(0, title="Random seed")
    workers: int = Field(0, ge=0, title="DataLoader workers")
    precision: Precision = Field("fp32", title="Precision")
    device: str = Field("auto", title="Device")


@dataclass
class TeacherTrainResult:
    checkpoint: Path  # RUN/model.pt
    run_dir: Path
    metrics_csv: Path
    val_top1: float
    test_top1: float | None


def random_flip(clips: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each clip ``[B, T, 3, H, W]`` left-right with probability 1/2."""
    mask = torch.rand(clips.shape[0], generator=generator) < 0.5
    if mask.any():
        clips = clips.clone()
        clips[mask] = clips[mask].flip(-1)
    return clips


@torch.no_grad()
def evaluate_classifier(model: torch.nn.Module, loader, info: DistInfo, precision: Precision = "fp32") -> tuple[float, float]:
    """``(mean CE loss, top-1)`` of a clip classifier over every clip of ``loader`` (all ranks together)."""
    model.eval()
    stats = input_normalization(model)
    loss_sum = correct = seen = 0.0
    for clips, labels, _ in loader:
        if len(labels) == 0:
            continue
        x = normalize(clips.to(info.device), stats)
        labels = labels.to(info.device)
        with autocast(info.device, precision):
            logits = model(x)
        loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
        correct += float((logits.argmax(1) == labels).sum())
        seen += len(labels)
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], info)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def input_normalization(model: torch.nn.Module) -> str:
    """The statistics a model's input is normalised with: its ``config.normalization`` (ImageNet without one)."""
    return getattr(getattr(unwrap(model), "config", None), "normalization", "imagenet")


def build_teacher(cfg: TeacherTrainConfig, label_names: list[str]) -> Teacher3D:
    overrides = {k: v for k, v in {"widths": cfg.widths, "blocks": cfg.blocks}.items() if v is not None}
    return Teacher3D(
        PRESETS[cfg.preset],
        num_classes=len(label_names),
        num_frames=cfg.frames,
        input_size=cfg.size,
        dropout=cfg.dropout,
        motion=cfg.motion,
        label_names=tuple(label_names),
        **overrides,
    )


def train_teacher(cfg: TeacherTrainConfig, resume: bool = False) -> TeacherTrainResult:
    """Train the in-project teacher; with ``resume`` carry on from ``cfg.out/checkpoint.pt``."""
    info = init_distributed(cfg.device)
    try:
        return _train(cfg, resume, info)
    finally:
        shutdown_distributed(info)


def _train(cfg: TeacherTrainConfig, resume: bool, info: DistInfo) -> TeacherTrainResult:
    run_dir = Path(cfg.out)
    if info.is_main:
        cfg.save(run_dir)
    manifest = Manifest.read(cfg.manifest)
    sampling = ClipSampling(num_frames=cfg.frames, size=cfg.size)
    cache = open_cache(cfg.cache_dir, sampling)
    train_set, val_set = split_or_fail(manifest, "train"), split_or_fail(manifest, "val")
    test_set = manifest.split("test")

    seed_everything(cfg.seed)
    # Before the optimiser is made: the conversion replaces BatchNorm modules (and their parameters).
    model = convert_sync_batchnorm(build_teacher(cfg, manifest.label_names), info).to(info.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg.optimizer, cfg.lr, cfg.weight_decay)
    scaler = make_scaler(cfg.precision, info.device)  # enabled for amp (float16) only
    stats = input_normalization(model)  # the teacher's own setting, as predict_uint8 (its use as a teacher) applies

    start_epoch, best_top1, best_state = 0, -1.0, None
    ckpt_path = run_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, map_location=info.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        restore_scaler(scaler, state.get("scaler"))
        start_epoch, best_top1, best_state = state["epoch"] + 1, state["best_top1"], state["best_state"]
        logger.info("teacher: resuming at epoch %d of %d", start_epoch + 1, cfg.epochs)

    net = wrap_ddp(model, info)
    loader, sampler = train_loader(train_set, sampling, cache, cfg.batch_size, cfg.seed, info, cfg.workers)
    val_loader = eval_loader(val_set, sampling, cache, cfg.batch_size, info, cfg.workers)
    log = MetricsLog(run_dir / "metrics.csv") if info.is_main else None
    if log is not None:
        log.truncate(start_epoch)

    for epoch in range(start_epoch, cfg.epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch * 1009 + info.rank)  # dropout/flips: same on resume
        flips = torch.Generator().manual_seed(cfg.seed * 7919 + epoch * 31 + info.rank)
        sampler.set_epoch(epoch)
        lr = lr_at(epoch, cfg.epochs, cfg.lr, cfg.lr_min, cfg.schedule)
        set_lr(optimizer, lr)
        net.train()
        loss_sum = correct = seen = 0.0
        with progress_bar(f"teacher epoch {epoch + 1}/{cfg.epochs}", total=len(loader), unit="batch") as bar:
            for clips, labels, _ in loader:
                if cfg.flip:
                    clips = random_flip(clips, flips)
                x, labels = normalize(clips.to(info.device), stats), labels.to(info.device)
                with autocast(info.device, cfg.precision):
                    logits = net(x)
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
                backward_step(loss, optimizer, scaler)
                loss_sum += float(loss.detach()) * len(labels)
                correct += float((logits.argmax(1) == labels).sum())
                seen += len(labels)
                bar.advance()
        loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], info)
        val_loss, val_top1 = evaluate_classifier(unwrap(net), val_loader, info, cfg.precision)
        if val_top1 > best_top1:
            best_top1, best_state = val_top1, copy.deepcopy({k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()})
        row = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "train_top1": correct / max(seen, 1),
               "val_loss": val_loss, "val_top1": val_top1, "lr": lr}
        logger.info("teacher epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        if log is not None:
            log.append(row)
            log.plot(run_dir / "curves.png", {"loss": ["train_loss", "val_loss"], "top-1": ["train_top1", "val_top1"]},
                     title="in-project teacher")
            save_checkpoint(ckpt_path, {"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                                        "scaler": scaler.state_dict(), "epoch": epoch, "best_top1": best_top1, "best_state": best_state})
        barrier(info)

    if best_state is not None:
        model.load_state_dict(best_state)
    test_top1 = None
    if len(test_set):
        _, test_top1 = evaluate_classifier(model, eval_loader(test_set, sampling, cache, cfg.batch_size, info), info)
    final = run_dir / "model.pt"
    if info.is_main:
        save_model(final, model, extra={"val_top1": best_top1, "test_top1": test_top1, "trainer": "teacher"})
    barrier(info)
    return TeacherTrainResult(final, run_dir, run_dir / "metrics.csv", best_top1, test_top1)


# --------------------------------------------------------------------------------------------- as a Teacher
class InProjectTeacher:
    """A trained :class:`Teacher3D` behind the :class:`tinyact.teachers.Teacher` interface (``inproject:PATH``).

    ``__call__(clips uint8 [B, T, 3, H, W])`` resamples the clips to the frames and size the teacher was
    trained on (nearest frames in time, bilinear in space) and returns ``TeacherOutput(logits, embedding)``.
    """

    def __init__(self, model: Teacher3D, device: str | torch.device = "cpu") -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.label_names = list(model.config.label_names) or [str(i) for i in range(model.config.num_classes)]
        self.num_frames = model.config.num_frames
        self.size = model.config.input_size
        self.embedding_dim = model.embedding_dim

    def to(self, device: str | torch.device) -> InProjectTeacher:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def __call__(self, clips: torch.Tensor):
        from tinyact.teachers import TeacherOutput

        clips = resample_clips(clips.to(self.device), self.num_frames, self.size)
        logits, embedding = self.model.predict_uint8(clips)
        return TeacherOutput(logits=logits, embedding=embedding)


def resample_clips(clips: torch.Tensor, frames: int, size: int) -> torch.Tensor:
    """uint8 ``[B, T, 3, H, W]`` -> ``[B, frames, 3, size, size]`` (evenly spaced frames, bilinear resize)."""
    b, t, c, h, w = clips.shape
    if t != frames:
        index = torch.linspace(0, t - 1, frames).round().long().to(clips.device)
        clips = clips[:, index]
    if (h, w) != (size, size):
        flat = clips.reshape(b * frames, c, h, w).float()  # [B, T, 3, H, W] -> [B*T, 3, H, W]
        flat = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False, antialias=min(h, w) > size)
        clips = flat.round_().clamp_(0, 255).to(torch.uint8).reshape(b, frames, c, size, size)
    return clips


def load_inproject_teacher(path: str, device: str | None = None) -> InProjectTeacher:
    """Loader of the ``inproject:PATH`` teacher spec (``PATH``: a ``model.pt`` from ``tinyact train teacher``,
    or its run folder)."""
    from tinyact.errors import TinyActError
    from tinyact.models.checkpoint import load_model

    file = Path(path)
    if file.is_dir():
        file = file / "model.pt"
    model, _ = load_model(file)
    if not isinstance(model, Teacher3D):
        raise TinyActError(f"{file} holds a {type(model).__name__}, not an in-project teacher (Teacher3D)")
    return InProjectTeacher(model, device or ("cuda" if torch.cuda.is_available() else "cpu"))
