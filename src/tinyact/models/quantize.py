"""Static int8 quantisation of the 3-D encoder in PyTorch itself (FX graph mode, oneDNN kernels).

The ONNX Runtime path (:mod:`tinyact.models.export`) runs ``QLinearConv`` through an im2col + int8 GEMM, which on
a CPU without VNNI gains little over fp32 (``docs/BENCHMARKS.md``). PyTorch's quantised ``Conv3d`` on the
oneDNN engine uses oneDNN's direct int8 convolution instead. What :func:`quantize_encoder` does:

1. ``Conv3d + BatchNorm3d + ReLU`` are fused, then observers are inserted (``prepare_fx``): per-channel
   symmetric int8 weights; uint8 activations over their full calibrated min-max range, 8 bits. Measured on the
   trained ``fast-motion`` encoder (``docs/BENCHMARKS.md``): a histogram observer clips the input residual's
   largest values, which are the moving actor, and 7-bit activations (``reduce_range``) double the error;
   min-max 8-bit gives the smallest latent drift of the four. (CPUs without VNNI add pairs of u8·s8 products
   in 16 bits, which 8-bit activations can in principle overflow; ``tinyact edge quantize`` prints the drift on
   held-out clips of the user's data, which would show it.)
2. The calibration clips (real uint8 clips, normalised like every backend) run through it.
3. ``convert_fx`` swaps in the quantised modules; the result is traced and frozen into TorchScript, which
   removes Python dispatch between layers and can be saved (:func:`save_int8`) and loaded without the model code.

The float pre-processing of :meth:`VideoAutoEncoder3D.encoder_input` (the residual of ``fast-motion``, the
permute) stays in float in front of the int8 stack, so the quantised encoder takes the same normalised
``[B, T, 3, H, W]`` input as :class:`~tinyact.models.export.EncoderGraph` and returns its latents to within int8
precision.
"""

from __future__ import annotations

import contextlib
import copy
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tinyact.data.transforms import NormStats, normalize
from tinyact.errors import TinyActError
from tinyact.models.autoencoder3d import VideoAutoEncoder3D, conv_input

#: The quantised engine, ``fast`` encoder at 16x224^2: on the AVX2 AMD EPYC oneDNN's int8 Conv3d ran 1.4-1.8x
#: faster than FBGEMM's and the ``x86`` engine's at batch 1; on a Xeon with VNNI/AMX it was 2.7x faster than
#: FBGEMM and within 11 % of ``x86`` (3.6 vs 3.2 ms batch 1, 25.7 vs 25.3 ms batch 5).
ENGINE = "onednn"


@contextlib.contextmanager
def quantized_engine(engine: str = ENGINE) -> Iterator[None]:
    """Select ``torch.backends.quantized.engine`` for a block (it is process-global) and restore it after."""
    if engine not in torch.backends.quantized.supported_engines:
        raise TinyActError(f"this PyTorch build has no {engine!r} quantised engine "
                           f"(it has {', '.join(torch.backends.quantized.supported_engines)})")
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


class _FloatFront(nn.Module):
    """The encoder's float pre-processing in front of its (quantised) convolution stack."""

    def __init__(self, model: VideoAutoEncoder3D, stack: nn.Module) -> None:
        super().__init__()
        self.input_mode = model.config.input_mode
        self.stack = stack

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        # Contiguous [B, C, T, H, W] for the quantiser; no copy when the runtime already laid the clip out so.
        return self.stack(conv_input(clips, self.input_mode).contiguous())


def _video_autoencoder(model: nn.Module) -> VideoAutoEncoder3D:
    """``model`` itself, checked to be what int8 PyTorch quantisation supports."""
    if not isinstance(model, VideoAutoEncoder3D):
        raise TinyActError(f"int8 PyTorch quantisation supports the 3-D video autoencoder, not {type(model).__name__}")
    return model


def _conv_stack(model: VideoAutoEncoder3D) -> nn.Sequential:
    """encoder blocks -> pool -> flatten -> projection: the part that runs on the device, as one traceable module."""
    return nn.Sequential(copy.deepcopy(model.encoder), copy.deepcopy(model.pool), nn.Flatten(1),
                         copy.deepcopy(model.to_latent)).eval()


def quantizable_units(model: VideoAutoEncoder3D) -> list[str]:
    """The units :func:`quantize_encoder` can keep in float: each convolution (with its BatchNorm and ReLU) and
    each bottleneck block of the encoder, in order, then ``to_latent``."""
    units = [f"encoder.{i}" for i, m in enumerate(model.encoder.children()) if not isinstance(m, nn.BatchNorm3d | nn.ReLU)]
    return [*units, "to_latent"]


