"""Pretraining the edge encoder on the synthetic corpus, selected by how well it transfers to real footage.

::

    corpus (tinyact data synth --profile pretrain)            uint8 [T, 3, S, S] clips, 25 action classes
      ─► VideoAutoEncoder3D.encode ─► 1024-d latent ─► dropout ─► linear head ─► cross-entropy
      ─► every epoch: top-1 on the corpus's held-out actors
                      + a probe on real footage (optional; never its test split): the frozen encoder's
                        latents of the non-test clips, a logistic regression, stratified k-fold accuracy
      ─► OUT/model.pt (the epoch the selection picks), OUT/last.pt (resume), OUT/metrics.csv, OUT/curves.png

The objective is supervised cross-entropy on the corpus's labels: of the objectives measured
(docs/MODELS.md, "Pretrained encoder"), it is the one whose latents transfer to real footage. Selection
reads ``select_on``: ``probe`` (mean probe accuracy on real footage) when probes are configured, else the
corpus's validation top-1. Resuming (``resume=True``) continues from ``OUT/last.pt`` with the same
per-epoch shuffling, so a run can be spread over several sessions.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field, model_validator
from torch import nn
from torch.utils.data import DataLoader

from tinyact.config import TinyActConfig
from tinyact.data.synth.corpus_files import CorpusDataset
from tinyact.data.transforms import normalize
from tinyact.errors import ConfigError
from tinyact.models.autoencoder3d import PRESETS, VideoAutoEncoder3D
from tinyact.models.base import config_of, encode_fn
from tinyact.models.checkpoint import save_model
from tinyact.training.loop import Epoch, Objective, Step, Trainer, checkpoint_state, restore, run_epochs
from tinyact.training.runtime import (
    MetricsLog,
    Precision,
    autocast,
    epoch_generator,
    load_checkpoint,
    make_optimizer,
    make_scaler,
    pick_device,
    seed_everything,
)

logger = logging.getLogger(__name__)


class ProbeSpec(BaseModel):
    """Real footage that ranks epochs: a folder of class sub-folders and its split file (test rows are never read)."""

    name: str = Field(..., title="Short name in metrics.csv")
    data: Path = Field(..., title="Dataset root (ROOT/<class>/<video>)")
    split_file: Path | None = Field(None, title="CSV path,split; rows with split 'test' are left out")
    folds: int = Field(5, ge=2, title="Stratified folds over the non-test clips")
    persons_file: Path | None = Field(
        None, title="CSV with path and person columns (e.g. Weizmann's *-clips.csv)",
        description="given: leave one person out instead of stratified folds, so the probe scores people its "
                    "classifier never saw, as the test split does (stratified folds put a person's other clips "
                    "in the fit and reward latents that recognise the person)")


class PretrainConfig(TinyActConfig):
    """What ``tinyact zoo build`` / ``tinyact train pretrain`` runs with (echoed to ``OUT/config.yaml``)."""

    corpus: Path = Field(..., title="Corpus folder (tinyact data synth --profile pretrain)")
    out: Path = Field(..., title="Run folder")
    objective: Literal["supervised"] = Field("supervised", title="Training objective")
    preset: str = Field("fast-motion", title="VideoAutoEncoder3D preset")
    model_overrides: dict[str, Any] = Field(default_factory=dict, title="AutoEncoder3DConfig overrides")
    init: Path | None = Field(None, title="Start from this model file's encoder weights (a previous stage)")
    epochs: int = Field(12, ge=1, title="Epochs")
    batch_size: int = Field(32, ge=2, title="Batch size")
    lr: float = Field(2e-3, gt=0, title="Peak learning rate (AdamW, cosine)")
    lr_min: float = Field(5e-5, ge=0, title="Final learning rate")
    weight_decay: float = Field(0.05, ge=0, title="AdamW weight decay")
    label_smoothing: float = Field(0.1, ge=0, lt=1, title="Label smoothing")
    dropout: float = Field(0.2, ge=0, lt=1, title="Dropout before the head")
    crop_scale: float = Field(0.8, gt=0, le=1, title="Smallest random crop (share of the side) per batch")
    flip: bool = Field(True, title="Random left-right flips", description="only for classes that do not depend "
                       "on direction (every corpus class; not 'walking left' vs 'walking right')")
    seed: int = Field(0, title="Seed")
    device: str = Field("auto", title="Device (auto, cpu, cuda)")
    precision: Precision = Field("fp32", title="fp32, bf16 (CPU or GPU) or amp (GPU)")
    threads: int = Field(0, ge=0, title="torch CPU threads (0 = torch's default)")
    probes: list[ProbeSpec] = Field(default_factory=list, title="Real footage that ranks the epochs")
    probe_sampling: dict[str, Any] = Field(
        default_factory=dict, title="How the probe reads real footage (ClipSampling fields)",
        description="e.g. {strategy: multi, sample_fps: 8, num_clips: 4}: the mean latent of 4 windows of frames "
        "8 per second; frames and size come from the corpus; empty = uniform (frames spread over the video)")
    select_on: Literal["probe", "val"] = Field("probe", title="What picks the shipped epoch")
    tie_break: Literal["earlier", "val_top1"] = Field(
        "earlier", title="What an epoch that equals the kept model's score does",
        description="earlier: the kept model stays; val_top1: the epoch replaces it if its corpus val top-1 is "
                    "higher (a stage's starting model has none on this corpus, its head being new, so a tying epoch "
                    "replaces it: with real footage undecided, the model that learned more of the corpus)")
    start_margin: int | None = Field(
        None, ge=0, title="Clips an epoch may lose to the stage's starting model on each probe",
        description="unset: an epoch replaces the kept model when it probes higher (ties: tie_break). n: the "
                    "probe's noise counts: an epoch that gets at most n fewer clips right than the starting model "
                    "on every person-disjoint probe is taken as no worse on real footage, and of those epochs the "
                    "one with the highest corpus val top-1 is kept (the start only when there is none). Set before "
                    "a stage runs, never after")
    max_batches: int | None = Field(None, ge=1, title="Stop each epoch after this many batches (smoke tests)")
    session_epochs: int | None = Field(None, ge=1, title="Stop this call after so many epochs (resume continues)",
                                       description="spreads one run over several sessions: the schedule is the whole run's")

    @model_validator(mode="after")
    def _margin_needs_a_start_and_persons(self) -> PretrainConfig:
        # Leave-one-person-out predicts every clip once, so a score difference is a whole number of clips.
        if self.start_margin is not None:
            if self.init is None or self.select_on != "probe":
                raise ValueError("start_margin compares epochs with a starting model (init) on the probes "
                                 "(select_on: probe)")
            unpaired = [probe.name for probe in self.probes if probe.persons_file is None]
            if not self.probes or unpaired:
                raise ValueError("start_margin needs person-disjoint probes (persons_file); without: "
                                 + (", ".join(unpaired) or "no probes"))
        return self


@dataclass
class PretrainResult:
    """Where the chosen model is and what it measured."""

    model: Path
    encoder_hash: str
    epoch: int
    metrics: dict[str, float]
    seconds: float


class ClassifierHead(nn.Module):
    """Dropout and a linear layer on the encoder's latent: the training-only part of the network."""

    def __init__(self, latent_dim: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(latent_dim, classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(z))


def build_encoder(cfg: PretrainConfig, frames: int, size: int) -> VideoAutoEncoder3D:
    """The encoder to pretrain, sized for the corpus's clips."""
    if cfg.preset not in PRESETS:
        raise ConfigError(f"unknown preset {cfg.preset!r}: use one of {', '.join(PRESETS)}")
    overrides: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model_overrides.items()}
    config = replace(PRESETS[cfg.preset], num_frames=frames, input_size=(size, size), **overrides)
    return VideoAutoEncoder3D(config)


