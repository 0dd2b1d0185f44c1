"""Self-supervised training of the edge encoder (``tinyact train ssl``) and label-free adaptation to a user's
footage (``tinyact train adapt``).

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

Objectives (``SSLTrainConfig.objective``; ``ssl`` = :data:`RECOMMENDED`):

* ``rho-byol`` — ρBYOL (Feichtenhofer et al., CVPR 2021, "A Large-Scale Study on Unsupervised Spatiotemporal
  Representation Learning"): ρ clips from different times of one video are positives; the online network
  (encoder, projector MLP, predictor MLP) predicts the projection that a momentum (EMA) copy gives for every
  other clip; loss ``2 − 2·cos``, summed over ordered pairs and averaged. No negatives.
* ``rho-simclr`` — the same views with SimCLR's InfoNCE (temperature 0.1): the other clips of the video are the
  positives, every clip of the other videos in the batch a negative.
* ``speed`` — playback-speed / arrow-of-time prediction: a clip cut at stride s₁, s₂ … (in window frames) or
  played backwards; a linear head on the latent names which. Only motion can answer it.

The window cache: ``W`` (default ``3·T``) instants spread evenly over each video (uniform sampling, as the
extract step takes ``T``; a video with fewer frames than ``W`` repeats frames rather than being skipped), or,
with ``windows > 1``, that many dense windows of ``W`` frames ``window_stride`` apart (long footage). A view at
stride ``s`` spans ``(T − 1)·s + 1`` window frames. With ``W = 3·T`` the probe clip — every third window frame
starting at the second — is exactly the clip ``tinyact extract`` reads (same instants, same frames).

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
import csv
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from tinyact.config import TinyActConfig
from tinyact.console import progress_bar
from tinyact.data.cache import write_shard
from tinyact.data.manifest import SPLITS, Manifest
from tinyact.data.transforms import normalize
from tinyact.data.video import ClipSampling, VideoDecodeError
from tinyact.errors import ConfigError, DatasetError
from tinyact.models.checkpoint import load_model, save_model, state_dict_hash
from tinyact.training.runtime import (
    MetricsLog,
    Precision,
    autocast,
    epoch_generator,
    load_checkpoint,
    pick_device,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)

logger = logging.getLogger(__name__)

Objective = Literal["ssl", "rho-byol", "rho-simclr", "speed"]
#: What ``--objective ssl`` means: the objective that measured best (docs/MODELS.md, "Self-supervised objectives").
RECOMMENDED = "rho-simclr"
OBJECTIVES = ("rho-byol", "rho-simclr", "speed")

#: Fields that change the model, the data or the views; a resumed run must keep them.
_SHAPE_FIELDS = ("objective", "init", "preset", "size", "frames", "model_overrides", "window_frames", "windows",
                 "window_stride", "rho", "strides", "seed", "train_splits", "proj_dim", "proj_hidden")


def resolve_objective(name: str) -> str:
    """``ssl`` -> :data:`RECOMMENDED`; any other known name unchanged; an unknown one is a :class:`ConfigError`."""
    if name == "ssl":
        return RECOMMENDED
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown self-supervised objective {name!r}: use ssl, {', '.join(OBJECTIVES)} "
                          "(or reconstruction, the autoencoder of `tinyact train ae`)")
    return name


class SSLTrainConfig(TinyActConfig):
    """What ``tinyact train ssl`` trains (YAML keys = field names)."""

    manifest: Path = Field(..., title="Manifest CSV", description="from `tinyact data manifest`; labels only feed the probe")
    out: Path = Field(..., title="Run folder")
    objective: Objective = Field("ssl", title="Objective", description=f"ssl (= {RECOMMENDED}), rho-byol, rho-simclr or speed")
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


# --------------------------------------------------------------------------------------------------
# The window cache
# --------------------------------------------------------------------------------------------------


def read_windows(source: str | Path, sampling: ClipSampling) -> np.ndarray:
    """uint8 ``[K, W, 3, S, S]`` windows of one video.

    ``uniform``: the frames on screen at W instants spread over the whole video; a video with fewer than W
    frames repeats frames (``sample_clips`` would refuse it). ``multi``: :func:`sample_clips`' K dense windows.
    Raises :class:`VideoDecodeError` for a file that cannot be read.
    """
    from tinyact.data.transforms import prepare_frames
    from tinyact.data.video import decode_frames_at, frames_at, probe_video, sample_clips, uniform_timestamps

    if sampling.strategy != "uniform":
        return np.stack([c.frames.numpy() for c in sample_clips(source, sampling)])  # K x [W, 3, S, S]
    info = probe_video(source)
    indices = frames_at(info.frame_times, uniform_timestamps(info.start, info.end, sampling.num_frames))
    images = decode_frames_at(source, info, indices, threads=sampling.threads)  # [W, H, W, 3]
    return prepare_frames(images, sampling.size).numpy()[None]  # [1, W, 3, S, S]


def _decode_window_chunk(args: tuple[list[tuple[str, str]], dict, str]) -> tuple[str | None, list[str], list[tuple[str, str, str]]]:
    """Worker: decode ``(path, clip_id)`` pairs into one shard; returns (shard name, cached ids, skipped)."""
    items, sampling_dict, out_dir = args
    sampling = ClipSampling.model_validate(sampling_dict)
    arrays, ids, skipped = [], [], []
    for path, clip_id in items:
        try:
            arrays.append(read_windows(path, sampling))
            ids.append(clip_id)
        except VideoDecodeError as error:
            skipped.append((path, clip_id, error.reason))
    if not arrays:
        return None, [], skipped
    return write_shard(out_dir, np.stack(arrays)), ids, skipped  # [n, K, W, 3, S, S]


def build_window_cache(manifest: Manifest, out: str | Path, sampling: ClipSampling, workers: int = 0,
                       chunk_size: int = 16) -> Path:
    """Decode every video of ``manifest`` into windows at ``out`` (resuming a partial build).

    Same layout and resume rules as :func:`tinyact.data.cache.build_cache` (``cache.json``, ``index.csv``,
    ``skipped.csv``, ``shard-*.npy`` of ``[n, K, W, 3, S, S]``), so :class:`tinyact.data.cache.ClipCache` reads
    it; ``cache.json`` adds ``"windows": true`` because short videos repeat frames here instead of being skipped.
    """
    from tinyact.data.cache import INDEX_FIELDS, SKIPPED_FIELDS, append_rows, read_rows
    from tinyact.parallel import run_bounded, worker_count

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "cache.json"
    key = sampling.model_dump(exclude={"threads"})
    if meta_path.exists():
        existing = json.loads(meta_path.read_text())
        if existing.get("sampling") != key or not existing.get("windows"):
            raise DatasetError(f"{out} holds a different cache ({existing.get('sampling')}); use another cache_dir "
                               "or delete this one")
    else:
        meta_path.write_text(json.dumps({"sampling": key, "format": 1, "windows": True}, indent=2))
    index_rows = read_rows(out / "index.csv")
    done = {r["clip_id"] for r in index_rows} | {r["clip_id"] for r in read_rows(out / "skipped.csv")}
    referenced = {r["shard"] for r in index_rows}
    for stale in [*out.glob("shard-*.npy"), *out.glob("shard-*.tmp")]:
        if stale.name not in referenced:  # left behind by a killed build
            stale.unlink()
    todo = [e for e in manifest.entries if e.clip_id not in done]
    if todo:
        logger.info("ssl: caching %d-frame windows of %d video(s) into %s%s", sampling.num_frames, len(todo), out,
                    f" ({len(manifest) - len(todo)} already done)" if done else "")
    chunks = [[(str(manifest.resolve(e)), e.clip_id) for e in todo[i : i + chunk_size]]
              for i in range(0, len(todo), chunk_size)]
    workers = min(worker_count(workers), max(1, len(chunks)))
    with progress_bar("ssl: decode windows", total=len(todo), unit="video") as bar:

        def record(result: tuple[str | None, list[str], list[tuple[str, str, str]]]) -> None:
            shard, ids, bad = result
            if shard is not None:
                append_rows(out / "index.csv", INDEX_FIELDS, [(cid, shard, row) for row, cid in enumerate(ids)])
            if bad:
                append_rows(out / "skipped.csv", SKIPPED_FIELDS, bad)
                for path, _, reason in bad:
                    logger.warning("ssl: skipped %s: %s", path, reason)
            bar.advance(len(ids) + len(bad))

        run_bounded(_decode_window_chunk, ((chunk, key, str(out)) for chunk in chunks), workers, record)
    return out


# --------------------------------------------------------------------------------------------------
# Views and augmentations
# --------------------------------------------------------------------------------------------------


def cut_view(window: torch.Tensor, frames: int, stride: int, start: int, reverse: bool = False) -> torch.Tensor:
    """``frames`` frames of ``window`` (``[W, 3, S, S]``) from ``start``, ``stride`` apart, reversed in time if asked.

    Returns ``[T, 3, S, S]`` with the window's dtype.
    """
    idx = start + stride * torch.arange(frames)
    if int(idx[-1]) >= window.shape[0]:
        raise ValueError(f"a view of {frames} frames at stride {stride} from {start} runs past a {window.shape[0]}-frame window")
    view = window[idx]
    return view.flip(0) if reverse else view


def sample_views(
    windows: torch.Tensor, frames: int, strides: Sequence[int], count: int, generator: torch.Generator,
    speed_classes: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random views of each video: ``windows`` uint8 ``[B, K, W, 3, S, S]`` -> (``[count, B, T, 3, S, S]``,
    labels ``[count, B]``).

    Each view draws a window k, a stride from ``strides`` and a start uniformly among those that fit, so two views
    of one video usually cover different times. With ``speed_classes`` each view also draws a class
    ``c ∈ {0 … len(strides)}``: ``c < len(strides)`` = forward at ``strides[c]``, ``c = len(strides)`` = reversed
    at a random stride; the labels are those classes (else all zero).
    """
    b, k, w = windows.shape[:3]
    n_classes = len(strides) + 1
    views = torch.empty((count, b, frames, *windows.shape[3:]), dtype=windows.dtype)
    labels = torch.zeros((count, b), dtype=torch.long)
    for v in range(count):
        for i in range(b):
            which = int(torch.randint(0, k, (1,), generator=generator))
            reverse = False
            if speed_classes:
                label = int(torch.randint(0, n_classes, (1,), generator=generator))
                labels[v, i] = label
                reverse = label == len(strides)
                pick = int(torch.randint(0, len(strides), (1,), generator=generator)) if reverse else label
            else:
                pick = int(torch.randint(0, len(strides), (1,), generator=generator))
            stride = int(strides[pick])
            start = int(torch.randint(0, w - (frames - 1) * stride, (1,), generator=generator))
            views[v, i] = cut_view(windows[i, which], frames, stride, start, reverse)
    return views, labels


