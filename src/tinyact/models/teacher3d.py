"""``Teacher3D``: the in-project teacher, an R(2+1)D-18-style supervised 3-D CNN.

The paper's teacher (ILA-ViT-B/16, ~200 M parameters) is not something every user can run. This network is
bigger and better than the student on our data, trained with plain cross-entropy on the same clips, so
knowledge distillation can be demonstrated and measured on a CPU machine without external weights.

Architecture (Tran et al., "A closer look at spatiotemporal convolutions", 2018; ``R(2+1)D-18`` is
``widths=(64, 128, 256, 512)``, ``blocks=(2, 2, 2, 2)``)::

    x [B, T, 3, H, W] ──permute──► [B, 3, T, H, W]
      ├─ stem: Conv(1×7×7, stride 1×2×2) ─ BN ─ ReLU ─ Conv(3×1×1) ─ BN ─ ReLU         [B, w0, T, H/2, W/2]
      ├─ stage 1..4: ``blocks[i]`` BasicBlocks of two (2+1)D convs (1×3×3 then 3×1×1), residual;
      │              stages 2-4 stride 2 in time and space                              [B, w3, t, h, w]
      ├─ AdaptiveAvgPool3d(1) ─ flatten ─► embedding e [B, w3]
      └─ Dropout ─ Linear ─► logits [B, num_classes]

Each (2+1)D convolution factorises a ``3×3×3`` kernel into a spatial ``1×3×3`` and a temporal ``3×1×1``
convolution with ``mid`` channels chosen (as in the paper) so it has about as many weights as the full 3-D
kernel.

``motion=True`` adds the frame differences ``x_t − x_{t−1}`` as three more input channels (a cheap second
stream, as in two-stream networks): on small datasets with cluttered, varied backgrounds a from-scratch 3-D CNN
otherwise spends its few examples on the background. The student never sees them; it only sees the logits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from tinyact.data.transforms import NormStats, normalize


@dataclass(frozen=True)
class Teacher3DConfig:
    """Hyper-parameters of :class:`Teacher3D` (everything needed to rebuild it from a model file)."""

    num_classes: int = 400
    num_frames: int = 16
    input_size: int = 112
    widths: tuple[int, ...] = (64, 128, 256, 512)
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    dropout: float = 0.2
    motion: bool = False
    normalization: NormStats = "imagenet"
    label_names: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Teacher3DConfig:
        tuples = {"widths", "blocks", "label_names"}
        fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
        return cls(**fields)


#: ``r2plus1d_18`` is the published network; ``small`` (half width, one block per stage) trains on a CPU.
PRESETS: dict[str, Teacher3DConfig] = {
    "r2plus1d_18": Teacher3DConfig(),
    "small": Teacher3DConfig(widths=(32, 64, 128, 256), blocks=(1, 1, 1, 1)),
}


def _mid_channels(in_ch: int, out_ch: int, k_t: int = 3, k_s: int = 3) -> int:
    """Channels between the spatial and temporal conv so the pair has ~ the weights of one t×s×s kernel."""
    return max(1, (k_t * k_s * k_s * in_ch * out_ch) // (k_s * k_s * in_ch + k_t * out_ch))


class Conv2Plus1D(nn.Sequential):
    """Spatial ``1×3×3`` conv ─ BN ─ ReLU ─ temporal ``3×1×1`` conv; ``stride`` is ``(t, s)``."""

    def __init__(self, in_ch: int, out_ch: int, stride: tuple[int, int] = (1, 1)) -> None:
        mid = _mid_channels(in_ch, out_ch)
        super().__init__(
            nn.Conv3d(in_ch, mid, (1, 3, 3), stride=(1, stride[1], stride[1]), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_ch, (3, 1, 1), stride=(stride[0], 1, 1), padding=(1, 0, 0), bias=False),
        )


class BasicBlock(nn.Module):
    """``x + (conv ─ BN ─ ReLU ─ conv ─ BN)(x)`` then ReLU; a 1×1×1 strided projection when shapes change."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(Conv2Plus1D(in_ch, out_ch, (stride, stride)), nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(Conv2Plus1D(out_ch, out_ch), nn.BatchNorm3d(out_ch))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv3d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm3d(out_ch))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class Teacher3D(nn.Module):
    """R(2+1)D-style classifier: ``forward(x, return_embedding=False)`` -> logits (or ``(logits, embedding)``).

    Args:
        config: a :class:`Teacher3DConfig`; or keyword overrides of the default.

    Shapes: ``x`` float ``[B, T, 3, H, W]`` normalised as ``config.normalization`` says; logits
    ``[B, num_classes]``; embedding ``[B, widths[-1]]``.
    """

    def __init__(self, config: Teacher3DConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = replace(config or Teacher3DConfig(), **overrides)
        if len(config.widths) != len(config.blocks):
            raise ValueError("widths and blocks need one entry per stage")
        self.config = config
        w0 = config.widths[0]
        stem_mid = 45 if w0 == 64 else max(8, w0 * 45 // 64)
        self.stem = nn.Sequential(
            nn.Conv3d(6 if config.motion else 3, stem_mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(stem_mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(stem_mid, w0, (3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(w0),
            nn.ReLU(inplace=True),
        )
        stages = []
        in_ch = w0
        for i, (width, n) in enumerate(zip(config.widths, config.blocks, strict=True)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(*[BasicBlock(in_ch if j == 0 else width, width, stride if j == 0 else 1) for j in range(n)]))
            in_ch = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(in_ch, config.num_classes)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Teacher3D:
        """Build a named preset (``r2plus1d_18`` or ``small``) with overrides such as ``num_classes=12``."""
        if name not in PRESETS:
            raise ValueError(f"unknown teacher preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(PRESETS[name], **overrides)

    @property
    def embedding_dim(self) -> int:
        return self.config.widths[-1]

    def forward(self, x: torch.Tensor, return_embedding: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 5:
            raise ValueError(f"expected a batch of clips [B, T, C, H, W], got shape {tuple(x.shape)}")
        x = x.permute(0, 2, 1, 3, 4)  # [B, T, C, H, W] -> [B, C, T, H, W]
        if self.config.motion:
            # Frame differences as three more channels: the static background cancels, the actor's motion stays.
            diff = torch.diff(x, dim=2, prepend=x[:, :, :1])  # [B, 3, T, H, W], zero at t = 0
            x = torch.cat([x, diff], dim=1)  # [B, 6, T, H, W]
        features = self.stages(self.stem(x))  # [B, w3, t, h, w]
        embedding = self.pool(features).flatten(1)  # [B, w3]
        logits = self.head(self.dropout(embedding))
        return (logits, embedding) if return_embedding else logits

    @torch.no_grad()
    def predict_uint8(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 clips ``[B, T, 3, H, W]`` -> ``(logits, embedding)``, normalising as configured (eval mode)."""
        logits, embedding = self.forward(normalize(clips, self.config.normalization), return_embedding=True)
        return logits, embedding

