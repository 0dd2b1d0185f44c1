"""Encoder runtimes: one ``encode(uint8 clips) -> float32 latents`` call over several inference backends.

The edge agent and the benchmarks pick a backend by name; every backend takes the same input (uint8
``[B, T, 3, H, W]``, numpy or torch) and normalises it inside, so the choice never changes the caller.

========================  =============================================================================
backend                   what runs
========================  =============================================================================
``torch``                 eager fp32 (the reference)
``torch-bf16``            eager under ``torch.autocast("cpu", bfloat16)``; latents returned as float32
``torch-channels-last``   eager fp32 with ``channels_last_3d`` weights and activations
``torch-compile``         ``torch.compile`` (inductor) with weight freezing; one static graph per batch size
                          (up to 64; larger batches run in chunks of 64), compiled on the first batch of its size
``onnx``                  ONNX Runtime fp32 on the exported encoder (:func:`tinyact.models.export.export_onnx`)
``onnx-int8``             ONNX Runtime int8: static QDQ per-channel when calibration clips are given,
                          else dynamic quantisation; or a ready int8 ``onnx_path``
``torch-int8``            PyTorch static int8 on oneDNN kernels (:mod:`tinyact.models.quantize`), calibrated
                          on the given clips; or a ready TorchScript ``int8_path``
========================  =============================================================================
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args, runtime_checkable

import numpy as np
import torch
from torch import nn

from tinyact.data.transforms import NormStats, normalize
from tinyact.errors import TinyActError

if TYPE_CHECKING:
    from tinyact.models.quantize import Int8Options

#: Largest batch the ``torch-compile`` backend compiles a graph for (and how many sizes it may compile);
#: bigger batches run in chunks of it.
COMPILE_MAX_BATCH = 64

#: The encoder backends, the one list every config that names a backend uses (edge, demo).
Backend = Literal["torch", "torch-bf16", "torch-channels-last", "torch-compile", "torch-int8", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = get_args(Backend)


@runtime_checkable
class EncoderRuntime(Protocol):
    """What every backend offers."""

    backend: str
    input_shape: tuple[int, int, int, int]  # (T, 3, H, W) the encoder expects
    latent_dim: int
    encoder_hash: str | None

    def encode(self, clips: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 clips ``[B, T, 3, H, W]`` -> float32 latents ``[B, latent_dim]``."""
        ...


def _as_uint8_tensor(clips: np.ndarray | torch.Tensor, shape: tuple[int, int, int, int]) -> torch.Tensor:
    tensor = clips
    if isinstance(tensor, np.ndarray):
        # Strided arrays (e.g. [T, H, W, 3] frames viewed as [T, 3, H, W]) are taken as they are and laid out by
        # torch's copy in _normalised, which uses every thread; only negative strides need numpy's copy first.
        tensor = torch.from_numpy(tensor if min(tensor.strides, default=0) >= 0 else np.ascontiguousarray(tensor))
    if tensor.dtype != torch.uint8:
        raise TinyActError(f"encoder input must be uint8 clips, got {tensor.dtype}")
    if tensor.dim() == 4:  # one clip
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 5 or tuple(tensor.shape[1:]) != tuple(shape):
        raise TinyActError(f"encoder expects clips [B, {', '.join(map(str, shape))}], got {tuple(tensor.shape)}")
    return tensor


class _RuntimeBase:
    backend = "base"

    def __init__(self, shape: tuple[int, int, int, int], latent_dim: int, stats: NormStats, encoder_hash: str | None):
        self.input_shape = shape
        self.latent_dim = latent_dim
        self.stats = stats
        self.encoder_hash = encoder_hash

    def _normalised(self, clips: np.ndarray | torch.Tensor, conv_layout: bool = False) -> torch.Tensor:
        """uint8 clips -> normalised float ``[B, T, 3, H, W]``.

        ``conv_layout``: lay the values out in memory as ``[B, 3, T, H, W]`` (the shape stays ``[B, T, 3, H, W]``),
        so the encoder's permute to ``[B, C, T, H, W]`` is free: the layout change is done on the uint8 clip,
        a quarter of the bytes of the float one, instead of as a float copy in front of the first convolution.
        """
        x = _as_uint8_tensor(clips, self.input_shape)
        x = x.permute(0, 2, 1, 3, 4).contiguous().permute(0, 2, 1, 3, 4) if conv_layout else x.contiguous()
        return normalize(x, self.stats)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r}, input_shape={self.input_shape})"


def _model_io(model: nn.Module) -> tuple[tuple[int, int, int, int], int, NormStats]:
    """A model's input shape ``(T, 3, H, W)``, latent size and normalisation statistics."""
    from tinyact.models.export import _input_shape

    config = getattr(model, "config", None)
    return _input_shape(model, None, None), int(getattr(config, "latent_dim", 1024)), getattr(config, "normalization", "imagenet")