def augment_clips(
    clips: torch.Tensor, generator: torch.Generator, *, crop_scale: tuple[float, float] = (0.35, 1.0),
    flip_p: float = 0.5, jitter: float = 0.4, jitter_p: float = 0.8, grey_p: float = 0.2,
    aspect: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Random resized crop, horizontal flip, colour jitter and greyscale, drawn once per clip (the same for every
    frame, so the augmentation adds no motion).

    uint8 ``[N, T, 3, H, W]`` in, uint8 ``[N, T, 3, H, W]`` out (same shape, values in ``[0, 255]``).
    Crop: an area share in ``crop_scale`` and an aspect ratio in ``aspect`` (times the frame's), resized back
    bilinearly.
    Jitter (with probability ``jitter_p``): brightness, contrast and saturation factors in
    ``[1 − jitter, 1 + jitter]``. Greyscale (``grey_p``): ITU-R 601 luma in all three channels.
    """
    if clips.dtype != torch.uint8 or clips.dim() != 5:
        raise ValueError(f"augment_clips takes uint8 [N, T, 3, H, W], got {clips.dtype} {tuple(clips.shape)}")
    n, t, c, h, w = clips.shape
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    out = torch.empty_like(clips)

    def uniform(lo: float, hi: float) -> float:
        return float(torch.empty(1).uniform_(lo, hi, generator=generator))

    for i in range(n):
        x = clips[i].float()  # [T, 3, H, W] in [0, 255]
        share = uniform(*crop_scale)
        ratio = math.exp(uniform(*(math.log(r) for r in aspect)))  # relative to the frame's own aspect ratio
        ch = max(1, min(h, int(round(h * math.sqrt(share / ratio)))))
        cw = max(1, min(w, int(round(w * math.sqrt(share * ratio)))))
        top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
        x = x[..., top : top + ch, left : left + cw]
        if (ch, cw) != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        if uniform(0, 1) < flip_p:
            x = x.flip(-1)
        if uniform(0, 1) < jitter_p and jitter > 0:
            brightness, contrast, saturation = (uniform(1 - jitter, 1 + jitter) for _ in range(3))
            x = x * brightness
            grey = (x * luma).sum(1, keepdim=True)  # [T, 1, H, W]
            x = (x - grey.mean()) * contrast + grey.mean()
            grey = (x * luma).sum(1, keepdim=True)
            x = grey + (x - grey) * saturation
        if uniform(0, 1) < grey_p:
            x = (x * luma).sum(1, keepdim=True).expand(t, c, h, w)
        out[i] = x.round().clamp(0, 255).to(torch.uint8)
    return out


# --------------------------------------------------------------------------------------------------
# Objectives
# --------------------------------------------------------------------------------------------------


class MLPHead(nn.Sequential):
    """``Linear ─ BatchNorm1d ─ ReLU ─ Linear``: BYOL's projector and predictor (``[N, in] -> [N, out]``)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


def byol_loss(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """ρBYOL's loss: mean over ordered pairs of different views ``i ≠ j`` of ``2 − 2·cos(p_i, z_j)``.

    ``predictions`` and ``targets`` are ``[ρ, B, D]``; ``targets`` should carry no gradient.
    """
    p = F.normalize(predictions.float(), dim=-1)
    z = F.normalize(targets.float(), dim=-1)
    rho = p.shape[0]
    cos = torch.einsum("ibd,jbd->ijb", p, z)  # [ρ, ρ, B]
    off_diagonal = ~torch.eye(rho, dtype=torch.bool, device=p.device)
    return (2 - 2 * cos[off_diagonal]).mean()


def info_nce_loss(projections: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's InfoNCE over ``[ρ, B, D]`` projections: for each clip, the other ρ − 1 clips of its video are the
    positives and every clip of the other videos a negative; mean over clips and positives."""
    rho, b, _ = projections.shape
    z = F.normalize(projections.float().reshape(rho * b, -1), dim=-1)  # [ρ, B, D] -> [ρB, D], view-major
    logits = z @ z.t() / temperature
    eye = torch.eye(rho * b, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    video = torch.arange(rho * b, device=z.device) % b
    positives = (video[:, None] == video[None, :]) & ~eye
    log_prob = logits.log_softmax(dim=1)
    return -(log_prob[positives]).mean()


class SSLHeads(nn.Module):
    """The training-only parts of an objective (the encoder is the model's own ``encode``).

    ``rho-byol``: ``projector`` and ``predictor`` MLPs, plus ``target_projector`` (EMA; the EMA encoder is kept
    beside it by the trainer). ``rho-simclr``: ``projector``. ``speed``: ``classifier`` (latent -> classes).
    """

    def __init__(self, objective: str, latent_dim: int, cfg: SSLTrainConfig) -> None:
        super().__init__()
        self.objective = objective
        if objective in ("rho-byol", "rho-simclr"):
            self.projector = MLPHead(latent_dim, cfg.proj_hidden, cfg.proj_dim)
        if objective == "rho-byol":
            self.predictor = MLPHead(cfg.proj_dim, cfg.proj_hidden, cfg.proj_dim)
        if objective == "speed":
            self.classifier = nn.Linear(latent_dim, len(cfg.strides) + 1)


def objective_loss(
    objective: str, model: nn.Module, heads: SSLHeads, x: torch.Tensor, labels: torch.Tensor, rho: int, *,
    target: nn.Module | None = None, target_projector: nn.Module | None = None, temperature: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's loss: ``x`` normalised float ``[ρ·B, T, 3, S, S]``, view-major (all first views, then all second
    views …); ``labels`` ``[ρ·B]`` (speed classes; ignored by the other objectives). Returns (loss, latents
    ``[ρ·B, latent_dim]``). ``rho-byol`` needs the EMA ``target`` encoder and ``target_projector``.
    """
    z = model.encode(x)  # [ρB, latent]
    if objective == "rho-byol":
        if target is None or target_projector is None:
            raise ValueError("rho-byol needs the EMA target encoder and projector")
        pred = heads.predictor(heads.projector(z))
        with torch.no_grad():
            target_z = target_projector(target.encode(x))
        loss = byol_loss(pred.float().unflatten(0, (rho, -1)), target_z.float().unflatten(0, (rho, -1)))
    elif objective == "rho-simclr":
        loss = info_nce_loss(heads.projector(z).float().unflatten(0, (rho, -1)), temperature)  # [ρB, D] -> [ρ, B, D]
    elif objective == "speed":
        loss = F.cross_entropy(heads.classifier(z).float(), labels)
    else:
        raise ConfigError(f"unknown objective {objective!r}")
    return loss, z


def _ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target ← m·target + (1 − m)·online`` for parameters; buffers (BatchNorm statistics) copied."""
    with torch.no_grad():
        for t, o in zip(target.parameters(), online.parameters(), strict=True):
            t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
        for t, o in zip(target.buffers(), online.buffers(), strict=True):
            t.copy_(o)


def ema_momentum(base: float, step: int, total: int) -> float:
    """BYOL's schedule: ``1 − (1 − base)·(cos(π·step/total) + 1)/2``, from ``base`` to 1."""
    return 1 - (1 - base) * (math.cos(math.pi * step / max(1, total)) + 1) / 2


# --------------------------------------------------------------------------------------------------
# The latent-quality readout
# --------------------------------------------------------------------------------------------------


@dataclass
class ProbeSet:
    """Labelled clips for the per-epoch readout: uint8 ``[N, T, 3, S, S]`` and integer labels, train and val."""

    train_clips: torch.Tensor
    train_labels: np.ndarray
    val_clips: torch.Tensor
    val_labels: np.ndarray

    @property
    def usable(self) -> bool:
        return len(set(self.train_labels.tolist())) >= 2 and len(self.val_labels) > 0


def probe_clip(windows: np.ndarray, frames: int) -> torch.Tensor:
    """The clip the extract step would read, cut from a video's windows ``[K, W, 3, S, S]`` -> ``[T, 3, S, S]``.

    Middle window; ``T`` evenly spaced frames (exactly uniform sampling's instants when ``W`` is an odd multiple
    of ``T``, e.g. the default ``3·T``).
    """
    window = windows[len(windows) // 2]
    w = window.shape[0]
    idx = ((np.arange(frames) + 0.5) * w / frames - 0.5).round().astype(int).clip(0, w - 1)
    return torch.from_numpy(np.ascontiguousarray(window[idx]))


def load_probe_set(manifest: Manifest, cache, frames: int, train_split: str, val_split: str) -> ProbeSet:
    """Probe clips of the manifest's ``train_split`` and ``val_split`` videos found in ``cache``."""

    def take(split: str) -> tuple[torch.Tensor, np.ndarray]:
        entries = [e for e in manifest.split(split).entries if e.clip_id in cache]
        if not entries:
            return torch.zeros((0,), dtype=torch.uint8), np.zeros(0, dtype=int)
        clips = torch.stack([probe_clip(cache.get_array(e.clip_id), frames) for e in entries])
        return clips, np.array([manifest.label_index(e.label) for e in entries])

    return ProbeSet(*take(train_split), *take(val_split))


def linear_probe(train_z: np.ndarray, train_y: np.ndarray, val_z: np.ndarray, val_y: np.ndarray) -> float:
    """Top-1 on val of a standardised logistic regression fitted on train latents (``[N, D]`` float).

    One BLAS thread and at most 300 L-BFGS iterations: this readout runs every epoch, and on a busy 2-core
    machine OpenBLAS's threads made one fit take 44 s instead of 0.5 s (same accuracy).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=300))
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return float(model.fit(train_z, train_y).score(val_z, val_y))


def knn_probe(train_z: np.ndarray, train_y: np.ndarray, val_z: np.ndarray, val_y: np.ndarray, k: int = 10) -> float:
    """Top-1 on val of a cosine k-NN (majority of the ``k`` nearest train latents, after standardising)."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    model = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=min(k, len(train_y)), metric="cosine"))
    with threadpool_limits(1):
        return float(model.fit(train_z, train_y).score(val_z, val_y))


def probe_model(model: nn.Module, probe: ProbeSet, device: torch.device) -> dict[str, float]:
    """``{"probe_linear", "probe_knn"}`` of ``model``'s latents (NaN when the probe set is unusable)."""
    from tinyact.training.pretrain import encode_clips

    if not probe.usable:
        return {"probe_linear": float("nan"), "probe_knn": float("nan")}
    train_z = encode_clips(model, probe.train_clips, device)  # type: ignore[arg-type]
    val_z = encode_clips(model, probe.val_clips, device)  # type: ignore[arg-type]
    if not (np.isfinite(train_z).all() and np.isfinite(val_z).all()):
        logger.warning("ssl: the encoder's latents hold inf/NaN (training diverged); probe scored 0")
        return {"probe_linear": 0.0, "probe_knn": 0.0}
    return {"probe_linear": linear_probe(train_z, probe.train_labels, val_z, probe.val_labels),
            "probe_knn": knn_probe(train_z, probe.train_labels, val_z, probe.val_labels)}


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


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


def load_start_encoder(spec: str) -> nn.Module:
    """``zoo:NAME`` or a model file -> the ``VideoAutoEncoder3D`` to start from."""
    if spec.startswith("zoo:"):
        from tinyact.zoo import resolve_encoder

        model = resolve_encoder(spec).model
    else:
        model, _ = load_model(spec)
    if model is None or not hasattr(model, "encoder_modules"):
        raise ConfigError(f"encoder {spec!r} is not a VideoAutoEncoder3D; self-supervised training needs one")
    return model


def build_model(cfg: SSLTrainConfig) -> nn.Module:
    """The encoder ``cfg`` trains: ``cfg.init`` loaded, or the preset with random weights (seeded by the caller)."""
    from tinyact.models.autoencoder3d import PRESETS, VideoAutoEncoder3D

    if cfg.init:
        model = load_start_encoder(cfg.init)
        config = model.config  # type: ignore[attr-defined]
        if (config.num_frames, tuple(config.input_size)) != (cfg.frames, (cfg.size, cfg.size)):
            raise ConfigError(f"encoder {cfg.init} takes {config.num_frames} frames of {tuple(config.input_size)} px; "
                              f"set frames: {config.num_frames} and size: {config.input_size[0]}")
        return model
    if cfg.preset not in PRESETS:
        raise ConfigError(f"unknown preset {cfg.preset!r}: use one of {', '.join(PRESETS)}")
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model_overrides.items()}
    return VideoAutoEncoder3D(replace(PRESETS[cfg.preset], num_frames=cfg.frames, input_size=(cfg.size, cfg.size), **overrides))


def _check_resumable(saved: dict[str, Any], cfg: SSLTrainConfig) -> None:
    now = cfg.model_dump(mode="json")
    changed = [k for k in _SHAPE_FIELDS if saved.get(k) != now.get(k)]
    if changed:
        raise ConfigError(f"cannot resume {cfg.out}: {', '.join(changed)} differ from the checkpoint "
                          f"({', '.join(f'{k}={saved.get(k)!r}' for k in changed)}); use another --out")


def _lr_at(cfg: SSLTrainConfig, step: int, total: int, steps_per_epoch: int) -> float:
    warmup = cfg.warmup_epochs * steps_per_epoch
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1.0, total - warmup)))


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
    """
    objective = resolve_objective(cfg.objective)
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / "last.pt"
    if ckpt_path.exists() and not resume:
        raise ConfigError(f"{run_dir} already holds a training run; pass --resume to continue it or choose another --out")
    unknown = [s for s in [*cfg.train_splits, cfg.probe_train_split, cfg.probe_val_split] if s not in SPLITS]
    if unknown:
        raise ConfigError(f"unknown split(s) {unknown}; splits are {', '.join(SPLITS)}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    if cfg.precision == "amp" and device.type != "cuda":
        raise ConfigError("precision 'amp' needs a GPU; use 'bf16' (or 'fp32') on CPU")
    state = load_checkpoint(ckpt_path, map_location=device) if resume and ckpt_path.exists() else None
    if state is not None:
        _check_resumable(state["config"], cfg)
        if state.get("objective", objective) != objective:
            raise ConfigError(f"cannot resume {cfg.out}: it trained {state['objective']!r}, now {cfg.objective!r} "
                              f"means {objective!r}; use another --out")

    from tinyact.data.cache import ClipCache

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
    latent_dim = model.config.latent_dim  # type: ignore[attr-defined]
    heads = SSLHeads(objective, latent_dim, cfg).to(device)
    encoder_params = [p for m in model.encoder_modules() for p in m.parameters()]  # type: ignore[attr-defined]
    optimizer = torch.optim.AdamW([*encoder_params, *heads.parameters()], lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.precision == "amp")
    target: nn.Module | None = None
    target_projector: nn.Module | None = None
    if objective == "rho-byol":  # the momentum encoder and projector, never trained by gradients
        target, target_projector = copy.deepcopy(model), copy.deepcopy(heads.projector)
        for p in [*target.parameters(), *target_projector.parameters()]:
            p.requires_grad_(False)
    stats = model.config.normalization  # type: ignore[attr-defined]

    log = MetricsLog(run_dir / "metrics.csv")
    start_epoch = 0
    best: dict[str, float] = {}
    if state is not None:
        model.load_state_dict(state["model"])
        heads.load_state_dict(state["heads"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        if target is not None and target_projector is not None:
            target.load_state_dict(state["target"])
            target_projector.load_state_dict(state["target_projector"])
        set_rng_state(state["rng"])
        start_epoch, best = int(state["epoch"]), dict(state["best"])
        logger.info("ssl: resuming %s after epoch %d of %d", run_dir, start_epoch, cfg.epochs)
    log.truncate(start_epoch + 1)  # row 0 (the starting weights) and every finished epoch stay

    if start_epoch == 0:
        initial = {"epoch": 0, **(probe_model(model, probe, device) if probe else {})}
        log.rows = []
        log.append(initial)
    initial = dict(log.rows[0]) if log.rows else {}

    steps_per_epoch = max(1, len(train_ids) // cfg.batch_size)
    if cfg.max_batches:
        steps_per_epoch = min(steps_per_epoch, cfg.max_batches)
    total_steps = steps_per_epoch * cfg.epochs
    row: dict[str, float] = log.rows[-1] if log.rows else {}
    weights_hash = ""
    for epoch in range(start_epoch, cfg.epochs):
        generator = epoch_generator(cfg.seed, epoch)
        order = torch.randperm(len(train_ids), generator=generator).tolist()
        model.train()
        heads.train()
        if target is not None and target_projector is not None:
            target.train()  # BatchNorm on the batch, as the online network
            target_projector.train()
        loss_sum = z_std_sum = 0.0
        clips_seen = 0
        started = time.perf_counter()
        lr = momentum = float("nan")
        with progress_bar(f"ssl {objective} epoch {epoch + 1}/{cfg.epochs}", total=steps_per_epoch, unit="step") as bar:
            for step in range(steps_per_epoch):
                done = epoch * steps_per_epoch + step
                lr = _lr_at(cfg, done, total_steps, steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch_ids = [train_ids[i] for i in order[step * cfg.batch_size : (step + 1) * cfg.batch_size]]
                windows = torch.from_numpy(np.stack([cache.get_array(cid) for cid in batch_ids]))  # [B, K, W, 3, S, S]
                views, labels = sample_views(windows, cfg.frames, cfg.strides, cfg.rho, generator,
                                             speed_classes=objective == "speed")  # [ρ, B, T, 3, S, S]
                rho = views.shape[0]
                flat = augment_clips(views.flatten(0, 1), generator, crop_scale=cfg.crop_scale, flip_p=cfg.flip_p,
                                     jitter=cfg.jitter, jitter_p=cfg.jitter_p, grey_p=cfg.grey_p)  # [ρB, T, 3, S, S]
                x = normalize(flat.to(device, non_blocking=True), stats)
                with autocast(device, cfg.precision):
                    loss, z = objective_loss(objective, model, heads, x, labels.flatten().to(device), rho,
                                             target=target, target_projector=target_projector,
                                             temperature=cfg.temperature)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if target is not None and target_projector is not None:
                    momentum = ema_momentum(cfg.ema, done + 1, total_steps)
                    _ema_update(target, model, momentum)
                    _ema_update(target_projector, heads.projector, momentum)
                loss_sum += float(loss.detach()) * len(flat)
                # Collapse monitor: the std of the L2-normalised latent per dimension (≈ 1/√D when spread, 0 collapsed).
                z_std_sum += float(F.normalize(z.detach().float(), dim=1).std(0).mean()) * len(flat)
                clips_seen += len(flat)
                bar.set_postfix(f"loss {loss_sum / clips_seen:.4f}")
                bar.advance()
        seconds = time.perf_counter() - started
        row = {"epoch": epoch + 1, "loss": loss_sum / max(1, clips_seen), "z_std": z_std_sum / max(1, clips_seen),
               **(probe_model(model, probe, device) if probe else {}),
               "clips_per_s": clips_seen / seconds if seconds > 0 else float("nan"), "epoch_s": seconds, "lr": lr}
        if objective == "rho-byol":
            row["ema"] = momentum
        extra = {"epoch": epoch + 1, "metrics": row, "trained_with": cfg.model_dump(mode="json"), "objective": objective}
        weights_hash = save_model(run_dir / "model.pt", model, extra=extra)
        if probe is not None and row["probe_linear"] > best.get("probe_linear", -1.0):
            best = dict(row)
            shutil.copyfile(run_dir / "model.pt", run_dir / "best.pt")
        log.append(row)
        groups = {"loss": ["loss"], **({"probe top-1 (val)": ["probe_linear", "probe_knn"]} if probe else {})}
        log.plot(run_dir / "curves.png", groups,
                 title=f"{objective} {cfg.preset if not cfg.init else cfg.init} {cfg.size}px T={cfg.frames}")
        checkpoint = {"model": model.state_dict(), "heads": heads.state_dict(), "optimizer": optimizer.state_dict(),
                      "scaler": scaler.state_dict(), "rng": rng_state(), "epoch": epoch + 1, "best": best,
                      "objective": objective, "config": cfg.model_dump(mode="json")}
        if target is not None and target_projector is not None:
            checkpoint |= {"target": target.state_dict(), "target_projector": target_projector.state_dict()}
        save_checkpoint(ckpt_path, checkpoint)
        logger.info("ssl: epoch %d/%d %s", epoch + 1, cfg.epochs,
                    " ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch"))
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)

    if not weights_hash:  # resumed a run that had already finished
        weights_hash = state_dict_hash(model.state_dict())
    best_model = run_dir / "best.pt" if (run_dir / "best.pt").is_file() else None
    return SSLTrainResult(model=run_dir / "model.pt", best_model=best_model, run_dir=run_dir, metrics_csv=log.path,
                          encoder_hash=weights_hash, metrics=row, initial=initial, best=best)


# --------------------------------------------------------------------------------------------------
# Adaptation to a user's footage
# --------------------------------------------------------------------------------------------------


@dataclass
class AdaptResult:
    """What :func:`adapt_encoder` kept and why."""

    model: Path  # OUT/model.pt: the kept encoder (adapted or the original, whichever probed better)
    kept: Literal["adapted", "original"]
    before: float  # linear probe of the starting encoder on the val split
    after: float  # best linear probe of the adapted encoder (epoch ``after_epoch``)
    after_epoch: int
    encoder_hash: str  # hash of the kept model's weights
    report: Path  # OUT/adapt.json


def adapt_encoder(
    start: str | Path | nn.Module,
    manifest: str | Path,
    out: str | Path,
    objective: str = "ssl",
    epochs: int = 5,
    *,
    lr: float = 3e-4,
    batch_size: int = 16,
    train_splits: Sequence[str] = ("train", "val"),
    val_split: str = "val",
    seed: int = 0,
    device: str = "auto",
    precision: Precision = "fp32",
    cache_dir: str | Path | None = None,
    workers: int = 0,
    overrides: dict[str, Any] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> AdaptResult:
    """Adapt a pretrained encoder to a user's clips without their labels, and keep it only if it got better.

    ::

        start ─► probe on val (before) ─► SSL on the clips of ``train_splits`` (labels unused) for ``epochs``
              ─► probe on val after every epoch ─► best epoch (after) ─► after > before ? adapted : original

    Args:
        start: ``zoo:NAME``, a model file, or a ``VideoAutoEncoder3D`` (its frames and size fix the clips').
        manifest: the user's manifest; its labels are read only by the probe (fitted on ``train``, scored on
            ``val_split``).
        out: folder for the run (``OUT/ssl/``), ``OUT/model.pt`` (the kept encoder) and ``OUT/adapt.json``.
        objective: a self-supervised objective (``ssl`` = the recommended one).
        epochs, lr, batch_size, seed, device, precision, cache_dir, workers: training settings (a lower ``lr``
            than training from scratch: the start already knows motion).
        train_splits: the splits whose videos adapt the encoder (default train and val: footage, not labels).
        overrides: further :class:`SSLTrainConfig` fields.

    Returns :class:`AdaptResult`; ``OUT/adapt.json`` records both probe numbers and the decision. The original
    is kept unless the adapted encoder's probe is strictly higher, so adaptation never makes things worse
    silently. Interrupted runs resume where they stopped when called again with the same arguments.
    Raises :class:`ConfigError` when the val split has no labelled clips (nothing to decide on).
    """
    out = Path(out)
    labelled = Manifest.read(manifest)
    train_labels = {e.label for e in labelled.split("train").entries}
    if len(train_labels) < 2 or not labelled.split(val_split).entries:
        raise ConfigError(f"{manifest}: adaptation is kept only if a probe on the {val_split} split improves, which "
                          f"needs labelled clips of at least 2 classes in train and some in {val_split} "
                          f"(found {len(train_labels)} class(es) in train, {len(labelled.split(val_split))} {val_split} clips)")
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(start, nn.Module):
        save_model(out / "start.pt", start, extra={"adapt_start": True})
        spec = str(out / "start.pt")
        start_model = start
    else:
        spec = str(start)
        start_model = load_start_encoder(spec)
    config = start_model.config  # type: ignore[attr-defined]
    cfg = SSLTrainConfig.from_dict({
        "manifest": manifest, "out": out / "ssl", "objective": objective, "init": spec,
        "frames": config.num_frames, "size": int(config.input_size[0]), "epochs": epochs, "lr": lr,
        "batch_size": batch_size, "train_splits": list(train_splits), "probe_val_split": val_split, "seed": seed,
        "device": device, "precision": precision, "cache_dir": cache_dir, "workers": workers, "probe": True,
        **(overrides or {}),
    }, source="adapt settings")
    result = train_ssl(cfg, resume=(out / "ssl" / "last.pt").is_file(), on_epoch_end=on_epoch_end)
    before = result.initial.get("probe_linear", float("nan"))
    if not np.isfinite(before) or result.best_model is None:
        raise ConfigError(f"{manifest}: no labelled clips in the train and {val_split} splits to probe with, so "
                          "adaptation cannot show it helps; label a few clips of each class in both splits")
    after, after_epoch = float(result.best["probe_linear"]), int(result.best["epoch"])
    kept: Literal["adapted", "original"] = "adapted" if after > before else "original"
    source = result.best_model if kept == "adapted" else Path(spec) if not spec.startswith("zoo:") else None
    if source is not None:
        shutil.copyfile(source, out / "model.pt")
        _, info = load_model(out / "model.pt")
        kept_hash = str(info["hash"])
    else:  # a zoo encoder kept as it is: write it as a model file so every consumer reads the same format
        kept_hash = save_model(out / "model.pt", start_model, extra={"source": spec})
    report = {
        "start": spec, "start_hash": state_dict_hash(start_model.state_dict()), "objective": resolve_objective(objective),
        "epochs": epochs, "lr": lr, "train_splits": list(train_splits), "probe": "linear (logistic regression on "
        f"train latents, top-1 on {val_split})", "before": before, "after": after, "after_epoch": after_epoch,
        "before_knn": result.initial.get("probe_knn"), "after_knn": result.best.get("probe_knn"),
        "kept": kept, "model": str(out / "model.pt"), "encoder_hash": kept_hash,
    }
    (out / "adapt.json").write_text(json.dumps(report, indent=2))
    (logger.info if kept == "adapted" else logger.warning)(
        "adapt: probe on %s %.1f %% before, %.1f %% after (epoch %d); kept the %s encoder in %s",
        val_split, 100 * before, 100 * after, after_epoch, kept, out / "model.pt")
    return AdaptResult(model=out / "model.pt", kept=kept, before=before, after=after, after_epoch=after_epoch,
                       encoder_hash=kept_hash, report=out / "adapt.json")


def read_metrics(path: str | Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv`` (for reports and tests)."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


__all__ = ["OBJECTIVES", "RECOMMENDED", "AdaptResult", "SSLTrainConfig", "SSLTrainResult", "adapt_encoder",
           "augment_clips", "build_model", "build_window_cache", "byol_loss", "cut_view", "info_nce_loss", "objective_loss",
           "read_windows",
           "resolve_objective", "sample_views", "train_ssl"]
