"""Model files: weights plus the config needed to rebuild the module, and a hash that names the weights.

A model file (``model.pt``) is a dict ``{"kind", "config", "state_dict", "hash", "extra"}``. ``hash`` is
:func:`state_dict_hash` of the weights; latents files, saved classifiers and cloud predictions record it, so
every number can be traced to the encoder that produced it. Training checkpoints (optimiser and RNG state for
resume) are separate files written by :mod:`tinyact.training.runtime`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinyact.errors import TinyActError
from tinyact.models.base import config_of
from tinyact.paths import atomic_path

#: kind -> builder(config dict) -> module. Model modules register themselves here.
BUILDERS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {}


def register_builder(kind: str, builder: Callable[[dict[str, Any]], nn.Module]) -> None:
    BUILDERS[kind] = builder


def state_dict_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """A short, stable hash of weights (names, shapes and values; independent of pickling details)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def save_model(path: str | Path, model: nn.Module, extra: dict[str, Any] | None = None) -> str:
    """Write ``model`` (which must have ``.config.to_dict()``) to ``path``; returns its weight hash."""
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    weights_hash = state_dict_hash(state_dict)
    payload = {
        "kind": type(model).__name__,
        "config": config_of(model).to_dict(),
        "state_dict": state_dict,
        "hash": weights_hash,
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return weights_hash


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a module saved by :func:`save_model`; returns ``(model in eval mode, file dict without weights)``.

    Files only: :func:`tinyact.zoo.load_model_spec` also takes ``zoo:NAME``.
    """
    path = Path(path)
    if not path.is_file():
        raise TinyActError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not a checkpoint
        raise TinyActError(f"{path} is not a TinyAct model file ({_first_line(error)})") from None
    kind = payload.get("kind") if isinstance(payload, dict) else None
    if kind not in BUILDERS:
        raise TinyActError(f"{path}: unknown model kind {kind!r} (known: {sorted(BUILDERS)})")
    model = BUILDERS[kind](payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as error:
        raise TinyActError(f"{path}: its weights do not fit its {kind} config ({_first_line(error)})") from None
    model.eval()
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, info


def _first_line(error: BaseException) -> str:
    """One line for a user: torch's multi-paragraph messages (e.g. the ``weights_only`` advice) cut to the point."""
    if "Weights only load failed" in str(error):
        return "it holds Python objects besides tensors, so it was not made by `save_model`; not unpickled for safety"
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


def _build_autoencoder3d(config: dict[str, Any]) -> nn.Module:
    from tinyact.models.autoencoder3d import AutoEncoder3DConfig, VideoAutoEncoder3D

    return VideoAutoEncoder3D(AutoEncoder3DConfig.from_dict(config))


register_builder("VideoAutoEncoder3D", _build_autoencoder3d)


def _build_autoencoder2d(config: dict[str, Any]) -> nn.Module:
    from tinyact.models.autoencoder2d import AutoEncoder2DConfig, FrameAutoEncoder2D

    return FrameAutoEncoder2D(AutoEncoder2DConfig.from_dict(config))


register_builder("FrameAutoEncoder2D", _build_autoencoder2d)


def _build_mlp_resnet(config: dict[str, Any]) -> nn.Module:
    from tinyact.models.mlp_resnet import MLPResNetClassifier, MLPResNetConfig

    return MLPResNetClassifier.from_config(MLPResNetConfig.from_dict(config))


register_builder("MLPResNetClassifier", _build_mlp_resnet)


def _build_teacher3d(config: dict[str, Any]) -> nn.Module:
    from tinyact.models.teacher3d import Teacher3D, Teacher3DConfig

    return Teacher3D(Teacher3DConfig.from_dict(config))


register_builder("Teacher3D", _build_teacher3d)
