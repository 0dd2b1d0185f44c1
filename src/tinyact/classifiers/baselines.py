"""The two baselines of Table 1, as latents files so every classifier runs on them unchanged:

* **raw pixels** — each clip shrunk to a ~1k-d vector: grey levels, average-pooled to ``4 × 16 × 16``
  (time × height × width) = 1024 values. What a classifier gets with no encoder at all.
* **random encoder** — the same autoencoder architecture as the trained one, randomly initialised with a fixed
  seed and never trained. What the architecture alone gives; the gap to it is what training adds.

Both go through :func:`tinyact.training.extract.extract_latents` (same clip reading, cache, metadata columns
and resumability as the real encoder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tinyact.data.manifest import Manifest
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
        self.grid = tuple(int(g) for g in grid)

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
