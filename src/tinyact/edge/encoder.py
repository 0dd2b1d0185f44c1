"""The clip encoder on the device: uint8 clips ``[B, T, 3, H, W]`` -> float32 latents ``[B, D]``.

``load_encoder(cfg.encoder)`` returns an :class:`EdgeEncoder` whose ``encode`` takes one round's clips as one
batch. The ``torch`` (fp32) and ``torch-bf16`` (bf16 autocast) backends run the checkpoint directly; the ONNX
Runtime backends (``onnx``, ``onnx-int8``) come from :mod:`tinyact.models.runtime` (``tinyact edge
export-onnx`` / ``tinyact edge quantize`` write their model files).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyact.edge.config import EncoderConfig
from tinyact.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass
class EdgeEncoder:
    """An encoder runtime plus what the agent needs to know about it."""

    runtime: Any  # has .encode(uint8 [B,T,3,H,W]) -> float32 [B, D]
    backend: str
    num_frames: int
    input_size: tuple[int, int]  # (H, W)
    latent_dim: int
    encoder_hash: str
    calls: int = 0
    last_ms: float | None = None
    history_ms: list[float] = field(default_factory=list)

    def encode(self, clips: np.ndarray) -> np.ndarray:
        """One batch ``[B, T, 3, H, W]`` uint8 -> ``[B, D]`` float32 (one runtime call)."""
        start = time.perf_counter()
        latents = np.asarray(self.runtime.encode(clips), dtype=np.float32)
        self.last_ms = (time.perf_counter() - start) * 1000
        self.history_ms = (self.history_ms + [self.last_ms])[-100:]
        self.calls += 1
        return latents


class TorchRuntime:
    """PyTorch eager inference of a ``VideoAutoEncoder3D``'s encoder (fp32, or bf16 autocast on CPU)."""

    def __init__(self, model: torch.nn.Module, bf16: bool = False) -> None:
        self.model = model.eval()
        self.bf16 = bf16

    @torch.inference_mode()
    def encode(self, clips: np.ndarray | torch.Tensor) -> np.ndarray:
        x = torch.as_tensor(clips)
        if self.bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                z = self.model.encode_uint8(x)
        else:
            z = self.model.encode_uint8(x)
        return z.float().numpy()


def load_encoder(cfg: EncoderConfig) -> EdgeEncoder:
    """Load the encoder the config names; a missing or unusable file raises a :class:`ConfigError`."""
    from tinyact.models.checkpoint import load_model

    checkpoint = Path(cfg.checkpoint)
    if not checkpoint.is_file():
        raise ConfigError(f"encoder.checkpoint {checkpoint} does not exist (train one with `tinyact train ae`)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, info = load_model(checkpoint)
    config = info.get("config", {})
    num_frames = int(config.get("num_frames", 16))
    size = tuple(int(v) for v in config.get("input_size", (112, 112)))
    if cfg.input_size is not None and tuple(size) != (cfg.input_size, cfg.input_size):
        raise ConfigError(f"encoder.input_size {cfg.input_size} does not match the checkpoint's {size[0]}x{size[1]}; "
                          "leave it unset to use the checkpoint's")
    latent_dim = int(config.get("latent_dim", 1024))
    if cfg.backend in ("torch", "torch-bf16"):
        runtime: Any = TorchRuntime(model, bf16=cfg.backend == "torch-bf16")
    else:
        runtime = _onnx_runtime(cfg, checkpoint)
    return EdgeEncoder(runtime, cfg.backend, num_frames, (size[0], size[1]), latent_dim, str(info.get("hash", "")))


def _onnx_runtime(cfg: EncoderConfig, checkpoint: Path) -> Any:
    try:
        from tinyact.models.runtime import load_runtime
    except ImportError:
        raise ConfigError(f"encoder.backend {cfg.backend} needs tinyact.models.runtime (ONNX Runtime support), "
                          "which this build does not have; use backend torch") from None
    onnx_path = cfg.onnx_path or default_onnx_path(checkpoint, int8=cfg.backend == "onnx-int8")
    if not Path(onnx_path).is_file():
        command = "tinyact edge quantize" if cfg.backend == "onnx-int8" else "tinyact edge export-onnx"
        raise ConfigError(f"encoder.onnx_path {onnx_path} does not exist: write it with `{command}`")
    return load_runtime(cfg.backend, checkpoint, onnx_path=Path(onnx_path))


def default_onnx_path(checkpoint: Path, int8: bool = False) -> Path:
    """Where ``export-onnx`` / ``quantize`` write by default: next to the checkpoint."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + (".int8.onnx" if int8 else ".onnx"))
