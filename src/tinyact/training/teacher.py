"""Supervised training of the in-project teacher (``tinyact train teacher``).

The teacher (:class:`~tinyact.models.teacher3d.Teacher3D`) is trained with cross-entropy on the manifest's
train split, selected on val, and saved as a model file that ``inproject:PATH`` teacher specs load. The loop
has the same run-folder contract as the autoencoder trainer::

    RUN/config.yaml      the resolved TeacherTrainConfig
    RUN/checkpoint.pt    model, optimiser, grad scaler, best weights, epoch (written after every epoch; ``resume=True``)
    RUN/model.pt         the best-on-val weights (tinyact.models.checkpoint format, label names in its config)
    RUN/metrics.csv      per epoch: train_loss, train_top1, val_loss, val_top1, lr
    RUN/curves.png       the same as curves

It runs under ``torchrun`` like the KD trainer (see :mod:`tinyact.training.distributed`), in the shared epoch
loop (:mod:`tinyact.training.loop`). As a teacher, the trained model is loaded by
:mod:`tinyact.teachers.inproject`.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from tinyact.config import TinyActConfig
from tinyact.data.manifest import Manifest
from tinyact.data.transforms import normalize
from tinyact.data.video import ClipSampling
from tinyact.models.checkpoint import save_model
from tinyact.models.teacher3d import PRESETS, Teacher3D
from tinyact.training.distributed import (
    DistInfo,
    barrier,
    convert_sync_batchnorm,
    init_distributed,
    shutdown_distributed,
    unwrap,
    wrap_ddp,
)
from tinyact.training.evaluate import evaluate_classifier, input_normalization
from tinyact.training.loaders import eval_loader, open_cache, split_or_fail, train_loader
from tinyact.training.loop import (
    Epoch,
    Objective,
    Step,
    Trainer,
    checkpoint_state,
    open_run,
    restore,
    run_epochs,
)
from tinyact.training.runtime import (
    MetricsLog,
    Precision,
    Schedule,
    autocast,
    lr_at,
    make_optimizer,
    make_scaler,
    seed_everything,
    set_lr,
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
    """Where a finished run left its model file, and its top-1 on val (best epoch) and test."""

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


def build_teacher(cfg: TeacherTrainConfig, label_names: list[str]) -> Teacher3D:
    """The untrained network of ``cfg`` for ``label_names``: the preset with the config's overrides."""
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


class TeacherObjective(Objective):
    """Cross-entropy with label smoothing on the train split; the best epoch on val is kept."""

    sum_keys = ("loss", "correct", "seen")

    def __init__(self, cfg: TeacherTrainConfig, model: torch.nn.Module, trainer: Trainer, sampling: ClipSampling,
                 train_set: Manifest, val_set: Manifest, cache: Any) -> None:
        self.cfg, self.model, self.trainer = cfg, model, trainer
        self.label, self.epochs = "teacher", cfg.epochs
        info = trainer.info
        self.net = wrap_ddp(model, info)
        self.loader, self.sampler = train_loader(train_set, sampling, cache, cfg.batch_size, cfg.seed, info, cfg.workers)
        self.val_loader = eval_loader(val_set, sampling, cache, cfg.batch_size, info, cfg.workers)
        self.stats = input_normalization(model)  # the teacher's own setting, as predict_uint8 (its use as a teacher) applies
        self.best_top1 = -1.0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.lr = cfg.lr
        self.flips = torch.Generator()

    def begin_epoch(self, epoch: int) -> Epoch:
        cfg, rank = self.cfg, self.trainer.info.rank
        torch.manual_seed(cfg.seed * 100_003 + epoch * 1009 + rank)  # dropout/flips: same on resume
        self.flips = torch.Generator().manual_seed(cfg.seed * 7919 + epoch * 31 + rank)
        self.sampler.set_epoch(epoch)
        self.lr = lr_at(epoch, cfg.epochs, cfg.lr, cfg.lr_min, cfg.schedule)
        set_lr(self.trainer.optimizer, self.lr)
        self.net.train()
        return Epoch(self.loader, len(self.loader))

    def step(self, batch: Any) -> Step:
        clips, labels, _ = batch
        if self.cfg.flip:
            clips = random_flip(clips, self.flips)
        device = self.trainer.info.device
        x, labels = normalize(clips.to(device), self.stats), labels.to(device)
        with autocast(device, self.cfg.precision):
            logits = self.net(x)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.cfg.label_smoothing)
        return Step(loss, {"loss": float(loss.detach()) * len(labels),
                           "correct": float((logits.argmax(1) == labels).sum()), "seen": len(labels)})

    def end_epoch(self, epoch: int, sums: dict[str, float], seconds: float) -> dict[str, float]:
        val_loss, val_top1 = evaluate_classifier(unwrap(self.net), self.val_loader, self.trainer.info, self.cfg.precision)
        if val_top1 > self.best_top1:
            self.best_top1 = val_top1
            self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in unwrap(self.model).state_dict().items()})
        seen = max(sums["seen"], 1)
        row = {"epoch": epoch, "train_loss": sums["loss"] / seen, "train_top1": sums["correct"] / seen,
               "val_loss": val_loss, "val_top1": val_top1, "lr": self.lr}
        logger.info("teacher epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        return row

    def plot(self, log: MetricsLog, epoch: int, seconds: float) -> None:
        log.plot(Path(self.cfg.out) / "curves.png",
                 {"loss": ["train_loss", "val_loss"], "top-1": ["train_top1", "val_top1"]}, title="in-project teacher")

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        return checkpoint_state({"model": unwrap(self.model)}, self.trainer, epoch=epoch, best_top1=self.best_top1,
                                best_state=self.best_state)


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
    trainer, state = open_run(run_dir, optimizer, scaler, info, resume)
    start_epoch = 0
    if state is not None:
        restore(state, {"model": model}, trainer)
        start_epoch = state["epoch"] + 1
        logger.info("teacher: resuming at epoch %d of %d", start_epoch + 1, cfg.epochs)
    objective = TeacherObjective(cfg, model, trainer, sampling, train_set, val_set, cache)
    if state is not None:
        objective.best_top1, objective.best_state = state["best_top1"], state["best_state"]
    if trainer.log is not None:
        trainer.log.truncate(start_epoch)

    run_epochs(objective, range(start_epoch, cfg.epochs), trainer)

    best_top1 = objective.best_top1
    if objective.best_state is not None:
        model.load_state_dict(objective.best_state)
    test_top1 = None
    if len(test_set):
        _, test_top1 = evaluate_classifier(model, eval_loader(test_set, sampling, cache, cfg.batch_size, info), info)
    final = run_dir / "model.pt"
    if info.is_main:
        save_model(final, model, extra={"val_top1": best_top1, "test_top1": test_top1, "trainer": "teacher"})
    barrier(info)
    return TeacherTrainResult(final, run_dir, run_dir / "metrics.csv", best_top1, test_top1)