def _stack_names(model: VideoAutoEncoder3D, units: Sequence[str]) -> list[str]:
    """:func:`_conv_stack`'s module names of ``units`` (a convolution brings its BatchNorm and ReLU along: FX fuses
    them into one quantised module, so they are kept in float together).

    Raises:
        TinyActError: for a name that is not one of :func:`quantizable_units`.
    """
    known = quantizable_units(model)
    children = list(model.encoder.children())
    names: list[str] = []
    for unit in units:
        if unit not in known:
            raise TinyActError(f"cannot keep {unit!r} in float: choose from {', '.join(known)}")
        if unit == "to_latent":
            names.append("3")  # the stack: encoder, pool, flatten, to_latent
            continue
        index = int(unit.split(".")[1])
        follow = 3 if isinstance(children[index], nn.Conv3d) else 1
        names += [f"0.{i}" for i in range(index, min(index + follow, len(children)))]
    return names


def quantize_encoder(
    model: nn.Module,
    calibration: np.ndarray,
    *,
    stats: NormStats | None = None,
    batch_size: int = 4,
    engine: str = ENGINE,
    float_modules: Sequence[str] = (),
) -> torch.jit.ScriptModule:
    """Quantise ``model``'s encoder to int8 with activation ranges calibrated on real clips.

    Args:
        model: a :class:`~tinyact.models.VideoAutoEncoder3D` (left unchanged).
        calibration: uint8 clips ``[N, T, 3, H, W]`` of the encoder's input shape; 16-32 real clips suffice.
        stats: normalisation statistics (default: the model's own).
        batch_size: clips per calibration forward pass.
        engine: quantised engine whose kernels the packed weights target.
        float_modules: the model's modules to keep in float (``encoder.N``, a convolution with its BatchNorm and
            ReLU, or a bottleneck block; ``to_latent``): the layers whose int8 error moves the latents most
            (``benchmarks/int8_sensitivity.py``), at the cost of their int8 speed.

    Returns:
        A frozen TorchScript module: normalised float clips ``[B, T, 3, H, W]`` -> float32 latents ``[B, D]``.
    """
    from torch.ao.quantization import QConfig, QConfigMapping
    from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from tinyact.models.export import _input_shape

    model = _video_autoencoder(model)
    shape = _input_shape(model, None, None)
    calibration = np.asarray(calibration)
    if calibration.dtype != np.uint8 or calibration.ndim != 5 or tuple(calibration.shape[1:]) != shape or not len(calibration):
        raise TinyActError(f"calibration clips must be uint8 [N, {', '.join(map(str, shape))}] with N >= 1, "
                           f"got {calibration.dtype} {tuple(calibration.shape)}")
    stats = stats or model.config.normalization
    qconfig = QConfig(
        activation=MinMaxObserver.with_args(reduce_range=False),
        weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric),
    )
    front = _FloatFront(model, _conv_stack(model)).eval()
    example = normalize(torch.from_numpy(calibration[:1]), stats)
    with quantized_engine(engine), warnings.catch_warnings():
        # torch.ao.quantization warns that it is moving to torchao; the FX API is what ships with torch 2.13.
        warnings.simplefilter("ignore")
        mapping = QConfigMapping().set_global(qconfig)
        for name in _stack_names(model, float_modules):
            mapping.set_module_name(name, None)
        prepared = prepare_fx(front.stack, mapping,
                              example_inputs=(model.encoder_input(example),))
        front.stack = prepared
        with torch.inference_mode():
            for start in range(0, len(calibration), batch_size):
                front(normalize(torch.from_numpy(calibration[start : start + batch_size]), stats))
        front.stack = convert_fx(prepared)
        with torch.inference_mode():
            traced = torch.jit.trace(front.eval(), example, check_trace=False)
        return torch.jit.freeze(traced)


#: Name of the JSON side file inside a saved int8 encoder (TorchScript ``_extra_files``).
_META = "tinyact.json"


def save_int8(module: torch.jit.ScriptModule, path: str | Path, encoder_hash: str | None = None) -> Path:
    """Write a quantised encoder from :func:`quantize_encoder` as a TorchScript file.

    ``encoder_hash``: the weight hash of the checkpoint it was quantised from (stored in the file, so that
    loading it next to a re-trained checkpoint is refused instead of silently encoding with old weights).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, which cannot yet serialise quantised packed weights.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(module, str(path), _extra_files={_META: json.dumps({"encoder_hash": encoder_hash})})
    return path


def load_int8(path: str | Path, encoder_hash: str | None = None) -> torch.jit.ScriptModule:
    """Load a file written by :func:`save_int8`.

    A missing or foreign file, or one quantised from weights other than ``encoder_hash`` (when both hashes
    are known), raises :class:`TinyActError`.
    """
    path = Path(path)
    if not path.is_file():
        raise TinyActError(f"int8 encoder file not found: {path}")
    extra = {_META: ""}
    try:
        with quantized_engine(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # see save_int8
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra).eval()
    except RuntimeError as error:
        raise TinyActError(f"cannot load {path} as a TorchScript int8 encoder: {str(error).splitlines()[0]}") from None
    saved_hash = json.loads(extra[_META] or "{}").get("encoder_hash")
    if encoder_hash and saved_hash and saved_hash != encoder_hash:
        raise TinyActError(f"{path} was quantised from encoder {saved_hash}, but the checkpoint is {encoder_hash}: "
                           "quantise it again (`tinyact edge quantize --format torch`)")
    return module
