"""What every clip autoencoder shares: presets by name, its input shape, ``forward`` and uint8 inference.

Subclasses set ``PRESETS`` (name -> config dataclass), keep their config in ``self.config`` (with
``num_frames``, ``in_channels``, ``input_size`` and ``normalization``) and implement ``encode``, ``decode`` and
``encoder_modules``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Self

import torch
from torch import nn

from tinyact.data.transforms import normalize


def config_of(model: nn.Module) -> Any:
    """The config dataclass a TinyAct model keeps in ``model.config``.

    Raises:
        TypeError: ``model`` has no ``config`` (not a TinyAct model).
    """
    config = getattr(model, "config", None)
    if config is None:
        raise TypeError(f"{type(model).__name__} has no config: not a TinyAct model")
    return config


def encode_fn(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model.encode``: normalised clips ``[B, T, C, H, W]`` -> latents ``[B, D]``.

    Raises:
        TypeError: ``model`` has no ``encode`` (not an encoder).
    """
    encode = getattr(model, "encode", None)
    if not callable(encode):
        raise TypeError(f"{type(model).__name__} has no encode(): not an encoder")
    return encode


class ClipAutoEncoder(nn.Module):
    """Base class of :class:`VideoAutoEncoder3D` and :class:`FrameAutoEncoder2D`."""

    PRESETS: ClassVar[dict[str, Any]] = {}
    config: Any

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Self:
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

    def encoder_modules(self) -> list[nn.Module]:  # pragma: no cover - abstract
        """The modules ``encode`` runs (what an edge device holds), for counting parameters."""
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