def augment(clips: torch.Tensor, generator: torch.Generator, crop_scale: float, flip: bool = True) -> torch.Tensor:
    """A random square crop (one per batch, resized back) and, with ``flip``, a random horizontal flip per clip.

    uint8 ``[B, T, 3, S, S]`` in and out. Flips keep the labels only where no class depends on direction (true of
    every corpus class).
    """
    b, t, c, s, _ = clips.shape
    side = int(round(s * float(torch.empty(1).uniform_(crop_scale, 1.0, generator=generator))))
    if side < s:
        top, left = (int(torch.randint(0, s - side + 1, (1,), generator=generator)) for _ in range(2))
        crop = clips[..., top : top + side, left : left + side].reshape(b * t, c, side, side).float()
        clips = F.interpolate(crop, size=(s, s), mode="bilinear", align_corners=False)
        clips = clips.round_().clamp_(0, 255).to(torch.uint8).reshape(b, t, c, s, s)
    flipped = torch.rand(b, generator=generator) < 0.5  # drawn either way: the random stream does not depend on flip
    if flip and flipped.any():
        clips = clips.clone()
        clips[flipped] = clips[flipped].flip(-1)
    return clips


@torch.no_grad()
def encode_clips(model: nn.Module, clips: torch.Tensor, device: torch.device, batch: int = 64) -> np.ndarray:
    """uint8 ``[N, T, 3, S, S]`` (or ``[N, K, T, 3, S, S]``: K windows of a video) -> latents
    ``[N, latent_dim]`` with the model in eval mode; the K windows' latents are averaged."""
    from tinyact.training.extract import encode_windows

    model.eval()
    out = []
    for start in range(0, len(clips), batch):
        x = normalize(clips[start : start + batch].to(device), config_of(model).normalization)
        out.append(encode_windows(model, x).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, config_of(model).latent_dim), np.float32)


