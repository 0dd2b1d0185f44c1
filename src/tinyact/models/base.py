"""What every clip autoencoder shares: presets by name, its input shape, ``forward`` and uint8 inference.

Subclasses set ``PRESETS`` (name -> config dataclass), keep their config in ``self.config`` (with
``num_frames``, ``in_channels``, ``input_size`` and ``normalization``) and implement ``encode``, ``decode`` and
``encoder_modules``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from tinyact.data.transforms import normalize


class ClipAutoEncoder(nn.Module):
    """Base class of :class:`VideoAutoEncoder3D` and :class:`FrameAutoEncoder2D`."""

    PRESETS: ClassVar[dict[str, Any]] = {}
    config: Any

    @classmethod
    def from_preset(cls, name: str, **overrides: Any):
        """Build a named preset (``paper`` or ``fast``) with optional overrides, e.g. ``input_size=112``."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(cls.PRESETS)}")
        return cls(cls.PRESETS[name], **overrides)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """``(T, C, H, W)`` this model was built for."""
        return (self.config.num_frames, self.config.in_channels, *self.config.input_size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def reconstruction_target(self, clips01: torch.Tensor) -> torch.Tensor:
        """What ``decode`` is trained to produce from clips ``[B, T, C, H, W]`` in ``[0, 1]``: the clips themselves."""
        return clips01

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` -> ``(z, x̂)``."""
        z = self.encode(x)
        return z, self.decode(z)

    @torch.no_grad()
    def encode_uint8(self, clips: torch.Tensor) -> torch.Tensor:
        """Convenience for inference: uint8 clips ``[B, T, C, H, W]`` -> latents, normalising as configured."""
        return self.encode(normalize(clips, self.config.normalization))
