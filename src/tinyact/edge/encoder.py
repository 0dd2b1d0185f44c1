"""The clip encoder on the device: uint8 clips ``[B, T, 3, H, W]`` -> float32 latents ``[B, D]``.

``load_encoder(cfg.encoder)`` returns an :class:`EdgeEncoder` whose ``encode`` takes one round's clips as one
batch. The backends come from :mod:`tinyact.models.runtime`: ``torch`` (eager fp32), ``torch-bf16``
(autocast), ``torch-channels-last``, ``torch-compile``, ``torch-int8`` (static int8 on oneDNN), ``onnx`` (ONNX
Runtime fp32) and ``onnx-int8`` (static QDQ int8); ``tinyact edge export-onnx`` / ``tinyact edge quantize
--calibrate-on … [--format torch]`` write the ONNX / int8 files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tinyact.data.transforms import NormStats
from tinyact.edge.config import EncoderConfig
from tinyact.errors import ConfigError, TinyActError

if TYPE_CHECKING:
    from tinyact.models.quantize import Int8Options

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
    mirror: bool = False  # encode each clip and its mirror image, send the mean (EncoderConfig.mirror)
    calls: int = 0
    last_ms: float | None = None
    history_ms: list[float] = field(default_factory=list)

    def encode(self, clips: np.ndarray) -> np.ndarray:
        """One batch ``[B, T, 3, H, W]`` uint8 -> ``[B, D]`` float32 (one runtime call; with ``mirror`` the batch
        holds the mirror images too, as ``ClipSampling(mirror=True)`` reads files)."""
        start = time.perf_counter()
        if self.mirror:
            both = np.asarray(self.runtime.encode(np.concatenate([clips, clips[..., ::-1]])), dtype=np.float32)
            latents = (both[: len(clips)] + both[len(clips) :]) / 2
        else:
            latents = np.asarray(self.runtime.encode(clips), dtype=np.float32)
        self.last_ms = (time.perf_counter() - start) * 1000
        self.history_ms = (self.history_ms + [self.last_ms])[-100:]
        self.calls += 1
        return latents


def load_encoder(cfg: EncoderConfig) -> EdgeEncoder:
    """Load the encoder the config names; a missing or unusable file raises a :class:`ConfigError`."""
    from tinyact.models.checkpoint import load_model
    from tinyact.paths import data_home
    from tinyact.zoo import materialize

    # A zoo encoder becomes a model file once, so ONNX / int8 exports have a place next to it.
    checkpoint = materialize(cfg.checkpoint, data_home() / "zoo")
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
    runtime = _runtime(cfg, checkpoint, model)
    return EdgeEncoder(runtime, cfg.backend, num_frames, (size[0], size[1]), latent_dim, str(info.get("hash", "")),
                       mirror=cfg.mirror)


def _runtime(cfg: EncoderConfig, checkpoint: Path, model: torch.nn.Module) -> Any:
    from tinyact.models.runtime import load_runtime

    if cfg.backend == "torch-int8":
        int8_path = cfg.int8_path or default_int8_path(checkpoint)
        if not Path(int8_path).is_file():
            raise ConfigError(f"no int8 encoder at {int8_path}: write it with `tinyact edge quantize --format torch "
                              f"--checkpoint {checkpoint} --calibrate-on MANIFEST_OR_FOLDER` (or set encoder.int8_path)")
        # From the checkpoint file, so the runtime knows its weight hash and refuses a stale int8 file.
        return load_runtime(cfg.backend, checkpoint, int8_path=int8_path)
    if cfg.backend.startswith("torch"):
        return load_runtime(cfg.backend, model)
    onnx_path = cfg.onnx_path
    if onnx_path is None:
        default = default_onnx_path(checkpoint, int8=cfg.backend == "onnx-int8")
        if default.is_file():
            onnx_path = default
        elif cfg.backend == "onnx-int8":
            # Static int8 needs real calibration clips: refuse to fall back to a silent dynamic quantisation.
            raise ConfigError(f"no int8 encoder at {default}: write it with `tinyact edge quantize --checkpoint "
                              f"{checkpoint} --calibrate-on MANIFEST_OR_FOLDER` (or set encoder.onnx_path)")
    elif not Path(onnx_path).is_file():
        raise ConfigError(f"encoder.onnx_path {onnx_path} does not exist: write it with `tinyact edge export-onnx` "
                          "or `tinyact edge quantize`")
    # onnx without a file: the runtime exports the checkpoint next to it once and reuses the graph.
    return load_runtime(cfg.backend, checkpoint, onnx_path=onnx_path, threads=cfg.threads)


def default_onnx_path(checkpoint: Path, int8: bool = False) -> Path:
    """Where ``export-onnx`` / ``quantize`` write by default: next to the checkpoint."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + (".int8.onnx" if int8 else ".onnx"))