@dataclass
class ProbeData:
    """The non-test clips of one probe dataset, decoded once."""

    spec: ProbeSpec
    clips: torch.Tensor  # uint8 [N, T, 3, S, S]
    labels: np.ndarray
    groups: np.ndarray | None = None  # the person of each clip (spec.persons_file), else None

    def accuracy(self, latents: np.ndarray, seed: int = 0) -> float:
        """The probe's score of ``latents`` (one row per clip): :func:`probe_accuracy`."""
        return probe_accuracy(latents, self.labels, self.spec.folds, seed, groups=self.groups)


def load_probe(spec: ProbeSpec, frames: int, size: int, cache_root: Path,
               sampling: dict[str, Any] | None = None) -> ProbeData:
    """Decode the probe's non-test clips through the data path's clip cache.

    ``sampling`` holds :class:`~tinyact.data.video.ClipSampling` fields besides frames and size (default:
    uniform); with ``strategy: multi`` each clip is ``[K, T, 3, S, S]``.
    """
    from tinyact.data.cache import ClipCache, build_cache
    from tinyact.data.layouts import read_folder
    from tinyact.data.manifest import Manifest
    from tinyact.data.video import ClipSampling

    entries, _ = read_folder(spec.data, split_file=spec.split_file)
    entries = [e for e in entries if e.split != "test"]  # the test split is reported once, elsewhere
    manifest = Manifest(entries, Path(spec.data).resolve())
    read = ClipSampling.model_validate({"strategy": "uniform", **(sampling or {}), "num_frames": frames, "size": size})
    suffix = "" if read.strategy == "uniform" else f"-{read.strategy}{read.num_clips}-{read.sample_fps or read.stride}"
    cache_dir = cache_root / f"probe-{spec.name}-{frames}x{size}{suffix}"
    read.save(cache_dir)
    build_cache(manifest, cache_dir, read, workers=1)
    cache = ClipCache(cache_dir)
    kept = [e for e in manifest.entries if e.clip_id in cache]
    clips = torch.stack([cache[e.clip_id] for e in kept])
    labels = np.array([manifest.label_names.index(e.label) for e in kept])
    groups = None
    if spec.persons_file is not None:
        persons = read_persons(spec.persons_file)
        missing = [e.path for e in kept if e.path not in persons]
        if missing:
            raise ConfigError(f"{spec.persons_file} names no person for {len(missing)} probe clip(s), e.g. "
                              f"{missing[0]}")
        groups = np.array([persons[e.path] for e in kept])
    return ProbeData(spec, clips, labels, groups)


