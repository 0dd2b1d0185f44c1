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

from tinyact.errors import ConfigError
from tinyact.models.autoencoder2d import FrameAutoEncoder2D
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.base import ClipAutoEncoder

#: Autoencoder class of each kind.
MODELS: dict[str, type[ClipAutoEncoder]] = {"ae3d": VideoAutoEncoder3D, "ae2d": FrameAutoEncoder2D}
KINDS = tuple(MODELS)


def presets(kind: str) -> list[str]:
    """Preset names of one kind.

    Raises:
        ConfigError: unknown kind.
    """
    if kind not in MODELS:
        raise ConfigError(f"unknown autoencoder kind {kind!r}; choose one of {', '.join(KINDS)}")
    return sorted(MODELS[kind].PRESETS)


def build_autoencoder(kind: str = "ae3d", preset: str = "fast", **overrides: Any) -> ClipAutoEncoder:
    """Build autoencoder ``kind`` from ``preset``; ``overrides`` are config fields (``input_size``, ``num_frames`` …).

    Raises:
        ConfigError: unknown kind, preset or field.
    """
    if preset not in presets(kind):
        raise ConfigError(f"unknown {kind} preset {preset!r}; choose one of {', '.join(presets(kind))}")
    try:
        return MODELS[kind].from_preset(preset, **overrides)
    except TypeError as error:  # dataclasses.replace on an unknown field
        raise ConfigError(f"bad {kind} override: {error}") from None
