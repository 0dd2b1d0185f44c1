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

Runs unchanged under ``torchrun --nproc_per_node=N`` (DDP; see :mod:`tinyact.training.loop`): ``batch_size``
is the global batch, BatchNorm statistics are global, and one step equals a one-process step on the same batch.
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
from tinyact.console import progress_bar
from tinyact.data.manifest import Manifest
from tinyact.data.transforms import normalize, to_unit
from tinyact.data.video import ClipSampling
from tinyact.errors import ConfigError, TinyActError
from tinyact.models.autoencoder3d import PRESETS as AE_PRESETS
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.checkpoint import load_model, save_model
from tinyact.models.mlp_resnet import MLPResNetClassifier
from tinyact.training.distill import DistillationLoss, FeatureDistillation, beta_schedule
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
    psnr,
    restore_scaler,
    save_checkpoint,
    seed_everything,
)

logger = logging.getLogger(__name__)

Setup = Literal["scratch", "pretrained", "frozen"]


class KDError(TinyActError):
    """A KD run cannot start: teacher and dataset do not fit together."""


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
        return self.teacher_logits is not None or self.teacher is not None


@dataclass
class KDResult:
    run_dir: Path
    checkpoint: Path  # RUN/model.pt, the student's autoencoder
    head: Path  # RUN/head.pt
    metrics_csv: Path
    encoder_hash: str
    val_top1: float
    test_top1: float | None
    teacher_val_top1: float | None
    teacher_test_top1: float | None


