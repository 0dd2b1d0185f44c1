"""MoViNet-A0, base (non-streaming) variant (Kondratyuk et al., "MoViNets: Mobile Video Networks for
Efficient Video Recognition", CVPR 2021).

Block table from the paper's architecture search result for A0 (Appendix, Table "MoViNet-A0"), as released
in TensorFlow Model Garden (``movinet.py``, ``BLOCK_SPECS['a0']``):

- stem Conv 1×3×3 stride (1,2,2), 3→8
- 5 stages of inverted-bottleneck blocks ``(out, expand, kernel, stride)``::

    b2: (8, 24, 1×5×5, 2)
    b3: (32, 80, 3×3×3, 2), (32, 80, 3×3×3), (32, 80, 3×3×3)
    b4: (56, 184, 5×3×3, 2), (56, 112, 3×3×3), (56, 184, 3×3×3)
    b5: (56, 184, 5×3×3), (56, 184, 3×3×3) ×3
    b6: (104, 384, 5×3×3, 2), (104, 280, 1×5×5), (104, 280, 1×5×5), (104, 344, 1×5×5)

  each: 1×1×1 expand (when widths differ) → depth-wise k, stride (1,s,s) → SE (squeeze to expand/4, rounded to
  8) → 1×1×1 project; shortcut = avg-pool 1×3×3 + 1×1×1 conv where the shape changes; swish activations.
- head Conv 1×1×1 104→480, global pool, Conv 1×1×1 480→2048 (+bias), swish, dropout, Conv 1×1×1 → classes.

Published (paper Table 3, Kinetics-600, i.e. 600 classes, 50×172²): 3.1 M parameters, 2.71 GFLOPs
(multiply-adds). With 400 classes the classifier is 200·2049 = 0.41 M smaller (2.69 M).
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.peer_models.x3d import SqueezeExcite, round_width

Spec = tuple[int, int, tuple[int, int, int], int]  # out, expand, kernel, spatial stride

A0_BLOCKS: list[list[Spec]] = [
    [(8, 24, (1, 5, 5), 2)],
    [(32, 80, (3, 3, 3), 2), (32, 80, (3, 3, 3), 1), (32, 80, (3, 3, 3), 1)],
    [(56, 184, (5, 3, 3), 2), (56, 112, (3, 3, 3), 1), (56, 184, (3, 3, 3), 1)],
    [(56, 184, (5, 3, 3), 1)] + [(56, 184, (3, 3, 3), 1)] * 3,
    [(104, 384, (5, 3, 3), 2), (104, 280, (1, 5, 5), 1), (104, 280, (1, 5, 5), 1), (104, 344, (1, 5, 5), 1)],
]
STEM = 8
HEAD = 480
HIDDEN = 2048


def _conv_bn(dim_in: int, dim_out: int, kernel=(1, 1, 1), stride=(1, 1, 1), groups=1, act: bool = True) -> nn.Sequential:
    padding = tuple(k // 2 for k in kernel)
    layers: list[nn.Module] = [
        nn.Conv3d(dim_in, dim_out, kernel, stride=stride, padding=padding, groups=groups, bias=False),
        nn.BatchNorm3d(dim_out),
    ]
    if act:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class MoViNetBlock(nn.Module):
    def __init__(self, dim_in: int, spec: Spec) -> None:
        super().__init__()
        dim_out, expand, kernel, s = spec
        stride = (1, s, s)
        self.branch = nn.Sequential(
            _conv_bn(dim_in, expand) if expand != dim_in else nn.Identity(),
            _conv_bn(expand, expand, kernel, stride, groups=expand),
            SqueezeExcite(expand, round_width(expand // 4, 1.0), act=nn.SiLU),
            _conv_bn(expand, dim_out, act=False),
        )
        shortcut: list[nn.Module] = []
        if s != 1:
            shortcut.append(nn.AvgPool3d((1, 3, 3), stride=stride, padding=(0, 1, 1)))
        if s != 1 or dim_in != dim_out:
            shortcut.append(_conv_bn(dim_in, dim_out, act=False))
        self.shortcut = nn.Sequential(*shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.branch(x)


class MoViNetA0(nn.Module):
    """Input ``[B, 3, T, H, W]`` -> logits ``[B, num_classes]``."""

    def __init__(self, num_classes: int = 600, dropout: float = 0.2) -> None:
        super().__init__()
        self.stem = _conv_bn(3, STEM, (1, 3, 3), (1, 2, 2))
        blocks: list[nn.Module] = []
        dim_in = STEM
        for stage in A0_BLOCKS:
            for spec in stage:
                blocks.append(MoViNetBlock(dim_in, spec))
                dim_in = spec[0]
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(dim_in, HEAD)
        self.hidden = nn.Sequential(nn.Conv3d(HEAD, HIDDEN, 1), nn.SiLU(), nn.Dropout(dropout))
        self.classifier = nn.Conv3d(HIDDEN, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x))).mean(dim=(2, 3, 4), keepdim=True)
        return self.classifier(self.hidden(x)).flatten(1)


def movinet_a0(num_classes: int = 600) -> MoViNetA0:
    """MoViNet-A0 base: native input 50×172² (published on Kinetics-600)."""
    return MoViNetA0(num_classes)
