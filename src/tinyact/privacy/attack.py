"""Inversion attack: an attacker who holds the encoder trains a decoder from latents back to frames.

Threat model. The attacker intercepts latents on the wire (or reads them from the cloud's store) and has a copy
of the edge encoder (it ships on every device). They film their own people, encode those clips with the encoder
and train a decoder ``z -> clip`` on the pairs; then they run it on intercepted latents of *other* people.
The decoder here has the autoencoder's own decoder architecture (fresh weights, optionally narrower)::

    z [B, D] ─ standardise (mean/std of the attacker's training latents)
      └─ VideoAutoEncoder3D decoder path: Linear ─ seed grid ─ 1×1×1 conv ─ 4 × ConvTranspose3d ─ Sigmoid
         ─► x̂ [B, T, 3, H, W] in [0, 1]

so the only differences from the autoencoder's decoder are what it was trained on (other people's clips,
fewer of them, after the encoder was frozen) and, with ``width < 1``, its size.

Two reference points frame the attack's numbers:

- :func:`mean_frame_baseline`: predict the attacker's average frame for every clip (what you get with no
  information from the latent at all);
- :func:`nearest_neighbour_attack`: return the attacker's training clip whose latent is nearest (a retrieval
  attack needing no training).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from tinyact.console import progress_bar
from tinyact.models.autoencoder3d import AutoEncoder3DConfig, VideoAutoEncoder3D

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttackConfig:
    """How the attacker trains the inversion decoder."""

    width: float = 0.5  # channel multiplier of the autoencoder's decoder (1.0 = same size)
    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-5
    seed: int = 0


class AttackDecoder(nn.Module):
    """Latent ``[B, D]`` -> clip ``[B, T, 3, H, W]`` in ``[0, 1]``, with the autoencoder decoder's layout.

    Args:
        ae_config: the victim autoencoder's config (input shape, strides, latent size).
        width: channel multiplier for the decoder blocks (the seed stays as in ``ae_config``).
    """

    def __init__(self, ae_config: AutoEncoder3DConfig, width: float = 1.0) -> None:
        super().__init__()
        channels = tuple(max(8, int(round(c * width))) for c in ae_config.channels)
        net = VideoAutoEncoder3D(replace(ae_config, channels=channels))
        # Only the decoder path is used; drop the encoder half so it neither trains nor counts as parameters.
        net.encoder = nn.Identity()
        net.to_latent = nn.Identity()
        self.net = net
        self.z_mean: torch.Tensor
        self.z_std: torch.Tensor
        self.register_buffer("z_mean", torch.zeros(ae_config.latent_dim))
        self.register_buffer("z_std", torch.ones(ae_config.latent_dim))

    def set_standardisation(self, z: torch.Tensor) -> None:
        """Use the per-dimension mean and std of ``z`` ``[N, D]`` (the attacker's training latents)."""
        self.z_mean.copy_(z.mean(dim=0))
        self.z_std.copy_(z.std(dim=0).clamp_min(1e-6))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net.decode((z - self.z_mean) / self.z_std)


def _unit(clips: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, T, 3, H, W]`` -> float32 in ``[0, 1]``."""
    t = torch.as_tensor(clips)
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def train_attack(
    latents: np.ndarray,
    clips: np.ndarray,
    ae_config: AutoEncoder3DConfig,
    cfg: AttackConfig = AttackConfig(),
    label: str = "attack",
) -> AttackDecoder:
    """Fit an :class:`AttackDecoder` on the attacker's pairs.

    Args:
        latents: float ``[N, D]`` latents of the attacker's clips (as they would arrive over the wire).
        clips: uint8 ``[N, T, 3, H, W]`` the same clips (the reconstruction targets).
        ae_config: the victim autoencoder's config.
        cfg: training settings.

    Returns the decoder in eval mode. MSE loss, Adam with cosine decay, shuffled with a seeded generator.
    """
    torch.manual_seed(cfg.seed)
    z = torch.as_tensor(latents, dtype=torch.float32)
    targets = torch.as_tensor(clips)
    model = AttackDecoder(ae_config, cfg.width)
    model.set_standardisation(z)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(z) / cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, cfg.epochs * steps_per_epoch))
    generator = torch.Generator().manual_seed(cfg.seed)
    model.train()
    started = time.perf_counter()
    epoch_loss = float("nan")
    with progress_bar(f"privacy: train {label}", total=cfg.epochs, unit="epoch") as bar:
        for _ in range(cfg.epochs):
            total, steps = 0.0, 0
            order = torch.randperm(len(z), generator=generator)
            for start in range(0, len(z), cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                if len(idx) < 2:  # BatchNorm needs two samples
                    continue
                loss = nn.functional.mse_loss(model(z[idx]), _unit(targets[idx]))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                scheduler.step()
                total, steps = total + loss.item(), steps + 1
            epoch_loss = total / max(1, steps)
            bar.advance()
    model.eval()
    logger.info("privacy: %s trained on %d clips, %d epochs, last-epoch MSE %.4f, %.0f s",
                label, len(z), cfg.epochs, epoch_loss, time.perf_counter() - started)
    return model


@torch.no_grad()
def reconstruct(decoder: Callable[[torch.Tensor], torch.Tensor], latents: np.ndarray, batch_size: int = 32) -> torch.Tensor:
    """Run ``decoder`` (an :class:`AttackDecoder` or an autoencoder's ``decode``) over ``latents`` ``[N, D]``
    -> float clips ``[N, T, 3, H, W]`` in ``[0, 1]``."""
    z = torch.as_tensor(latents, dtype=torch.float32)
    parts = [decoder(z[i : i + batch_size]).float().clamp(0, 1) for i in range(0, len(z), batch_size)]
    return torch.cat(parts)


def mean_frame_baseline(train_clips: np.ndarray, count: int) -> torch.Tensor:
    """The attacker's mean frame (over all clips and frames of ``train_clips`` ``[N, T, 3, H, W]``), repeated
    as ``count`` clips: ``[count, T, 3, H, W]`` in ``[0, 1]``."""
    clips = torch.as_tensor(train_clips)
    frame = torch.zeros(clips.shape[2:], dtype=torch.float64)
    for i in range(len(clips)):  # accumulate clip by clip: no float copy of the whole set
        frame += clips[i].double().mean(dim=0)
    frame = (frame / (255.0 * len(clips))).float()
    return frame.expand(count, clips.shape[1], *frame.shape).clone()


def nearest_neighbour_attack(train_latents: np.ndarray, train_clips: np.ndarray, latents: np.ndarray) -> torch.Tensor:
    """Retrieval attack: for each row of ``latents`` return the attacker's training clip whose latent is the
    nearest in cosine distance after per-dimension standardisation -> ``[N, T, 3, H, W]`` in ``[0, 1]``."""
    train = np.asarray(train_latents, dtype=np.float64)
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6

    def unit_rows(x: np.ndarray) -> np.ndarray:
        x = (np.asarray(x, dtype=np.float64) - mean) / std
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)

    nearest = np.argmax(unit_rows(latents) @ unit_rows(train).T, axis=1)
    return _unit(np.asarray(train_clips)[nearest])
