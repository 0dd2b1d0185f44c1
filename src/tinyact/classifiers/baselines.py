"""The baselines of Table 1, as latents files so every classifier runs on them unchanged:

* **raw pixels** — each clip shrunk to a ~1k-d vector: grey levels, average-pooled to ``4 × 16 × 16``
  (time × height × width) = 1024 values. What a classifier gets with no encoder at all.
* **random encoder** — the same autoencoder architecture as the trained one, randomly initialised with a fixed
  seed and never trained. What the architecture alone gives; the gap to it is what training adds.
* **motion history** — the classical hand-made motion features (Bobick & Davis' temporal templates): on
  32 × 32 grey frames, the motion energy image (where anything moved), the motion history image (how
  recently), and the per-pixel mean and standard deviation over the clip; ``4 × 32 × 32`` = 4096 values.
  What a decades-old motion descriptor gives with no learning at all.

All go through :func:`tinyact.training.extract.extract_latents` (same clip reading, cache, metadata columns
and resumability as the real encoder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tinyact.data.manifest import Manifest
from tinyact.data.transforms import NormStats, denormalize
from tinyact.data.video import ClipSampling
from tinyact.latents import LatentsFile

RAW_GRID = (4, 16, 16)


class RawPixelEncoder(nn.Module):
    """``encode(x)``: normalised float ``[B, T, 3, H, W]`` -> ``[B, t*h*w]`` grey levels pooled to ``grid``.

    Grey is the channel mean of the normalised input (a fixed linear map of the pixels, so nothing is lost
    that a linear model could use). No parameters: its "hash" names the grid.
    """

    def __init__(self, grid: tuple[int, int, int] = RAW_GRID) -> None:
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]), int(grid[2]))

    @property
    def name(self) -> str:
        return "raw-pixels-" + "x".join(str(g) for g in self.grid)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.float().mean(dim=2, keepdim=True).permute(0, 2, 1, 3, 4)  # [B, 1, T, H, W]
        return F.adaptive_avg_pool3d(grey, self.grid).flatten(1)  # [B, t*h*w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


def raw_pixel_latents(
    manifest: Manifest, sampling: ClipSampling, out: Path, *, cache_dir: Path | None = None,
    grid: tuple[int, int, int] = RAW_GRID, batch_size: int = 16, **kwargs: Any,
) -> LatentsFile:
    """The raw-pixel baseline's latents file (``[N, prod(grid)]``) for every clip of ``manifest``."""
    from tinyact.training.extract import extract_latents

    encoder = RawPixelEncoder(grid)
    return extract_latents(encoder, manifest, sampling, out, cache_dir=cache_dir, batch_size=batch_size,
                           encoder_hash=encoder.name, **kwargs)


MOTION_SIZE = 32
#: A pixel "moved" between two frames when its grey level (in [0, 1], after shrinking to 32x32) changes by more
#: than this (13 of 255 levels): above the codec and sensor noise of a still scene, which the 32x32 area average
#: shrinks further, and far below a binary silhouette's 0 -> 1 step. A round value, not tuned on any dataset.
MOTION_THRESHOLD = 0.05