def read_persons(path: Path) -> dict[str, str]:
    """``path`` (relative to the dataset root, as a split file names it) -> person, from a CSV with those two
    columns (more are ignored)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"path", "person"} <= set(rows[0]):
        raise ConfigError(f"{path}: a persons file needs 'path' and 'person' columns")
    return {row["path"]: row["person"] for row in rows}


def probe_classifier() -> Any:
    """The probe's classifier: a standardised logistic regression with a fixed C (nothing is tuned on a probe)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))


def probe_predictions(latents: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each clip's class as predicted by the probe's classifier fitted on the other persons' clips
    (leave-one-person-out; ``groups`` holds a person per row): the person-disjoint probe, clip by clip."""
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
    from threadpoolctl import threadpool_limits

    if len(set(groups)) < 2:
        raise ConfigError("a person-disjoint probe needs clips of at least two persons outside its test split")
    with threadpool_limits(1):
        return cross_val_predict(probe_classifier(), latents, labels, groups=groups, cv=LeaveOneGroupOut())


def probe_accuracy(latents: np.ndarray, labels: np.ndarray, folds: int, seed: int = 0,
                   groups: np.ndarray | None = None) -> float:
    """Accuracy of a standardised logistic regression on ``latents``: stratified k-fold, or with ``groups``
    (a person per row) leave-one-person-out, every clip predicted once (the mean over clips, not over folds)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    if groups is not None:
        return float((probe_predictions(latents, labels, groups) == labels).mean())
    k = int(min(folds, np.bincount(labels).min()))
    if k < 2:
        raise ConfigError("a probe needs at least two clips of every class outside its test split")
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with threadpool_limits(1):  # a small fit: more BLAS threads only contend with the training that runs beside it
        return float(cross_val_score(probe_classifier(), latents, labels, cv=cv).mean())


def _evaluate(model: nn.Module, head: ClassifierHead, loader: DataLoader, device: torch.device,
              precision: Precision) -> float:
    model.eval()
    head.eval()
    correct = total = 0
    with torch.no_grad(), autocast(device, precision):
        for clips, labels in loader:
            x = normalize(clips.to(device), config_of(model).normalization)
            logits = head(encode_fn(model)(x))
            correct += int((logits.argmax(1).cpu() == labels).sum())
            total += len(labels)
    return correct / max(1, total)


class LabelledClips(Protocol):
    """What supervised training reads: ``(uint8 [T, 3, S, S], label)`` items and the class names (a corpus split,
    or a user's labelled windows: :class:`tinyact.data.datasets.CachedWindows`)."""

    label_names: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]: ...