class TorchRuntime(_RuntimeBase):
    """Eager / bf16 / channels-last / compiled PyTorch encoder."""

    def __init__(self, model: nn.Module, backend: str = "torch", encoder_hash: str | None = None) -> None:
        from tinyact.models.export import EncoderGraph

        super().__init__(*_model_io(model), encoder_hash)
        self.backend = backend
        self.model = model.eval()
        self.channels_last = backend == "torch-channels-last"
        self.bf16 = backend == "torch-bf16"
        if self.channels_last:
            # torch's stub of Module.to lacks the documented memory_format keyword
            self.model = self.model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        self._fn: Any = EncoderGraph(self.model).eval()
        if backend == "torch-compile":
            import torch._inductor.config as inductor_config

            # Freezing folds BatchNorm into the convolutions and pre-packs weights: inference only.
            inductor_config.freezing = True
            self._fn = torch.compile(self._fn, dynamic=False)
        self.compiled = backend == "torch-compile"

    @torch.inference_mode()
    def encode(self, clips: np.ndarray | torch.Tensor) -> np.ndarray:
        x = self._normalised(clips, conv_layout=not self.channels_last)
        if self.channels_last:
            # encode() permutes [B,T,C,H,W] -> [B,C,T,H,W]; laid out channels-last, that permute is free.
            x = x.permute(0, 2, 1, 3, 4).contiguous(memory_format=torch.channels_last_3d).permute(0, 2, 1, 3, 4)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            z = self._run_compiled(x) if self.compiled else self._fn(x)
        return z.float().numpy()

    def _run_compiled(self, x: torch.Tensor) -> torch.Tensor:
        """Run the compiled encoder with one static graph per batch size.

        Static graphs are the fastest, but each is specialised to one batch size, and the edge sees every size
        from 1 to its camera count. After 8 sizes torch.compile's default stops recompiling and falls back to
        eager for good. This call lifts that limit to COMPILE_MAX_BATCH sizes for this graph alone; larger
        batches run in chunks of COMPILE_MAX_BATCH. Each new size costs one compile (seconds) on first use.
        """
        if len(x) > COMPILE_MAX_BATCH:
            return torch.cat([self._run_compiled(chunk) for chunk in x.split(COMPILE_MAX_BATCH)])
        with torch._dynamo.config.patch(cache_size_limit=COMPILE_MAX_BATCH):
            return self._fn(x)


class TorchInt8Runtime(_RuntimeBase):
    """A statically quantised encoder (TorchScript from :func:`tinyact.models.quantize.quantize_encoder`)."""

    backend = "torch-int8"

    def __init__(self, module: torch.jit.ScriptModule, model: nn.Module, encoder_hash: str | None) -> None:
        super().__init__(*_model_io(model), encoder_hash)
        self.module = module

    @torch.inference_mode()
    def encode(self, clips: np.ndarray | torch.Tensor) -> np.ndarray:
        # The quantised engine matters when the weights are packed (quantize_encoder / load_int8), not per call.
        return self.module(self._normalised(clips, conv_layout=True)).float().numpy()


