"""Knowledge-distillation trainer (``tinyact train kd``): the paper's student trained to mimic a teacher.

Student = :class:`~tinyact.models.VideoAutoEncoder3D` (encoder + decoder) + an
:class:`~tinyact.models.MLPResNetClassifier` on its latent::

    uint8 clip ─┬─ normalize (its own) ─► encoder ─► z [B, 1024] ─┬─► head ─► z_s [B, C] ──► α·CE(z_s, y)
                │                                                   │                      └─► β(e)·T²·KL(z_t ‖ z_s)
                │                                                   ├─► decoder ─► x̂ ─────────► γ·MSE(x̂, x)
                │                                                   └─► P(z) ─────────────────► δ·‖P(z) − e_t‖²  (optional)
                └─ /255 ─► x in [0, 1] (reconstruction target)
    teacher logits z_t (and embedding e_t): from a CachedLogits file by clip id, or a teacher run on the fly

β ramps linearly from 0 over ``warmup_epochs`` (:func:`~tinyact.training.distill.beta_schedule`). Set-ups
(the paper's Table 2): ``scratch`` (all weights random, trained jointly), ``pretrained`` (encoder and decoder
from an unsupervised autoencoder, all trained), ``frozen`` (pretrained encoder fixed: no gradient, BatchNorm
statistics fixed; decoder and head trained). Without a teacher (``teacher_logits`` and ``teacher`` unset) the
KL term is off: the CE-only baseline of the same student.

Run folder::

    RUN/config.yaml  RUN/checkpoint.pt (every epoch; resume=True)  RUN/metrics.csv  RUN/curves.png
    RUN/model.pt     the student's autoencoder (a normal VideoAutoEncoder3D model file: extract, export, edge)
    RUN/head.pt      the student's MLPResNetClassifier          RUN/result.json   val/test top-1 of student and teacher

Runs unchanged under ``torchrun --nproc_per_node=N`` (DDP; see :mod:`tinyact.training.distributed`): ``batch_size``
is the global batch, BatchNorm statistics are global, and one step equals a one-process step on the same batch.
The student is :class:`~tinyact.models.kd_student.KDStudent`; its teacher comes from
:mod:`tinyact.training.kd_teachers`; the epochs run in :mod:`tinyact.training.loop`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from tinyact.config import TinyActConfig
from tinyact.data.manifest import Manifest
from tinyact.data.transforms import normalize, to_unit
from tinyact.data.video import ClipSampling
from tinyact.errors import ConfigError
from tinyact.models.autoencoder3d import PRESETS as AE_PRESETS
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.checkpoint import load_model, save_model
from tinyact.models.kd_student import KDStudent
from tinyact.models.mlp_resnet import MLPResNetClassifier
from tinyact.training.distill import DistillationLoss, FeatureDistillation, beta_schedule
from tinyact.training.distributed import (
    DistInfo,
    barrier,
    convert_sync_batchnorm,
    init_distributed,
    shutdown_distributed,
    unwrap,
    wrap_ddp,
)
from tinyact.training.evaluate import evaluate_student
from tinyact.training.kd_teachers import KDError, TeacherSource, make_teacher
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

__all__ = ["KDConfig", "KDError", "KDResult", "KDStudent", "build_student", "evaluate_student", "train_kd"]

Setup = Literal["scratch", "pretrained", "frozen"]


class KDConfig(TinyActConfig):
    """What ``tinyact train kd`` trains (defaults are the paper's)."""

    manifest: Path = Field(..., title="Manifest CSV")
    out: Path = Field(..., title="Run folder")
    cache_dir: Path | None = Field(None, title="Clip cache", description="built with the same frames and size")
    setup: Setup = Field("scratch", title="Student set-up", description="scratch, pretrained (unfrozen) or frozen")
    pretrained: Path | None = Field(None, title="Autoencoder model file", description="for pretrained / frozen")
    preset: str = Field("fast", title="Autoencoder preset (scratch)")
    ae_overrides: dict[str, Any] = Field(
        default_factory=dict, title="Autoencoder config overrides (scratch)", description="e.g. {channels: [8, 16, 32, 64], latent_dim: 64}"
    )
    size: int = Field(112, ge=16, title="Crop size (px)")
    frames: int = Field(16, ge=2, title="Frames per clip")
    head_dim: int = Field(512, ge=1, title="MLPResNet width")
    head_depth: int = Field(4, ge=0, title="MLPResNet blocks")
    head_hidden: int | None = Field(None, title="MLPResNet FC1 width", description="default 2 × head_dim")
    head_dropout: float = Field(0.1, ge=0, lt=1, title="MLPResNet dropout")
    teacher_logits: Path | None = Field(None, title="CachedLogits file", description="from `tinyact teacher cache`")
    teacher: str | None = Field(None, title="Teacher spec run on the fly", description="e.g. inproject:model.pt")
    alpha: float = Field(0.5, ge=0, title="CE weight α")
    beta: float = Field(0.5, ge=0, title="KD weight β (after warm-up)")
    gamma: float = Field(0.5, ge=0, title="Reconstruction weight γ")
    temperature: float = Field(4.0, gt=0, title="Temperature T")
    warmup_epochs: int = Field(20, ge=0, title="β warm-up epochs")
    feature_kd: float = Field(0.0, ge=0, title="Feature-KD weight δ", description="0 = off; needs teacher embeddings")
    feature_kind: Literal["mse", "cosine"] = Field("mse", title="Feature-KD distance")
    feature_source: Literal["latent", "head"] = Field(
        "latent", title="Student feature", description="the latent z (what the cloud receives) or the head's embedding"
    )
    epochs: int = Field(100, ge=1, title="Epochs")
    batch_size: int = Field(8, ge=1, title="Global batch size")
    optimizer: Literal["sgd", "adamw"] = Field("sgd", title="Optimiser", description="paper: SGD, momentum 0.9")
    lr: float = Field(1e-4, gt=0, title="Initial learning rate")
    lr_min: float = Field(1e-5, gt=0, title="Final learning rate")
    schedule: Schedule = Field("cosine", title="Learning-rate schedule")
    momentum: float = Field(0.9, ge=0, lt=1, title="SGD momentum")
    weight_decay: float = Field(1e-4, ge=0, title="Weight decay")
    seed: int = Field(0, title="Random seed")
    workers: int = Field(0, ge=0, title="DataLoader workers")
    precision: Precision = Field("fp32", title="Precision")
    device: str = Field("auto", title="Device")
    max_steps: int | None = Field(None, ge=1, title="Stop after this many optimiser steps (tests, smoke runs)")

    @model_validator(mode="after")
    def _check(self) -> KDConfig:
        if self.setup != "scratch" and self.pretrained is None:
            raise ValueError(f"set-up {self.setup!r} needs `pretrained` (an autoencoder model file)")
        if self.teacher_logits is not None and self.teacher is not None:
            raise ValueError("give either teacher_logits or teacher, not both")
        if self.preset not in AE_PRESETS:
            raise ValueError(f"unknown autoencoder preset {self.preset!r}; choose one of {sorted(AE_PRESETS)}")
        return self

    @property
    def has_teacher(self) -> bool:
        """Whether a teacher (cached logits or a live spec) is given."""
        return self.teacher_logits is not None or self.teacher is not None


@dataclass
class KDResult:
    """Where a finished run left the student's files, and the top-1 of student and teacher on val and test."""

    run_dir: Path
    checkpoint: Path  # RUN/model.pt, the student's autoencoder
    head: Path  # RUN/head.pt
    metrics_csv: Path
    encoder_hash: str
    val_top1: float
    test_top1: float | None
    teacher_val_top1: float | None
    teacher_test_top1: float | None


def build_student(cfg: KDConfig, num_classes: int, teacher_embedding_dim: int | None) -> KDStudent:
    """The student of a set-up: a fresh autoencoder (``scratch``) or the ``pretrained`` one, plus a new head."""
    if cfg.setup == "scratch":
        overrides = {**cfg.ae_overrides, "num_frames": cfg.frames, "input_size": cfg.size}
        if "channels" in overrides:
            overrides["channels"] = tuple(overrides["channels"])
        autoencoder = VideoAutoEncoder3D.from_preset(cfg.preset, **overrides)
    else:
        if cfg.pretrained is None:
            raise ConfigError(f"set-up {cfg.setup!r} needs `pretrained` (an autoencoder model file)")
        loaded, _ = load_model(cfg.pretrained)
        if not isinstance(loaded, VideoAutoEncoder3D):
            raise ConfigError(f"{cfg.pretrained} holds a {type(loaded).__name__}, not a VideoAutoEncoder3D")
        autoencoder = loaded
        want = (cfg.frames, 3, cfg.size, cfg.size)
        if autoencoder.input_shape != want:
            raise ConfigError(
                f"{cfg.pretrained} was built for clips {autoencoder.input_shape} (T, C, H, W); this run uses {want}: "
                "set frames/size to match"
            )
    latent_dim = autoencoder.config.latent_dim
    head = MLPResNetClassifier(latent_dim, num_classes, cfg.head_dim, cfg.head_depth, cfg.head_hidden, cfg.head_dropout)
    feature = None
    if cfg.feature_kd > 0:
        if not teacher_embedding_dim:
            raise KDError("feature_kd > 0 needs teacher embeddings (the teacher or its logits file has none)")
        source_dim = latent_dim if cfg.feature_source == "latent" else head.embedding_dim
        feature = FeatureDistillation(source_dim, teacher_embedding_dim, kind=cfg.feature_kind)
    student = KDStudent(autoencoder, head, feature, cfg.feature_source)
    if cfg.setup == "frozen":
        for module in student.encoder_modules():
            module.requires_grad_(False)
    return student


def set_train_mode(student: nn.Module, setup: Setup) -> None:
    """``train()``, except that a frozen encoder stays in eval mode (its BatchNorm statistics stay fixed)."""
    student.train()
    if setup == "frozen":
        inner = unwrap(student)
        assert isinstance(inner, KDStudent)
        for module in inner.encoder_modules():
            module.eval()


def train_kd(cfg: KDConfig, resume: bool = False) -> KDResult:
    """Train the KD student of ``cfg``; with ``resume`` carry on from ``cfg.out/checkpoint.pt``.

    Under ``torchrun`` every rank calls this; only rank 0 writes files.
    """
    info = init_distributed(cfg.device)
    try:
        return _train(cfg, resume, info)
    finally:
        shutdown_distributed(info)


class KDObjective(Objective):
    """α·CE + β(e)·T²·KL + γ·MSE (+ δ·feature KD) on the train split, counted in optimiser steps."""

    sum_keys = ("ce", "kd", "recon", "feature", "total", "correct", "seen", "t_correct")

    def __init__(self, cfg: KDConfig, student: KDStudent, teacher: TeacherSource | None, trainer: Trainer,
                 loader: Any, sampler: Any, val_loader: Any) -> None:
        self.cfg, self.student, self.teacher, self.trainer = cfg, student, teacher, trainer
        self.label, self.epochs = f"kd {cfg.setup}", cfg.epochs
        self.net = wrap_ddp(student, trainer.info)
        self.loader, self.sampler, self.val_loader = loader, sampler, val_loader
        self.loss_fn = DistillationLoss(cfg.alpha, cfg.beta if teacher else 0.0, cfg.gamma, cfg.temperature)
        self.steps = 0
        self.lr = self.beta = float("nan")

    def _done(self) -> bool:
        return self.cfg.max_steps is not None and self.steps >= self.cfg.max_steps

    def begin_epoch(self, epoch: int) -> Epoch | None:
        cfg = self.cfg
        if self._done():
            return None
        torch.manual_seed(cfg.seed * 100_003 + epoch * 1009 + self.trainer.info.rank)  # dropout: identical after a resume
        self.sampler.set_epoch(epoch)
        self.lr = lr_at(epoch, cfg.epochs, cfg.lr, cfg.lr_min, cfg.schedule)
        set_lr(self.trainer.optimizer, self.lr)
        self.beta = beta_schedule(epoch, cfg.warmup_epochs, self.loss_fn.beta)
        set_train_mode(self.net, cfg.setup)
        return Epoch(self.loader, len(self.loader))

    def step(self, batch: Any) -> Step:
        clips, labels, clip_ids = batch
        device = self.trainer.info.device
        clips, labels = clips.to(device), labels.to(device)
        t_logits, t_emb = self.teacher(clip_ids, clips) if self.teacher else (None, None)
        with autocast(device, self.cfg.precision):
            feature_target = t_emb.to(device) if t_emb is not None and self.cfg.feature_kd > 0 else None
            out = self.net(normalize(clips, self.student.normalization), feature_target)
        target = self.student.autoencoder.reconstruction_target(to_unit(clips))
        losses = self.loss_fn(out["logits"], t_logits, labels, out["recon"], target, beta=self.beta)
        total = losses["total"]
        if "feature" in out:
            total = total + self.cfg.feature_kd * out["feature"]
        n = len(labels)
        sums = {key: float(losses[key].detach()) * n for key in ("ce", "kd", "recon")}
        sums["feature"] = float(out["feature"].detach()) * n if "feature" in out else 0.0
        sums["total"] = float(total.detach()) * n
        sums["correct"] = float((out["logits"].argmax(1) == labels).sum())
        if t_logits is not None:
            sums["t_correct"] = float((t_logits.to(device).argmax(1) == labels).sum())
        sums["seen"] = n
        return Step(total, sums)

    def after_step(self) -> bool:
        self.steps += 1
        return self._done()

    def end_epoch(self, epoch: int, sums: dict[str, float], seconds: float) -> dict[str, float]:
        seen = max(sums["seen"], 1)
        val = evaluate_student(self.student, self.val_loader, self.teacher, self.trainer.info, self.cfg.precision)
        row = {
            "epoch": epoch, "lr": self.lr, "beta": self.beta,
            "train_ce": sums["ce"] / seen, "train_kl": sums["kd"] / seen, "train_mse": sums["recon"] / seen,
            "train_feature": sums["feature"] / seen, "train_total": sums["total"] / seen,
            "train_top1": sums["correct"] / seen,
            "train_teacher_top1": sums["t_correct"] / seen if self.teacher else float("nan"),
            "val_ce": val["ce"], "val_top1": val["top1"], "val_teacher_top1": val["teacher_top1"],
            "val_mse": val["mse"], "val_psnr": val["psnr"],
        }
        logger.info("kd %s epoch %d: %s", self.cfg.setup, epoch + 1,
                    ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        return row

    def plot(self, log: MetricsLog, epoch: int, seconds: float) -> None:
        log.plot(
            Path(self.cfg.out) / "curves.png",
            {
                "loss terms": ["train_ce", "train_kl", "train_mse", "train_feature", "train_total", "val_ce"],
                "top-1": ["train_top1", "val_top1", "train_teacher_top1", "val_teacher_top1"],
                "PSNR (dB)": ["val_psnr"],
            },
            title=f"KD student ({self.cfg.setup})",
        )

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        return checkpoint_state({"model": self.student}, self.trainer, epoch=epoch, step=self.steps)


def _train(cfg: KDConfig, resume: bool, info: DistInfo) -> KDResult:
    run_dir = Path(cfg.out)
    if info.is_main:
        cfg.save(run_dir)
    if not cfg.has_teacher and cfg.beta > 0:
        logger.info("kd: no teacher given: the KL term is off (CE-only baseline)")
    manifest = Manifest.read(cfg.manifest)
    sampling = ClipSampling(num_frames=cfg.frames, size=cfg.size)
    cache = open_cache(cfg.cache_dir, sampling)
    train_set, val_set = split_or_fail(manifest, "train"), split_or_fail(manifest, "val")
    test_set = manifest.split("test")
    teacher = make_teacher(cfg.teacher_logits, cfg.teacher, manifest, info.device)

    seed_everything(cfg.seed)
    student = build_student(cfg, len(manifest.label_names), teacher.embedding_dim if teacher else None)
    # Before the optimiser is made: the conversion replaces BatchNorm modules (and their parameters).
    converted = convert_sync_batchnorm(student, info).to(info.device)
    assert isinstance(converted, KDStudent)
    student = converted
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)
    scaler = make_scaler(cfg.precision, info.device)  # enabled for amp (float16) only
    trainer, state = open_run(run_dir, optimizer, scaler, info, resume)
    start_epoch = 0
    if state is not None:
        restore(state, {"model": student}, trainer)
        start_epoch = state["epoch"] + 1
        logger.info("kd: resuming at epoch %d of %d", start_epoch + 1, cfg.epochs)
    loader, sampler = train_loader(train_set, sampling, cache, cfg.batch_size, cfg.seed, info, cfg.workers)
    val_loader = eval_loader(val_set, sampling, cache, cfg.batch_size, info, cfg.workers)
    objective = KDObjective(cfg, student, teacher, trainer, loader, sampler, val_loader)
    if state is not None:
        objective.steps = state["step"]
    if trainer.log is not None:
        trainer.log.truncate(start_epoch)

    run_epochs(objective, range(start_epoch, cfg.epochs), trainer)

    val = evaluate_student(student, val_loader, teacher, info, cfg.precision)
    test = None
    if len(test_set):
        test = evaluate_student(student, eval_loader(test_set, sampling, cache, cfg.batch_size, info), teacher, info, cfg.precision)
    encoder_path, head_path = run_dir / "model.pt", run_dir / "head.pt"
    extra = {"trainer": "kd", "setup": cfg.setup, "label_names": manifest.label_names, "val_top1": val["top1"],
             "test_top1": test["top1"] if test else None}
    encoder_hash = ""
    if info.is_main:
        encoder_hash = save_model(encoder_path, student.autoencoder, extra=extra)
        save_model(head_path, student.head, extra={**extra, "encoder_hash": encoder_hash})
        result = {
            "setup": cfg.setup, "encoder_hash": encoder_hash, "val_top1": val["top1"],
            "test_top1": test["top1"] if test else None, "teacher_val_top1": _nan_none(val["teacher_top1"]),
            "teacher_test_top1": _nan_none(test["teacher_top1"]) if test else None, "val_psnr": val["psnr"],
        }
        (run_dir / "result.json").write_text(json.dumps(result, indent=2))
    barrier(info)
    return KDResult(
        run_dir=run_dir, checkpoint=encoder_path, head=head_path, metrics_csv=run_dir / "metrics.csv",
        encoder_hash=encoder_hash, val_top1=val["top1"], test_top1=test["top1"] if test else None,
        teacher_val_top1=_nan_none(val["teacher_top1"]), teacher_test_top1=_nan_none(test["teacher_top1"]) if test else None,
    )


def _nan_none(value: float | None) -> float | None:
    return None if value is None or np.isnan(value) else float(value)