class MotionHistoryEncoder(nn.Module):
    """``encode(x)``: normalised float ``[B, T, 3, H, W]`` -> ``[B, 4 * size * size]`` motion features.

    ::

        x ─► un-normalise (``stats``) ─► grey in [0, 1] ─► area-resize to size × size   g: [B, T, s, s]
          ─► |g[t] - g[t-1]| > threshold                                          moved: [B, T-1, s, s]
          ─► MEI  = any(moved) over t                                                     [B, s, s]
             MHI  = motion history, tau = T: a pixel that moves is set to 1, otherwise
                    it decays by 1/T per frame (0 = never moved, 1 = moved in the last frame)
             mean, std of g over the T frames
          ─► concat [MEI, MHI, mean, std]                                           [B, 4, s, s] -> [B, 4·s·s]

    ``stats``: the normalisation ``x`` arrives with (``extract_latents`` uses the model's
    ``config.normalization``, ImageNet for modules without a config, as this one). No parameters: its "hash"
    names the size and threshold.
    """

    def __init__(self, size: int = MOTION_SIZE, threshold: float = MOTION_THRESHOLD, stats: NormStats = "imagenet") -> None:
        super().__init__()
        self.size, self.threshold, self.stats = int(size), float(threshold), stats

    @property
    def name(self) -> str:
        return f"motion-history-{self.size}px-thr{self.threshold:g}"

    def grey(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, T, 3, H, W]`` -> grey levels in ``[0, 1]`` at ``size × size``: ``[B, T, s, s]``."""
        b, t = x.shape[:2]
        unit = denormalize(x.float(), self.stats).clamp(0, 1)  # [B, T, 3, H, W] in [0, 1]
        grey = unit.mean(dim=2).reshape(b * t, 1, *x.shape[-2:])  # [B, T, H, W] -> [B*T, 1, H, W]
        small = F.adaptive_avg_pool2d(grey, (self.size, self.size))  # area average: [B*T, 1, s, s]
        return small.reshape(b, t, self.size, self.size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        g = self.grey(x)  # [B, T, s, s]
        t = g.shape[1]
        moved = (g[:, 1:] - g[:, :-1]).abs() > self.threshold  # [B, T-1, s, s]
        mei = moved.any(dim=1).float()  # [B, s, s]
        mhi = torch.zeros_like(g[:, 0])
        for step in range(moved.shape[1]):  # tau = T: one frame of decay is 1/T
            mhi = torch.where(moved[:, step], torch.ones_like(mhi), (mhi - 1.0 / t).clamp_(min=0))
        features = torch.stack([mei, mhi, g.mean(dim=1), g.std(dim=1, unbiased=False)], dim=1)  # [B, 4, s, s]
        return features.flatten(1)  # [B, 4*s*s]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


def motion_history_latents(
    manifest: Manifest, sampling: ClipSampling, out: Path, *, cache_dir: Path | None = None,
    size: int = MOTION_SIZE, threshold: float = MOTION_THRESHOLD, batch_size: int = 16, **kwargs: Any,
) -> LatentsFile:
    """The motion-history baseline's latents file (``[N, 4 * size * size]``) for every clip of ``manifest``."""
    from tinyact.training.extract import extract_latents

    encoder = MotionHistoryEncoder(size, threshold)
    return extract_latents(encoder, manifest, sampling, out, cache_dir=cache_dir, batch_size=batch_size,
                           encoder_hash=encoder.name, **kwargs)


def random_encoder(kind: str = "ae3d", preset: str = "fast", seed: int = 0, **overrides: Any) -> nn.Module:
    """An untrained autoencoder of the given kind/preset, initialised from ``seed`` (same seed, same weights)."""
    from tinyact.models.factory import build_autoencoder

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = build_autoencoder(kind, preset, **overrides)
    finally:
        torch.random.set_rng_state(state)  # leave the caller's random stream as it was
    return model.eval()


def random_encoder_latents(
    manifest: Manifest, sampling: ClipSampling, out: Path, *, kind: str = "ae3d", preset: str = "fast",
    seed: int = 0, cache_dir: Path | None = None, batch_size: int = 8, **model_overrides: Any,
) -> LatentsFile:
    """The random-encoder baseline's latents file: an untrained ``kind``/``preset`` model (with
    ``model_overrides``, e.g. ``pool_size``) sized for ``sampling``."""
    from tinyact.models.checkpoint import state_dict_hash
    from tinyact.training.extract import extract_latents

    overrides: dict[str, Any] = {**model_overrides, "num_frames": sampling.num_frames}
    if sampling.size is not None:
        overrides["input_size"] = sampling.size
    model = random_encoder(kind, preset, seed, **overrides)
    encoder_hash = f"random-{kind}-{preset}-seed{seed}-{state_dict_hash(model.state_dict())}"
    return extract_latents(model, manifest, sampling, out, cache_dir=cache_dir, batch_size=batch_size,
                           encoder_hash=encoder_hash)
