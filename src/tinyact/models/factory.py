"""``build_autoencoder``: one call that builds either autoencoder family from a kind, a preset and overrides.

Kinds:

* ``ae3d`` — :class:`~tinyact.models.autoencoder3d.VideoAutoEncoder3D` (the KD student's backbone);
* ``ae2d`` — :class:`~tinyact.models.autoencoder2d.FrameAutoEncoder2D` (the paper's base autoencoder).

Example::

    model = build_autoencoder("ae3d", "fast", input_size=112)           # [B, 16, 3, 112, 112] -> [B, 1024]
    model = build_autoencoder("ae2d", "paper", num_frames=8, input_size=(48, 64))
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tinyact.errors import ConfigError

KINDS = ("ae3d", "ae2d")


def presets(kind: str) -> list[str]:
    """Preset names of one kind."""
    if kind == "ae3d":
        from tinyact.models.autoencoder3d import PRESETS
    elif kind == "ae2d":
        from tinyact.models.autoencoder2d import PRESETS
    else:
        raise ConfigError(f"unknown autoencoder kind {kind!r}; choose one of {', '.join(KINDS)}")
    return sorted(PRESETS)


def build_autoencoder(kind: str = "ae3d", preset: str = "fast", **overrides: Any) -> nn.Module:
    """Build autoencoder ``kind`` from ``preset``; ``overrides`` are config fields (``input_size``, ``num_frames`` …).

    Raises :class:`~tinyact.errors.ConfigError` for an unknown kind, preset or field.
    """
    if preset not in presets(kind):
        raise ConfigError(f"unknown {kind} preset {preset!r}; choose one of {', '.join(presets(kind))}")
    if kind == "ae3d":
        from tinyact.models.autoencoder3d import VideoAutoEncoder3D as cls
    else:
        from tinyact.models.autoencoder2d import FrameAutoEncoder2D as cls
    try:
        return cls.from_preset(preset, **overrides)
    except TypeError as error:  # dataclasses.replace on an unknown field
        raise ConfigError(f"bad {kind} override: {error}") from None
