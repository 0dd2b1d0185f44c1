"""R(2+1)D-18 (Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action Recognition", CVPR 2018).

Each 3×3×3 convolution of a ResNet-18 is factorised into a spatial 1×3×3 and a temporal 3×1×1 convolution
with ``M = ⌊3·3·3·N_in·N_out / (3·3·N_in + 3·N_out)⌋`` intermediate channels (paper, eq. 5), so the
parameter count matches the 3-D network. Layer layout as in torchvision's ``r2plus1d_18`` (stem 3→45→64,
stages 64/128/256/512 × 2 BasicBlocks, strides 1/2/2/2 in time and space).

Published (torchvision model card for ``r2plus1d_18``, Kinetics-400, 400 classes, 16×112²):
31,505,325 parameters, 40.52 GFLOPS (multiply-adds).
"""

from __future__ import annotations

import torch
from torch import nn


class Conv2Plus1D(nn.Sequential):
    def __init__(self, dim_in: int, dim_out: int, mid: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(dim_in, mid, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, dim_out, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
        )


class BasicBlock(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, stride: int) -> None:
        super().__init__()
        mid = (dim_in * dim_out * 27) // (dim_in * 9 + 3 * dim_out)
        self.conv1 = nn.Sequential(Conv2Plus1D(dim_in, dim_out, mid, stride), nn.BatchNorm3d(dim_out), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(Conv2Plus1D(dim_out, dim_out, mid), nn.BatchNorm3d(dim_out))
        self.downsample = (
            nn.Sequential(nn.Conv3d(dim_in, dim_out, 1, stride=stride, bias=False), nn.BatchNorm3d(dim_out))
            if stride != 1 or dim_in != dim_out
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.downsample(x))


class R2Plus1D18(nn.Module):
    """Input ``[B, 3, T, H, W]`` -> logits ``[B, num_classes]``."""

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, 45, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(45),
            nn.ReLU(inplace=True),
            nn.Conv3d(45, 64, (3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        dim_in = 64
        for width, stride in zip((64, 128, 256, 512), (1, 2, 2, 2), strict=True):
            layers += [BasicBlock(dim_in, width, stride), BasicBlock(width, width, 1)]
            dim_in = width
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layers(self.stem(x)).mean(dim=(2, 3, 4)))


def r2plus1d_18(num_classes: int = 400) -> R2Plus1D18:
    """R(2+1)D-18: native input 16×112²."""
    return R2Plus1D18(num_classes)
