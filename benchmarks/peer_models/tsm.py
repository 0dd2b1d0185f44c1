"""TSM with a MobileNetV2 backbone (Lin et al., "TSM: Temporal Shift Module for Efficient Video
Understanding", ICCV 2019; MobileNetV2: Sandler et al., CVPR 2018).

A 2-D MobileNetV2 runs on every frame; inside each inverted-residual block that has a residual connection,
1/8 of the channels are shifted one frame back and 1/8 one frame forward before the first 1×1 conv (TSM's
"residual shift", zero-padded at the clip ends); the clip's logits are the mean over frames (average
consensus). The shift adds no parameters and no multiply-adds.

MobileNetV2 layout as in the paper's Table 2 (``t, c, n, s``: 1,16,1,1 / 6,24,2,2 / 6,32,3,2 / 6,64,4,2 /
6,96,3,1 / 6,160,3,2 / 6,320,1,1; stem 32, last conv 1280), i.e. torchvision's ``mobilenet_v2``.

Published: MobileNetV2 1.0 has 3.4 M parameters and 300 M multiply-adds per 224² frame with 1000 classes
(paper Table 4; torchvision: 3,504,872 params, 0.30 GFLOPS). With 400 classes the classifier is 600·1281
smaller: 2,736,272 parameters. TSM-MobileNetV2 at 8×224² is 8 × 0.30 = 2.4 GMACs (TSM paper, online model).
"""

from __future__ import annotations

import torch
from torch import nn

SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def temporal_shift(x: torch.Tensor, frames: int, fold_div: int = 8) -> torch.Tensor:
    """Shift 1/fold_div of the channels of ``[B*T, C, H, W]`` back in time and 1/fold_div forward."""
    bt, c, h, w = x.shape
    x = x.view(bt // frames, frames, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]  # shift left (future -> now)
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]  # shift right (past -> now)
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out.view(bt, c, h, w)


def _conv_bn(dim_in: int, dim_out: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(dim_in, dim_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(dim_out),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = dim_in * expand
        self.use_res = stride == 1 and dim_in == dim_out
        layers: list[nn.Module] = [_conv_bn(dim_in, hidden)] if expand != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, dim_out, act=False)]
        self.conv = nn.Sequential(*layers)
        self.frames = 1  # set by TSMMobileNetV2.forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res:
            return x + self.conv(temporal_shift(x, self.frames))
        return self.conv(x)


class TSMMobileNetV2(nn.Module):
    """Input ``[B, 3, T, H, W]`` -> logits ``[B, num_classes]`` (mean of per-frame logits)."""

    def __init__(self, num_classes: int = 400, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
        dim_in = 32
        for t, c, n, s in SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(dim_in, c, s if i == 0 else 1, t))
                dim_in = c
        layers.append(_conv_bn(dim_in, 1280))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        for module in self.features:
            if isinstance(module, InvertedResidual):
                module.frames = t
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        logits = self.classifier(self.features(frames).mean(dim=(2, 3)))
        return logits.view(b, t, -1).mean(dim=1)


def tsm_mobilenet_v2(num_classes: int = 400) -> TSMMobileNetV2:
    """TSM-MobileNetV2: native input 8×224²."""
    return TSMMobileNetV2(num_classes)
