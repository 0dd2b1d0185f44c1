"""The self-supervised objectives: their training-only heads, losses and the EMA target of ρBYOL.

``objective_loss`` takes the normalised views of a batch, view-major ``[ρ·B, T, 3, S, S]``, and returns the
step's loss and latents. Objectives (``SSLTrainConfig.objective``; ``ssl`` = :data:`RECOMMENDED`):

* ``rho-byol`` — ρBYOL (Feichtenhofer et al., CVPR 2021, "A Large-Scale Study on Unsupervised Spatiotemporal
  Representation Learning"): ρ clips from different times of one video are positives; the online network
  (encoder, projector MLP, predictor MLP) predicts the projection that a momentum (EMA) copy gives for every
  other clip; loss ``2 − 2·cos``, summed over ordered pairs and averaged. No negatives.
* ``rho-simclr`` — the same views with SimCLR's InfoNCE (temperature 0.1): the other clips of the video are the
  positives, every clip of the other videos in the batch a negative.
* ``speed`` — playback-speed / arrow-of-time prediction: a clip cut at stride s₁, s₂ … (in window frames) or
  played backwards; a linear head on the latent names which. Only motion can answer it.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from tinyact.errors import ConfigError
from tinyact.models.autoencoder3d import VideoAutoEncoder3D

#: What ``--objective ssl`` means: the objective that measured best (docs/MODELS.md, "Self-supervised objectives").
RECOMMENDED = "rho-simclr"
OBJECTIVES = ("rho-byol", "rho-simclr", "speed")


def resolve_objective(name: str) -> str:
    """``ssl`` -> :data:`RECOMMENDED`; any other known name unchanged; an unknown one is a :class:`ConfigError`."""
    if name == "ssl":
        return RECOMMENDED
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown self-supervised objective {name!r}: use ssl, {', '.join(OBJECTIVES)} "
                          "(or reconstruction, the autoencoder of `tinyact train ae`)")
    return name


class HeadSizes(Protocol):
    """The config fields that size an objective's heads (:class:`tinyact.training.ssl.SSLTrainConfig` has them)."""

    proj_hidden: int
    proj_dim: int
    strides: list[int]


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

    projector: MLPHead
    predictor: MLPHead
    classifier: nn.Linear

    def __init__(self, objective: str, latent_dim: int, cfg: HeadSizes) -> None:
        super().__init__()
        self.objective = objective
        if objective in ("rho-byol", "rho-simclr"):
            self.projector = MLPHead(latent_dim, cfg.proj_hidden, cfg.proj_dim)
        if objective == "rho-byol":
            self.predictor = MLPHead(cfg.proj_dim, cfg.proj_hidden, cfg.proj_dim)
        if objective == "speed":
            self.classifier = nn.Linear(latent_dim, len(cfg.strides) + 1)


def objective_loss(
    objective: str, model: VideoAutoEncoder3D, heads: SSLHeads, x: torch.Tensor, labels: torch.Tensor, rho: int, *,
    target: VideoAutoEncoder3D | None = None, target_projector: nn.Module | None = None, temperature: float = 0.1,
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


def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target ← m·target + (1 − m)·online`` for parameters; buffers (BatchNorm statistics) copied."""
    with torch.no_grad():
        for t, o in zip(target.parameters(), online.parameters(), strict=True):
            t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
        for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
            tb.copy_(ob)


def ema_momentum(base: float, step: int, total: int) -> float:
    """BYOL's schedule: ``1 − (1 − base)·(cos(π·step/total) + 1)/2``, from ``base`` to 1."""
    return 1 - (1 - base) * (math.cos(math.pi * step / max(1, total)) + 1) / 2