class SupervisedPretraining(Objective):
    """Cross-entropy on the corpus's labels with a per-step cosine schedule; the epoch with the best ``score``
    (probe or corpus val top-1) is written to ``OUT/model.pt``. Fine-tuning on a user's labelled windows
    (:mod:`tinyact.training.finetune`) runs the same objective."""

    sum_keys = ("seen", "correct", "loss")

    def __init__(self, cfg: PretrainConfig, model: nn.Module, head: ClassifierHead, trainer: Trainer,
                 device: torch.device, train_set: LabelledClips, val_loader: DataLoader, probes: list[ProbeData]) -> None:
        self.cfg, self.model, self.head, self.trainer, self.device = cfg, model, head, trainer, device
        self.encode, self.stats = encode_fn(model), config_of(model).normalization  # looked up once, not per step
        self.label, self.epochs = "pretrain", cfg.epochs
        self.train_set, self.val_loader, self.probes = train_set, val_loader, probes
        self.best: dict[str, Any] = {"score": -1.0, "epoch": -1}
        self.start_scores: dict[str, float] = {}  # with start_margin: the starting model's probe scores
        steps = len(train_set) // cfg.batch_size
        self.steps_per_epoch = min(steps, cfg.max_batches) if cfg.max_batches else steps
        self.total_steps = max(1, self.steps_per_epoch * cfg.epochs)
        self.generator = torch.Generator()
        self.order = torch.zeros(0, dtype=torch.long)
        self.lr = float("nan")

    def begin_epoch(self, epoch: int) -> Epoch:
        self.generator = epoch_generator(self.cfg.seed, epoch)
        self.order = torch.randperm(len(self.train_set), generator=self.generator)
        self.model.train()
        self.head.train()
        return Epoch([(epoch, step) for step in range(self.steps_per_epoch)], self.steps_per_epoch)

    def step(self, batch: Any) -> Step:
        cfg, (epoch, step) = self.cfg, batch
        done = epoch * self.steps_per_epoch + step
        self.lr = cfg.lr_min + (cfg.lr - cfg.lr_min) * 0.5 * (1 + np.cos(np.pi * done / self.total_steps))
        for group in self.trainer.optimizer.param_groups:
            group["lr"] = self.lr * min(1.0, (done + 1) / max(1, self.steps_per_epoch // 2))  # half-epoch warm-up
        idx = self.order[step * cfg.batch_size : (step + 1) * cfg.batch_size].tolist()
        items = [self.train_set[i] for i in idx]
        clips = augment(torch.stack([c for c, _ in items]), self.generator, cfg.crop_scale, cfg.flip)
        labels = torch.tensor([y for _, y in items], device=self.device)
        with autocast(self.device, cfg.precision):
            logits = self.head(self.encode(normalize(clips.to(self.device), self.stats)))
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
        return Step(loss, {"seen": len(idx), "correct": int((logits.argmax(1) == labels).sum()),
                           "loss": float(loss.detach()) * len(idx)})

    def end_epoch(self, epoch: int, sums: dict[str, float], seconds: float) -> dict[str, float]:
        cfg, seen = self.cfg, sums["seen"]
        row: dict[str, float] = {
            "epoch": epoch, "train_loss": sums["loss"] / max(1, seen), "train_top1": sums["correct"] / max(1, seen),
            "val_top1": _evaluate(self.model, self.head, self.val_loader, self.device, cfg.precision),
            "clips_per_s": seen / max(seconds, 1e-9), "lr": self.lr,
        }
        for probe in self.probes:
            latents = encode_clips(self.model, probe.clips, self.device)
            key = f"probe_{probe.spec.name}"
            row[key] = probe.accuracy(latents, cfg.seed)
            if self.start_scores:  # clips the start gets right and this epoch not, minus the other way round
                row[f"net_loss_{probe.spec.name}"] = round((self.start_scores[key] - row[key]) * len(probe.labels))
        probe_keys = [f"probe_{p.spec.name}" for p in self.probes]
        use_probe = self.probes and cfg.select_on == "probe"
        row["score"] = float(np.mean([row[k] for k in probe_keys])) if use_probe else row["val_top1"]
        logger.info("pretrain: epoch %d %s", epoch + 1, " ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch"))
        if self.replaces_kept(row):
            self.best = {"score": row["score"], "epoch": epoch,
                         **{k: row[k] for k in row if k in ("val_top1", *probe_keys) or k.startswith("net_loss_")}}
            save_model(Path(cfg.out) / "model.pt", self.model,
                       extra={"pretrain": cfg.model_dump(mode="json"), "epoch": epoch,
                              "label_names": self.train_set.label_names, "selection": self.best})
        return row

    def replaces_kept(self, row: dict[str, float]) -> bool:
        """Whether an epoch's ``row`` replaces the kept model: a higher score, or an equal one and ``tie_break``
        says so (probe scores are shares of a few dozen clips: exact ties happen). With ``start_margin``: an epoch
        within the margin of the starting model on every probe and with a higher corpus val top-1 than the kept
        model's."""
        if self.start_scores:
            within = all(row[f"net_loss_{probe.spec.name}"] <= (self.cfg.start_margin or 0) for probe in self.probes)
            return within and row["val_top1"] > self.best.get("val_top1", -1.0)
        if math.isclose(row["score"], self.best["score"], abs_tol=1e-9):
            return self.cfg.tie_break == "val_top1" and row["val_top1"] > self.best.get("val_top1", -1.0)
        return row["score"] > self.best["score"]

    def plot(self, log: MetricsLog, epoch: int, seconds: float) -> None:
        probe_keys = [f"probe_{p.spec.name}" for p in self.probes]
        log.plot(Path(self.cfg.out) / "curves.png", {"loss": ["train_loss"], "top-1": ["train_top1", "val_top1", *probe_keys]},
                 title=f"{self.label} on {Path(self.cfg.corpus).name}")

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        return checkpoint_state({"model": self.model, "head": self.head}, self.trainer, rng=True, epoch=epoch,
                                best=self.best, start_scores=self.start_scores)


def trained_modules(model: nn.Module) -> list[nn.Module]:
    """What training updates: a :class:`VideoAutoEncoder3D`'s encoder half (``encoder_modules``; its decoder is
    not used), else the whole module."""
    modules = getattr(model, "encoder_modules", None)
    return list(modules()) if callable(modules) else [model]


def supervised_objective(cfg: PretrainConfig, model: nn.Module, train_set: LabelledClips,
                         val_loader: DataLoader, probes: list[ProbeData], device: torch.device, checkpoint: Path,
                         metrics: Path) -> SupervisedPretraining:
    """The objective with a fresh head and its trainer (AdamW over the encoder and the head, ``checkpoint`` for
    resuming, ``metrics`` for the per-epoch rows)."""
    head = ClassifierHead(config_of(model).latent_dim, len(train_set.label_names), cfg.dropout).to(device)
    params = [p for m in (*trained_modules(model), head) for p in m.parameters()]
    trainer = Trainer(optimizer=make_optimizer(params, "adamw", cfg.lr, cfg.weight_decay),
                      scaler=make_scaler(cfg.precision, device), checkpoint=checkpoint, log=MetricsLog(metrics))
    return SupervisedPretraining(cfg, model, head, trainer, device, train_set, val_loader, probes)


def resume_objective(objective: SupervisedPretraining, resume: bool) -> int:
    """The first epoch to run: after the checkpoint's with ``resume`` (weights, optimiser, RNG and the best epoch
    so far restored), else 0.

    Raises:
        ConfigError: when the run folder already holds a run and ``resume`` is off (nothing is overwritten).
    """
    trainer = objective.trainer
    if not trainer.checkpoint.is_file():
        return 0
    if not resume:
        raise ConfigError(f"{trainer.checkpoint.parent} already holds a run; pass --resume to continue it or "
                          "choose a new --out")
    state = load_checkpoint(trainer.checkpoint)
    restore(state, {"model": objective.model, "head": objective.head}, trainer, rng=True)
    objective.best = state["best"]
    objective.start_scores = state.get("start_scores", {})
    assert trainer.log is not None
    trainer.log.truncate(state["epoch"] + 1)
    kept = int(objective.best["epoch"])
    logger.info("%s: resuming after epoch %d (best so far: %s)", objective.label, state["epoch"] + 1,
                f"epoch {kept + 1}" if kept >= 0 else "the starting model")
    return int(state["epoch"]) + 1


def start_from(model: nn.Module, init: Path) -> None:
    """Load the encoder weights of model file ``init`` into ``model``: as they are for the same architecture, grown
    (:meth:`VideoAutoEncoder3D.grow_from`) when ``model`` adds or drops blocks, adds the frames' channels or
    strides its stem otherwise.

    Raises:
        ConfigError: when ``init`` holds an architecture ``model`` cannot start from.
    """
    from tinyact.models.checkpoint import load_model

    start, _ = load_model(init)
    shapes = [{k: v.shape for k, v in m.state_dict().items()} for m in (model, start)]
    if shapes[0] == shapes[1]:
        model.load_state_dict(start.state_dict())
    elif isinstance(start, VideoAutoEncoder3D) and isinstance(model, VideoAutoEncoder3D):
        try:
            model.grow_from(start)
        except ValueError as error:
            raise ConfigError(f"init {init}: {error}") from None
        config = model.config
        logger.info("pretrain: grew %s into stage_blocks %s, input %s, stem stride %s, stem kernel %s", init,
                    config.stage_blocks, config.input_mode, config.stem_stride, config.stem_kernel)
    else:
        raise ConfigError(f"init {init} holds another architecture than this stage's model")


def pretrain(cfg: PretrainConfig, resume: bool = False, model: nn.Module | None = None) -> PretrainResult:
    """Train (or resume) into ``cfg.out``; returns the selected model.

    ``model`` trains another encoder with the same recipe instead of ``cfg.preset``'s (``preset``,
    ``model_overrides`` and ``init`` are then not used): a peer network for a comparison at equal training
    (``benchmarks/equal_training.py``). It needs what :class:`VideoAutoEncoder3D` offers training: ``encode``
    on normalised ``[B, T, 3, H, W]`` clips and a ``config`` with ``normalization``, ``latent_dim`` and
    ``to_dict()`` (saved into ``model.pt``).
    """
    started = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    train_set, val_set = CorpusDataset(cfg.corpus, "train"), CorpusDataset(cfg.corpus, "val")
    frames, size = train_set.cfg.frames, train_set.cfg.size
    custom = model is not None
    model = (model if model is not None else build_encoder(cfg, frames, size)).to(device)
    if cfg.init is not None and not custom:  # a later stage: continue from the earlier stage's chosen encoder
        start_from(model, cfg.init)
    probes = [load_probe(spec, frames, size, out / "probe-cache", cfg.probe_sampling) for spec in cfg.probes]
    val_loader = DataLoader(val_set, batch_size=64, num_workers=0)
    objective = supervised_objective(cfg, model, train_set, val_loader, probes, device, out / "last.pt",
                                     out / "metrics.csv")
    start_epoch = resume_objective(objective, resume)
    if cfg.init is not None and not custom and start_epoch == 0 and probes and cfg.select_on == "probe":
        # The starting model is a candidate too: a stage that does not improve the probe changes nothing.
        scores = {f"probe_{p.spec.name}": p.accuracy(encode_clips(model, p.clips, device), cfg.seed) for p in probes}
        objective.best = {"score": float(np.mean(list(scores.values()))), "epoch": -1, **scores}
        if cfg.start_margin is not None:
            objective.start_scores = scores
        save_model(out / "model.pt", model, extra={"pretrain": cfg.model_dump(mode="json"), "epoch": -1,
                                                  "label_names": train_set.label_names, "selection": objective.best})
        logger.info("pretrain: the starting model probes %s", scores)

    stop = cfg.epochs if cfg.session_epochs is None else min(cfg.epochs, start_epoch + cfg.session_epochs)
    run_epochs(objective, range(start_epoch, stop), objective.trainer)
    best = objective.best
    (out / "best.json").write_text(json.dumps(best, indent=2))
    chosen = torch.load(out / "model.pt", map_location="cpu", weights_only=True)  # save_model's weight hash
    return PretrainResult(model=out / "model.pt", encoder_hash=str(chosen["hash"]),
                          epoch=int(best["epoch"]), metrics={k: float(v) for k, v in best.items()},
                          seconds=time.perf_counter() - started)


__all__ = ["PretrainConfig", "PretrainResult", "ProbeSpec", "augment", "encode_clips", "pretrain", "probe_accuracy"]