def default_int8_path(checkpoint: Path) -> Path:
    """Where ``quantize --format torch`` writes by default: next to the checkpoint."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".int8.pt")


def write_int8_encoder(
    backend: str,
    checkpoint: Path,
    model: torch.nn.Module,
    calibration: np.ndarray,
    *,
    encoder_hash: str | None = None,
    out: Path | None = None,
    onnx_in: Path | None = None,
    float_modules: Sequence[str] = (),
    int8_options: Int8Options | None = None,
) -> Path:
    """Quantise ``model`` (loaded from ``checkpoint``) for the int8 ``backend``, calibrated on uint8 clips.

    ``torch-int8`` writes the TorchScript file :func:`default_int8_path` (recording ``encoder_hash``);
    ``onnx-int8`` writes :func:`default_onnx_path` ``int8=True``, quantised from ``onnx_in``, which is exported
    first when it is missing; without ``onnx_in`` the fp32 graph is exported afresh next to the checkpoint.
    ``out`` replaces the default output path; ``float_modules`` (``torch-int8``) are units kept in float;
    ``int8_options`` the calibration ranges (both) and fine-tuning (``torch-int8``,
    :func:`tinyact.models.quantize.quantize_encoder`).
    """
    stats: NormStats = getattr(model.config, "normalization", None) or "imagenet"
    if backend == "torch-int8":
        from tinyact.models.quantize import quantize_encoder, save_int8

        module = quantize_encoder(model, calibration, stats=stats, float_modules=float_modules, options=int8_options)
        return save_int8(module, out or default_int8_path(checkpoint),
                         encoder_hash=encoder_hash)
    if backend != "onnx-int8":
        raise ConfigError(f"{backend} is not an int8 backend (torch-int8, onnx-int8)")
    from tinyact.models.export import export_onnx, quantize_static

    fp32 = onnx_in or default_onnx_path(checkpoint)
    if onnx_in is None or not fp32.is_file():
        export_onnx(model, fp32)
    from tinyact.models.quantize import Int8Options

    return quantize_static(fp32, out or default_onnx_path(checkpoint, int8=True), calibration, stats=stats,
                           ranges=(int8_options or Int8Options()).ranges)


def calibration_clips(source: Path, num_frames: int, size: int, limit: int) -> np.ndarray:
    """Up to ``limit`` real clips to calibrate int8 quantisation on, from a manifest CSV or a folder of videos.

    Args:
        source: A manifest CSV, or a folder searched for video files (:data:`tinyact.data.layouts.VIDEO_SUFFIXES`).
        num_frames: Frames per clip (``T``).
        size: Square frame size (``S``).
        limit: The most clips to read (videos are taken in a fixed random order; unreadable ones are skipped).

    Returns:
        uint8 ``[N, T, 3, S, S]``.

    Raises:
        TinyActError: ``source`` does not exist, or no video in it could be read.
    """
    from tinyact.data.layouts import VIDEO_SUFFIXES
    from tinyact.data.video import ClipSampling, VideoDecodeError, read_clip

    if source.is_file():
        from tinyact.data.manifest import Manifest

        manifest = Manifest.read(source)
        videos = [manifest.resolve(e) for e in manifest.entries]
    elif source.is_dir():
        videos = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    else:
        raise TinyActError(f"--calibrate-on {source}: no such manifest or folder")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(videos))
    sampling = ClipSampling(num_frames=num_frames, size=size, strategy="uniform")
    clips: list[np.ndarray] = []
    for i in order:
        if len(clips) >= limit:
            break
        try:
            clips.append(read_clip(videos[i], sampling).numpy())
        except VideoDecodeError as error:
            logger.warning("calibration: skipped %s: %s", error.path, error.reason)
    if not clips:
        raise TinyActError(f"no readable video clips in {source}")
    return np.stack(clips)


def latent_drift(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Cosine similarity and relative L2 error of ``other`` vs ``reference`` latents, row by row."""
    a, b = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    rel = np.linalg.norm(a - b, axis=1) / (np.linalg.norm(a, axis=1) + 1e-12)
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "rel_l2_mean": float(rel.mean()),
            "rel_l2_max": float(rel.max())}
