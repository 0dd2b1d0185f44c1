"""X3D-XS / X3D-S (Feichtenhofer, "X3D: Expanding Architectures for Efficient Video Recognition", CVPR 2020).

Built from the paper's Table 1 block table (the X3D-M column; XS, S and M share the network and differ only
in input: XS 4×160², S 13×160², M 16×224²) and the layer details of pytorchvideo's ``create_x3d`` (which we
cannot import: its package pulls torchvision, absent from our CPU build):

- stem: Conv 1×3×3 stride (1,2,2) 3→24, then depth-wise Conv 5×1×1, BN, ReLU
- res2–res5: widths 24/48/96/192, depths 3/5/11/7, first block of each stage strides 2 in space;
  bottleneck 1×1×1 (×2.25) → depth-wise 3×3×3 → SE (ratio 1/16, every other block) → Swish → 1×1×1,
  projection shortcut where the shape changes
- head: Conv 1×1×1 192→432, BN, ReLU, global pool, Conv 1×1×1 432→2048, ReLU, dropout, Linear 2048→classes

Published (X3D paper Table 3, Kinetics-400, 400 classes): 3.76 M parameters; 0.60 GFLOPs (XS, 4×160²) and
1.96 GFLOPs (S, 13×160²) per view, where the paper's "FLOPs" are multiply-adds (fvcore convention).
pytorchvideo's model zoo lists 3.79 M.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

WIDTHS = (24, 48, 96, 192)
DEPTHS = (3, 5, 11, 7)
BOTTLENECK = 2.25
HEAD_INNER = 432
HEAD_OUT = 2048


def round_width(width: float, multiplier: float = 1.0, divisor: int = 8) -> int:
    """Channel rounding used by X3D (and its SE blocks)."""
    width *= multiplier
    out = max(divisor, int(width + divisor / 2) // divisor * divisor)
    if out < 0.9 * width:
        out += divisor
    return int(out)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation over a 3-D feature map (1×1×1 convs, as in X3D and MoViNet)."""

    def __init__(self, channels: int, squeeze: int, gate: type[nn.Module] = nn.Sigmoid, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.fc1 = nn.Conv3d(channels, squeeze, 1)
        self.act = act()
        self.fc2 = nn.Conv3d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3, 4), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class X3DBlock(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, stride: int, use_se: bool) -> None:
        super().__init__()
        inner = int(BOTTLENECK * dim_out)
        self.branch = nn.Sequential(
            nn.Conv3d(dim_in, inner, 1, bias=False),
            nn.BatchNorm3d(inner),
            nn.ReLU(inplace=True),
            nn.Conv3d(inner, inner, 3, stride=(1, stride, stride), padding=1, groups=inner, bias=False),
            nn.BatchNorm3d(inner),
            SqueezeExcite(inner, round_width(inner, 0.0625)) if use_se else nn.Identity(),
            nn.SiLU(),
            nn.Conv3d(inner, dim_out, 1, bias=False),
            nn.BatchNorm3d(dim_out),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv3d(dim_in, dim_out, 1, stride=(1, stride, stride), bias=False), nn.BatchNorm3d(dim_out))
            if stride != 1 or dim_in != dim_out
            else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shortcut(x) + self.branch(x))


class X3D(nn.Module):
    """X3D-XS/S/M backbone and head; input ``[B, 3, T, H, W]`` -> logits ``[B, num_classes]``."""

    def __init__(self, num_classes: int = 400, dropout: float = 0.5) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, WIDTHS[0], (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
            nn.Conv3d(WIDTHS[0], WIDTHS[0], (5, 1, 1), padding=(2, 0, 0), groups=WIDTHS[0], bias=False),
            nn.BatchNorm3d(WIDTHS[0]),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        dim_in = WIDTHS[0]
        for width, depth in zip(WIDTHS, DEPTHS, strict=True):
            for i in range(depth):
                blocks.append(X3DBlock(dim_in, width, 2 if i == 0 else 1, use_se=i % 2 == 0))
                dim_in = width
        self.stages = nn.Sequential(*blocks)
        self.head_conv = nn.Sequential(
            nn.Conv3d(dim_in, HEAD_INNER, 1, bias=False), nn.BatchNorm3d(HEAD_INNER), nn.ReLU(inplace=True)
        )
        self.head_post = nn.Sequential(nn.Conv3d(HEAD_INNER, HEAD_OUT, 1, bias=False), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(HEAD_OUT, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head_conv(self.stages(self.stem(x)))
        x = self.head_post(x.mean(dim=(2, 3, 4), keepdim=True)).flatten(1)
        return self.proj(self.dropout(x))


@dataclass(frozen=True)
class X3DEncoderConfig:
    """What training and the probes read off an encoder (the face of ``AutoEncoder3DConfig`` they use)."""

    num_frames: int = 16
    input_size: tuple[int, int] = (64, 64)
    latent_dim: int = HEAD_OUT
    normalization: str = "imagenet"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": "X3D-XS trunk"}


class X3DEncoder(nn.Module):
    """X3D-XS as a clip encoder for :func:`tinyact.training.pretrain.pretrain` (``benchmarks/equal_training.py``).

    ``encode``: normalised ``[B, T, 3, H, W]`` (TinyAct's layout) -> the 2048-d feature X3D's classifier reads
    (stem, stages, head convs and global pooling: everything but its dropout and last linear layer, which the
    recipe's own head replaces). Trains in channels-last 3-D memory format: on a 2-core AMD EPYC its depth-wise
    convolutions train 2× faster so (12.8 vs 6.4 clips/s at 16×64², batch 8).
    """

    def __init__(self, config: X3DEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or X3DEncoderConfig()
        self.net = X3D(num_classes=1)  # proj and dropout are not used
        self.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]  # Module.to takes it; the stubs do not say so

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 1, 3, 4).contiguous(memory_format=torch.channels_last_3d)
        x = self.net.head_conv(self.net.stages(self.net.stem(x)))
        return self.net.head_post(x.mean(dim=(2, 3, 4), keepdim=True)).flatten(1)

    def encoder_modules(self) -> list[nn.Module]:
        net = self.net
        return [net.stem, net.stages, net.head_conv, net.head_post]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


def x3d_xs(num_classes: int = 400) -> X3D:
    """X3D-XS: native input 4×160²."""
    return X3D(num_classes)


def x3d_s(num_classes: int = 400) -> X3D:
    """X3D-S: native input 13×160² (same weights shape as XS)."""
    return X3D(num_classes)
