"""``FrameAutoEncoder2D``: the paper's base autoencoder (2-D convolutions per frame, one 1024-d code per clip).

The paper ("Base autoencoder") gives: frames 256×256, N = 16, an encoder of Conv2D layers interleaved with
MaxPooling, a 1024-d latent, and a decoder of UpSampling2D + Conv2D + ReLU. It does not say how the 16 frames
become one vector; here every frame is encoded by the same 2-D network and the ``T`` frame codes are
**concatenated in time order and projected by a Linear layer** to the clip latent (``temporal="concat"``,
the default). Concatenation keeps frame order, so the code can tell "sitting down" from "standing up", which a
temporal mean cannot (``temporal="mean"``, available for comparison, averages the frame codes instead).

Encoder::

    x [B, T, 3, H, W] ──reshape──► [B·T, 3, H, W]                      (frames share the weights)
      ├─ per stage c in channels (paper: 32, 64, 128, 256, 256):
      │     Conv2d 3×3 ─ BN ─ ReLU ─ MaxPool2d 2 (ceil)                H, W halve each stage
      ├─ AdaptiveAvgPool2d(frame_pool = 4×4) ─ flatten ─ Linear ─ ReLU  ─► frame codes [B·T, frame_dim]
      └─ reshape [B, T·frame_dim] ─ Linear ─► z [B, latent_dim = 1024]   (temporal="concat")
                                   (mean over T, then Linear, for temporal="mean")

Decoder (per frame, mirror)::

    z ─ Linear ─ ReLU ─► [B·T, frame_dim] ─ Linear ─ ReLU ─► [B·T, seed_channels, h, w]   (h, w: encoder's last grid)
      ├─ Conv2d 3×3 ─ ReLU                                                to channels[-1]
      ├─ per stage, in reverse: Upsample (nearest, to that stage's input size) ─ Conv2d 3×3 ─ ReLU
      └─ Conv2d 3×3 to 3 ─ Sigmoid ─► x̂ [B, T, 3, H, W] in [0, 1]

BatchNorm after each encoder convolution is an addition to the paper's text: it makes the unsupervised
training converge at the same learning rate as the 3-D model. The model is built for one input shape
``(T, H, W)`` (any size, non-square included; the decoder upsamples to the exact sizes the encoder saw).
The encoder takes input normalised as ``normalization`` says (ImageNet statistics by default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from tinyact.data.transforms import NormStats
from tinyact.models.base import ClipAutoEncoder


@dataclass(frozen=True)
class AutoEncoder2DConfig:
    """Hyper-parameters of :class:`FrameAutoEncoder2D` (everything needed to rebuild it from a checkpoint)."""

    num_frames: int = 16
    input_size: tuple[int, int] = (256, 256)
    in_channels: int = 3
    channels: tuple[int, ...] = (32, 64, 128, 256, 256)
    frame_pool: tuple[int, int] = (4, 4)
    frame_dim: int = 128
    latent_dim: int = 1024
    temporal: Literal["concat", "mean"] = "concat"
    seed_channels: int = 32
    normalization: NormStats = "imagenet"
    preset: str = "custom"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AutoEncoder2DConfig:
        tuples = {"input_size", "channels", "frame_pool"}
        fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
        return cls(**fields)


#: Named presets. ``paper``: the text's 256×256 frames and five conv/pool stages; ``fast``: 112×112 frames
#: and half the channels (about 1/20 of the paper preset's encoder FLOPs; see docs/MODELS.md).
PRESETS: dict[str, AutoEncoder2DConfig] = {
    "paper": AutoEncoder2DConfig(preset="paper"),
    "fast": AutoEncoder2DConfig(input_size=(112, 112), channels=(16, 32, 64, 128, 128), frame_dim=64, preset="fast"),
}


def _as_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _pooled(size: tuple[int, int]) -> tuple[int, int]:
    """Output size of ``MaxPool2d(2, ceil_mode=True)`` (a 1-pixel side stays 1)."""
    return ((size[0] + 1) // 2, (size[1] + 1) // 2)


class FrameAutoEncoder2D(ClipAutoEncoder):
    """Per-frame 2-D conv autoencoder: ``encode(x) -> z``, ``decode(z) -> x̂``, ``forward(x) -> (z, x̂)``.

    Args:
        config: an :class:`AutoEncoder2DConfig`; or keyword overrides of the default (paper) config.

    Shapes: ``x`` float ``[B, T, C, H, W]`` (normalised), ``z`` ``[B, latent_dim]``, ``x̂`` ``[B, T, C, H, W]``
    in ``[0, 1]``; ``T, H, W`` must be the ones the model was built for.
    """

    PRESETS = PRESETS

    def __init__(self, config: AutoEncoder2DConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = replace(config or AutoEncoder2DConfig(), **overrides)
        config = replace(config, input_size=_as_pair(config.input_size), frame_pool=_as_pair(config.frame_pool))
        if config.temporal not in ("concat", "mean"):
            raise ValueError(f"temporal must be 'concat' or 'mean', got {config.temporal!r}")
        self.config = config

        # (H, W) entering each encoder stage, and the grid after the last pooling.
        shapes = [config.input_size]
        for _ in config.channels:
            shapes.append(_pooled(shapes[-1]))
        self._stage_shapes = shapes

        encoder: list[nn.Module] = []
        in_ch = config.in_channels
        for out_ch in config.channels:
            encoder += [
                nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            in_ch = out_ch
        self.encoder = nn.Sequential(*encoder)
        self.pool = nn.AdaptiveAvgPool2d(config.frame_pool)
        pooled = config.channels[-1] * config.frame_pool[0] * config.frame_pool[1]
        self.frame_proj = nn.Sequential(nn.Linear(pooled, config.frame_dim), nn.ReLU(inplace=True))
        mixed = config.frame_dim * (config.num_frames if config.temporal == "concat" else 1)
        self.to_latent = nn.Linear(mixed, config.latent_dim)

        grid = shapes[-1]
        self.from_latent = nn.Sequential(nn.Linear(config.latent_dim, config.num_frames * config.frame_dim), nn.ReLU(inplace=True))
        self.frame_seed = nn.Sequential(
            nn.Linear(config.frame_dim, config.seed_channels * grid[0] * grid[1]), nn.ReLU(inplace=True)
        )
        self.seed_expand = nn.Sequential(
            nn.Conv2d(config.seed_channels, config.channels[-1], kernel_size=3, padding=1), nn.ReLU(inplace=True)
        )
        up_channels = [*reversed(config.channels[:-1]), config.channels[0]]
        self.decoder = nn.ModuleList()
        in_ch = config.channels[-1]
        for out_ch in up_channels:
            self.decoder.append(nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), nn.ReLU(inplace=True)))
            in_ch = out_ch
        self.to_pixels = nn.Sequential(nn.Conv2d(in_ch, config.in_channels, kernel_size=3, padding=1), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W]`` normalised float -> latent ``[B, latent_dim]``."""
        if x.dim() != 5:
            raise ValueError(f"expected a batch of clips [B, T, C, H, W], got shape {tuple(x.shape)}")
        b, t = x.shape[:2]
        if t != self.config.num_frames and self.config.temporal == "concat":
            raise ValueError(f"this model was built for T={self.config.num_frames} frames, got {t}")
        frames = x.reshape(b * t, *x.shape[2:])  # [B, T, C, H, W] -> [B·T, C, H, W]
        features = self.pool(self.encoder(frames)).flatten(1)  # [B·T, C_last · 4 · 4]
        codes = self.frame_proj(features).view(b, t, -1)  # [B, T, frame_dim]
        mixed = codes.flatten(1) if self.config.temporal == "concat" else codes.mean(dim=1)  # [B, T·frame_dim] | [B, frame_dim]
        return self.to_latent(mixed)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``[B, latent_dim]`` -> reconstruction ``[B, T, C, H, W]`` in ``[0, 1]``."""
        b, t = z.shape[0], self.config.num_frames
        grid = self._stage_shapes[-1]
        codes = self.from_latent(z).view(b * t, self.config.frame_dim)  # [B·T, frame_dim]
        x = self.frame_seed(codes).view(b * t, self.config.seed_channels, *grid)  # [B·T, seed, h, w]
        x = self.seed_expand(x)
        for block, target in zip(self.decoder, reversed(self._stage_shapes[:-1]), strict=True):
            x = block(F.interpolate(x, size=target, mode="nearest"))  # UpSampling2D to the stage's input size
        x = self.to_pixels(x)  # [B·T, C, H, W]
        return x.view(b, t, *x.shape[1:])  # [B·T, C, H, W] -> [B, T, C, H, W]

    def encoder_modules(self) -> list[nn.Module]:
        """The modules that run on the edge (conv stack, pooling, frame and clip projections)."""
        return [self.encoder, self.pool, self.frame_proj, self.to_latent]