class OnnxRuntime(_RuntimeBase):
    """An ONNX Runtime session on an exported (optionally quantised) encoder graph."""

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        backend: str = "onnx",
        stats: NormStats = "imagenet",
        encoder_hash: str | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        from tinyact.models.export import INPUT_NAME

        path = Path(onnx_path)
        if not path.is_file():
            raise TinyActError(f"ONNX file not found: {path}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Same thread count as torch, so backend comparisons are like for like.
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
            raise TinyActError(f"cannot load {path} with ONNX Runtime: {error}") from None
        dims = self.session.get_inputs()[0].shape
        shape = tuple(int(d) for d in dims[1:])
        out_dim = self.session.get_outputs()[0].shape[-1]
        super().__init__(shape, int(out_dim), stats, encoder_hash)  # type: ignore[arg-type]
        self.backend = backend
        self.path = path
        self._input = INPUT_NAME

    def encode(self, clips: np.ndarray | torch.Tensor) -> np.ndarray:
        x = self._normalised(clips).numpy()
        return np.asarray(self.session.run(None, {self._input: x})[0], dtype=np.float32)


def _derived_path(checkpoint: Path, suffix: str) -> Path:
    """Where an exported/quantised file derived from ``checkpoint`` is kept (beside it, else a temp folder)."""
    folder = checkpoint.parent
    if not os.access(folder, os.W_OK):
        import tempfile

        folder = Path(tempfile.gettempdir()) / "tinyact-onnx"
        folder.mkdir(exist_ok=True)
    return folder / f"{checkpoint.stem}{suffix}"


def load_runtime(
    backend: str,
    checkpoint: str | Path | nn.Module,
    *,
    onnx_path: str | Path | None = None,
    calibration: np.ndarray | None = None,
    int8_path: str | Path | None = None,
    float_modules: Sequence[str] = (),
    int8_options: Int8Options | None = None,
    threads: int | None = None,
) -> EncoderRuntime:
    """Build the ``backend`` runtime for a saved encoder.

    Args:
        backend: one of :data:`BACKENDS`.
        checkpoint: a ``model.pt`` (:func:`~tinyact.models.checkpoint.save_model`) or an in-memory module.
        onnx_path: for ``onnx``/``onnx-int8``, an existing graph to load (fp32 resp. already quantised). Without
            it the encoder is exported (and quantised) next to the checkpoint, ``<stem>.<hash>.onnx`` /
            ``<stem>.<hash>.int8-static.onnx`` / ``<stem>.<hash>.int8-dynamic.onnx``, and those files are reused later.
        calibration: for ``onnx-int8`` without ``onnx_path``: uint8 clips ``[N, T, 3, H, W]`` for static
            (QDQ, per-channel) quantisation; without them the graph is quantised dynamically. For ``torch-int8``
            without ``int8_path``: the clips to calibrate on (required: static int8 has no data-free fallback).
        int8_path: for ``torch-int8``: a file from :func:`tinyact.models.quantize.save_int8` to load.
        float_modules: for ``torch-int8`` quantised here: units kept in float
            (:func:`tinyact.models.quantize.quantize_encoder`; ``benchmarks/int8_sensitivity.py`` ranks them).
        int8_options: for ``torch-int8`` quantised here: calibration ranges and fine-tuning; for ``onnx-int8`` with
            ``calibration``: its ranges (default :class:`~tinyact.models.quantize.Int8Options`).
        threads: ONNX Runtime intra-op threads (default: torch's thread count).
    """
    if backend not in BACKENDS:
        raise TinyActError(f"unknown encoder backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from tinyact.models.checkpoint import load_model

    encoder_hash: str | None = None
    if isinstance(checkpoint, nn.Module):
        model = checkpoint
        ckpt_path = None
    else:
        ckpt_path = Path(checkpoint)
        model, info = load_model(ckpt_path)
        encoder_hash = info.get("hash")
    stats: NormStats = getattr(getattr(model, "config", None), "normalization", "imagenet")

    if backend == "torch-int8":
        return _torch_int8(model, calibration, int8_path, stats, encoder_hash, float_modules, int8_options)
    if backend.startswith("torch"):
        return TorchRuntime(model, backend, encoder_hash)

    from tinyact.models.export import export_onnx, quantize_dynamic, quantize_static

    if onnx_path is None:
        if ckpt_path is None:
            import tempfile

            ckpt_path = Path(tempfile.mkdtemp(prefix="tinyact-onnx-")) / "encoder.pt"
        # The weight hash in the name keeps a re-trained checkpoint from reusing a stale graph.
        tag = f".{encoder_hash}" if encoder_hash else ""
        fp32 = _derived_path(ckpt_path, f"{tag}.onnx")
        if not fp32.is_file():
            export_onnx(model, fp32)
        onnx_path = fp32
        if backend == "onnx-int8":
            if calibration is not None:
                from tinyact.models.quantize import Int8Options

                onnx_path = quantize_static(fp32, _derived_path(ckpt_path, f"{tag}.int8-static.onnx"), calibration,
                                            stats=stats, ranges=(int8_options or Int8Options()).ranges)
            else:
                onnx_path = _derived_path(ckpt_path, f"{tag}.int8-dynamic.onnx")
                if not onnx_path.is_file():
                    quantize_dynamic(fp32, onnx_path)
    return OnnxRuntime(onnx_path, backend=backend, stats=stats, encoder_hash=encoder_hash, threads=threads)


def _torch_int8(model: nn.Module, calibration: np.ndarray | None, int8_path: str | Path | None, stats: NormStats,
                encoder_hash: str | None, float_modules: Sequence[str] = (),
                options: Int8Options | None = None) -> TorchInt8Runtime:
    from tinyact.models.quantize import load_int8, quantize_encoder

    if int8_path is not None:
        module = load_int8(int8_path, encoder_hash)
    elif calibration is not None:
        module = quantize_encoder(model, calibration, stats=stats, float_modules=float_modules, options=options)
    else:
        raise TinyActError("torch-int8 needs calibration clips or a quantised file (`tinyact edge quantize --format torch`)")
    return TorchInt8Runtime(module, model, encoder_hash)