# --------------------------------------------------------------------------------------------- the student
class KDStudent(nn.Module):
    """Autoencoder + MLPResNet head (+ feature-KD projection). ``encode`` makes it usable wherever an
    encoder is expected (latent extraction)."""

    def __init__(self, autoencoder: VideoAutoEncoder3D, head: MLPResNetClassifier, feature: FeatureDistillation | None,
                 feature_source: str = "latent") -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.head = head
        self.feature = feature
        self.feature_source = feature_source

    @property
    def normalization(self) -> str:
        """The statistics the student's input is normalised with: its autoencoder's (as extraction and the edge do)."""
        return self.autoencoder.config.normalization

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(x)

    def forward(self, x: torch.Tensor, teacher_embedding: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``x`` normalised ``[B, T, 3, H, W]`` -> ``logits``, ``z``, ``recon`` (and ``feature`` loss)."""
        z, recon = self.autoencoder(x)
        logits, embedding = self.head(z, return_embedding=True)
        out = {"logits": logits, "z": z, "recon": recon}
        if self.feature is not None and teacher_embedding is not None:
            source = z if self.feature_source == "latent" else embedding
            out["feature"] = self.feature(source, teacher_embedding)
        return out


def frozen_modules(student: KDStudent) -> list[nn.Module]:
    return student.autoencoder.encoder_modules()


def build_student(cfg: KDConfig, num_classes: int, teacher_embedding_dim: int | None) -> KDStudent:
    """The student of a set-up: a fresh autoencoder (``scratch``) or the ``pretrained`` one, plus a new head."""
    if cfg.setup == "scratch":
        overrides = {**cfg.ae_overrides, "num_frames": cfg.frames, "input_size": cfg.size}
        if "channels" in overrides:
            overrides["channels"] = tuple(overrides["channels"])
        autoencoder = VideoAutoEncoder3D.from_preset(cfg.preset, **overrides)
    else:
        assert cfg.pretrained is not None
        autoencoder, _ = load_model(cfg.pretrained)
        if not isinstance(autoencoder, VideoAutoEncoder3D):
            raise ConfigError(f"{cfg.pretrained} holds a {type(autoencoder).__name__}, not a VideoAutoEncoder3D")
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
        for module in frozen_modules(student):
            module.requires_grad_(False)
    return student


def set_train_mode(student: nn.Module, setup: Setup) -> None:
    """``train()``, except that a frozen encoder stays in eval mode (its BatchNorm statistics stay fixed)."""
    student.train()
    if setup == "frozen":
        for module in frozen_modules(unwrap(student)):  # type: ignore[arg-type]
            module.eval()


# --------------------------------------------------------------------------------------------- teachers
def _check_mapping(label_map, source: str) -> None:
    """KD needs a teacher probability for every dataset class: unmapped classes are an error naming them."""
    if label_map.unmapped:
        missing = label_map.unmapped
        raise KDError(
            f"{source} has no class for {len(missing)} dataset label(s): {', '.join(missing[:10])}"
            f"{' …' if len(missing) > 10 else ''}; KD needs teacher logits over every dataset class "
            "(give the teacher a label file or aliases)"
        )


class TeacherSource:
    """Teacher logits on the dataset's classes (and embeddings) for a batch of clips."""

    embedding_dim: int | None = None

    def has(self, clip_id: str) -> bool:
        return True

    def __call__(self, clip_ids: list[str], clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError


class CachedTeacher(TeacherSource):
    """Rows of a :class:`~tinyact.teachers.CachedLogits` file, looked up by clip id."""

    def __init__(self, path: Path, dataset_names: list[str], required_ids: list[str]) -> None:
        from tinyact.teachers import CachedLogits

        cached = CachedLogits.load(path)
        missing = [cid for cid in required_ids if cid not in cached]
        if missing:
            raise KDError(
                f"{path} has no teacher logits for {len(missing)} of {len(required_ids)} clips: "
                f"{', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}; run `tinyact teacher cache` over this manifest"
            )
        _check_mapping(cached.label_map(dataset_names), str(path))
        self.cached = cached.for_dataset(dataset_names)
        self.embedding_dim = self.cached.embedding_dim

    def has(self, clip_id: str) -> bool:
        return clip_id in self.cached

    def __call__(self, clip_ids: list[str], clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.cached.lookup(clip_ids)


class LiveTeacher(TeacherSource):
    """A teacher (``tinyact.teachers.load_teacher`` spec) run on every batch."""

    def __init__(self, spec: str, dataset_names: list[str], device: torch.device) -> None:
        from tinyact.teachers import load_teacher, map_labels

        self.teacher = load_teacher(spec, device=str(device))
        self.label_map = map_labels(list(self.teacher.label_names), dataset_names)
        _check_mapping(self.label_map, spec)
        self.embedding_dim = self.teacher.embedding_dim

    @torch.no_grad()
    def __call__(self, clip_ids: list[str], clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.teacher(clips)
        logits = self.label_map.apply(out.logits.float())
        return logits, None if out.embedding is None else out.embedding.float()


def make_teacher(cfg: KDConfig, manifest: Manifest, info: DistInfo) -> TeacherSource | None:
    if cfg.teacher_logits is not None:
        required = [e.clip_id for e in manifest.entries if e.split in ("train", "val")]
        return CachedTeacher(cfg.teacher_logits, manifest.label_names, required)
    if cfg.teacher is not None:
        return LiveTeacher(cfg.teacher, manifest.label_names, info.device)
    return None


# --------------------------------------------------------------------------------------------- the loop
@torch.no_grad()
def evaluate_student(
    student: KDStudent, loader, teacher: TeacherSource | None, info: DistInfo, precision: Precision = "fp32"
) -> dict[str, float]:
    """CE, top-1, reconstruction MSE/PSNR of the student and top-1 of the teacher over every clip of ``loader``."""
    student.eval()
    ce = correct = mse = seen = t_correct = t_seen = 0.0
    for clips, labels, clip_ids in loader:
        if len(labels) == 0:
            continue
        clips, labels = clips.to(info.device), labels.to(info.device)
        with autocast(info.device, precision):
            out = student(normalize(clips, student.normalization))
        logits = out["logits"].float()
        ce += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        correct += float((logits.argmax(1) == labels).sum())
        target = student.autoencoder.reconstruction_target(to_unit(clips))
        mse += float(((out["recon"].float() - target) ** 2).flatten(1).mean(1).sum())
        seen += len(labels)
        if teacher is not None:
            keep = [i for i, c in enumerate(clip_ids) if teacher.has(c)]
            if keep:
                t_logits, _ = teacher([clip_ids[i] for i in keep], clips[keep])
                t_correct += float((t_logits.to(info.device).argmax(1) == labels[keep]).sum())
                t_seen += len(keep)
    ce, correct, mse, seen, t_correct, t_seen = all_reduce_sum([ce, correct, mse, seen, t_correct, t_seen], info)
    n = max(seen, 1)
    return {
        "ce": ce / n,
        "top1": correct / n,
        "mse": mse / n,
        "psnr": psnr(mse / n),
        "teacher_top1": t_correct / t_seen if t_seen else float("nan"),
    }


def train_kd(cfg: KDConfig, resume: bool = False) -> KDResult:
    """Train the KD student of ``cfg``; with ``resume`` carry on from ``cfg.out/checkpoint.pt``.

    Under ``torchrun`` every rank calls this; only rank 0 writes files.
    """
    info = init_distributed(cfg.device)
    try:
        return _train(cfg, resume, info)
    finally:
        shutdown_distributed(info)


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
    teacher = make_teacher(cfg, manifest, info)

    seed_everything(cfg.seed)
    student = build_student(cfg, len(manifest.label_names), teacher.embedding_dim if teacher else None)
    # Before the optimiser is made: the conversion replaces BatchNorm modules (and their parameters).
    student = convert_sync_batchnorm(student, info).to(info.device)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)
    loss_fn = DistillationLoss(cfg.alpha, cfg.beta if teacher else 0.0, cfg.gamma, cfg.temperature)
    scaler = make_scaler(cfg.precision, info.device)  # enabled for amp (float16) only
    stats = student.normalization

    start_epoch, step = 0, 0
    ckpt_path = run_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, map_location=info.device)
        student.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        restore_scaler(scaler, state.get("scaler"))
        start_epoch, step = state["epoch"] + 1, state["step"]
        logger.info("kd: resuming at epoch %d of %d", start_epoch + 1, cfg.epochs)

    net = wrap_ddp(student, info)
    loader, sampler = train_loader(train_set, sampling, cache, cfg.batch_size, cfg.seed, info, cfg.workers)
    val_loader = eval_loader(val_set, sampling, cache, cfg.batch_size, info, cfg.workers)
    log = MetricsLog(run_dir / "metrics.csv") if info.is_main else None
    if log is not None:
        log.truncate(start_epoch)

    for epoch in range(start_epoch, cfg.epochs):
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
        torch.manual_seed(cfg.seed * 100_003 + epoch * 1009 + info.rank)  # dropout: identical after a resume
        sampler.set_epoch(epoch)
        lr = lr_at(epoch, cfg.epochs, cfg.lr, cfg.lr_min, cfg.schedule)
        set_lr(optimizer, lr)
        beta = beta_schedule(epoch, cfg.warmup_epochs, loss_fn.beta)
        set_train_mode(net, cfg.setup)
        sums = dict.fromkeys(["ce", "kd", "recon", "feature", "total", "correct", "seen", "t_correct"], 0.0)
        with progress_bar(f"kd {cfg.setup} epoch {epoch + 1}/{cfg.epochs}", total=len(loader), unit="batch") as bar:
            for clips, labels, clip_ids in loader:
                clips, labels = clips.to(info.device), labels.to(info.device)
                t_logits, t_emb = teacher(clip_ids, clips) if teacher else (None, None)
                with autocast(info.device, cfg.precision):
                    out = net(normalize(clips, stats), t_emb.to(info.device) if t_emb is not None and cfg.feature_kd > 0 else None)
                target = student.autoencoder.reconstruction_target(to_unit(clips))
                losses = loss_fn(out["logits"], t_logits, labels, out["recon"], target, beta=beta)
                total = losses["total"]
                if "feature" in out:
                    total = total + cfg.feature_kd * out["feature"]
                backward_step(total, optimizer, scaler)
                step += 1
                n = len(labels)
                for key in ("ce", "kd", "recon"):
                    sums[key] += float(losses[key].detach()) * n
                sums["feature"] += float(out["feature"].detach()) * n if "feature" in out else 0.0
                sums["total"] += float(total.detach()) * n
                sums["correct"] += float((out["logits"].argmax(1) == labels).sum())
                if t_logits is not None:
                    sums["t_correct"] += float((t_logits.to(info.device).argmax(1) == labels).sum())
                sums["seen"] += n
                bar.advance()
                if cfg.max_steps is not None and step >= cfg.max_steps:
                    break
        keys = list(sums)
        sums = dict(zip(keys, all_reduce_sum([sums[k] for k in keys], info), strict=True))
        seen = max(sums["seen"], 1)
        val = evaluate_student(unwrap(net), val_loader, teacher, info, cfg.precision)  # type: ignore[arg-type]
        row = {
            "epoch": epoch, "lr": lr, "beta": beta,
            "train_ce": sums["ce"] / seen, "train_kl": sums["kd"] / seen, "train_mse": sums["recon"] / seen,
            "train_feature": sums["feature"] / seen, "train_total": sums["total"] / seen,
            "train_top1": sums["correct"] / seen,
            "train_teacher_top1": sums["t_correct"] / seen if teacher else float("nan"),
            "val_ce": val["ce"], "val_top1": val["top1"], "val_teacher_top1": val["teacher_top1"],
            "val_mse": val["mse"], "val_psnr": val["psnr"],
        }
        logger.info("kd %s epoch %d: %s", cfg.setup, epoch + 1,
                    ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        if log is not None:
            log.append(row)
            log.plot(
                run_dir / "curves.png",
                {
                    "loss terms": ["train_ce", "train_kl", "train_mse", "train_feature", "train_total", "val_ce"],
                    "top-1": ["train_top1", "val_top1", "train_teacher_top1", "val_teacher_top1"],
                    "PSNR (dB)": ["val_psnr"],
                },
                title=f"KD student ({cfg.setup})",
            )
            save_checkpoint(ckpt_path, {"model": unwrap(net).state_dict(), "optimizer": optimizer.state_dict(),
                                        "scaler": scaler.state_dict(), "epoch": epoch, "step": step})
        barrier(info)

    final = unwrap(net)
    assert isinstance(final, KDStudent)
    val = evaluate_student(final, val_loader, teacher, info, cfg.precision)
    test = None
    if len(test_set):
        test = evaluate_student(final, eval_loader(test_set, sampling, cache, cfg.batch_size, info), teacher, info, cfg.precision)
    encoder_path, head_path = run_dir / "model.pt", run_dir / "head.pt"
    extra = {"trainer": "kd", "setup": cfg.setup, "label_names": manifest.label_names, "val_top1": val["top1"],
             "test_top1": test["top1"] if test else None}
    encoder_hash = ""
    if info.is_main:
        encoder_hash = save_model(encoder_path, final.autoencoder, extra=extra)
        save_model(head_path, final.head, extra={**extra, "encoder_hash": encoder_hash})
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


def _nan_none(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)
