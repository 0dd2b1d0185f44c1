"""Static int8 quantisation of the 3-D encoder in PyTorch itself (FX graph mode, oneDNN kernels).

The ONNX Runtime path (:mod:`tinyact.models.export`) runs ``QLinearConv`` through an im2col + int8 GEMM, which on
a CPU without VNNI gains little over fp32 (``docs/BENCHMARKS.md``). PyTorch's quantised ``Conv3d`` on the
oneDNN engine uses oneDNN's direct int8 convolution instead. What :func:`quantize_encoder` does:

1. ``Conv3d + BatchNorm3d + ReLU`` are fused, then observers are inserted (``prepare_fx``): per-channel
   symmetric int8 weights; uint8 activations, 8 bits. Measured on the trained encoders (``docs/BENCHMARKS.md``):
   7-bit activations (``reduce_range``) double the error, and a histogram observer clips the input residual's
   largest values, which are the moving actor. The activation range is the mean over calibration batches of each
   batch's min and max (:class:`BatchMeanMinMaxObserver`): on the shipped encoder's val windows it drifts ~40 %
   less than the global min-max, which one extreme window sets (relative L2 0.131 → 0.076). (CPUs without VNNI add pairs of u8·s8
   products in 16 bits, which 8-bit activations can in principle overflow; ``tinyact edge quantize`` prints the
   drift on held-out clips of the user's data, which would show it.)
2. The calibration clips (real uint8 clips, normalised like every backend) run through it. Then, by default,
   quantisation-aware fine-tuning (``prepare_qat_fx`` on the BatchNorm-folded stack, fake quantisation, ranges fixed)
   adjusts the weights for ~100 steps so that the int8 latents match the fp32 model's on those same clips: no
   labels, ~20 s at 64 px on 2 cores; the val drift drops by another third (0.076 → 0.054) at all-int8 speed,
   and no chosen real-footage test prediction changes (:class:`Int8Options`).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

from tinyact.console import progress_bar
from tinyact.data.transforms import NormStats, normalize
from tinyact.errors import TinyActError
from tinyact.models.autoencoder3d import VideoAutoEncoder3D, conv_input
from tinyact.models.export import Ranges

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


class BatchMeanMinMaxObserver(MinMaxObserver):
    """Activation range: the mean over calibration batches of each batch's min and max.

    The global min-max of :class:`MinMaxObserver` is set by the one most extreme window, which widens the int8 step
    for every other; the batch mean is not. On the shipped encoder's val windows it cuts the latent drift by ~40 %
    (``docs/BENCHMARKS.md``). Same as ``MovingAverageMinMaxObserver`` with averaging constant ``1 / batch``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches = 0

    def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
        if x_orig.numel() == 0:
            return x_orig
        low, high = torch.aminmax(x_orig.detach().to(self.min_val.dtype))
        self.batches += 1
        if self.batches == 1:
            self.min_val.copy_(low)
            self.max_val.copy_(high)
        else:
            self.min_val.add_((low - self.min_val) / self.batches)
            self.max_val.add_((high - self.max_val) / self.batches)
        return x_orig


@dataclass(frozen=True)
class Int8Options:
    """How :func:`quantize_encoder` calibrates, chosen on val windows of real footage (``benchmarks/int8_sensitivity.py``).

    Attributes:
        ranges: activation ranges: ``batch-mean`` (:class:`BatchMeanMinMaxObserver`) or ``minmax`` (the global
            min and max, what shipped before).
        finetune_steps: quantisation-aware fine-tuning steps after calibration: the weights (BatchNorm folded in)
            are adjusted, with the ranges fixed, so that the fake-quantised latents match the fp32 model's on the
            calibration clips (relative squared error; no labels). 0 quantises the weights as they are.
        finetune_lr: Adam learning rate of the fine-tuning (small: it corrects rounding, it does not retrain).
        batch_size: clips per calibration and fine-tuning batch (the batch-mean ranges are per batch of this size).
        seed: the fine-tuning's sampling order.
    """

    ranges: Ranges = "batch-mean"
    finetune_steps: int = 100
    finetune_lr: float = 1e-5
    batch_size: int = 8
    seed: int = 0


def _qconfig(ranges: Ranges, fake_quant: bool) -> Any:
    """Per-channel symmetric int8 weights, uint8 activations over ``ranges``; wrapped for fake quantisation when
    the weights are fine-tuned."""
    from torch.ao.quantization import FakeQuantize, QConfig

    weight = PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    activation = (BatchMeanMinMaxObserver if ranges == "batch-mean" else MinMaxObserver).with_args(reduce_range=False)
    if not fake_quant:
        return QConfig(activation=activation, weight=weight)
    return QConfig(activation=FakeQuantize.with_args(observer=activation, quant_min=0, quant_max=255, dtype=torch.quint8),
                   weight=FakeQuantize.with_args(observer=weight, quant_min=-128, quant_max=127, dtype=torch.qint8,
                                                 qscheme=torch.per_channel_symmetric))


def _finetune(prepared: nn.Module, reference: nn.Module, inputs: torch.Tensor, options: Int8Options) -> None:
    """Quantisation-aware fine-tuning of a ``prepare_qat_fx`` stack with its ranges fixed, towards the latents of the
    fp32 ``reference`` stack on ``inputs`` (see :class:`Int8Options`)."""
    from torch.ao.quantization import disable_observer, enable_fake_quant

    with torch.no_grad():
        targets = torch.cat([reference(batch) for batch in inputs.split(options.batch_size)])
    prepared.apply(disable_observer)
    prepared.apply(enable_fake_quant)
    optimizer = torch.optim.Adam([p for p in prepared.parameters() if p.requires_grad], lr=options.finetune_lr)
    generator = torch.Generator().manual_seed(options.seed)
    with progress_bar("int8 fine-tuning", total=options.finetune_steps, unit="step") as bar:
        for _ in range(options.finetune_steps):
            index = torch.randint(len(inputs), (options.batch_size,), generator=generator)
            target = targets[index]
            loss = ((prepared(inputs[index]) - target) ** 2).sum(1).mean() / (target**2).sum(1).mean().clamp_min(1e-12)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.advance()


def quantize_encoder(
    model: nn.Module,
    calibration: np.ndarray,
    *,
    stats: NormStats | None = None,
    engine: str = ENGINE,
    float_modules: Sequence[str] = (),
    options: Int8Options | None = None,
) -> torch.jit.ScriptModule:
    """Quantise ``model``'s encoder to int8 with activation ranges calibrated on real clips.

    Args:
        model: a :class:`~tinyact.models.VideoAutoEncoder3D` (left unchanged).
        calibration: uint8 clips ``[N, T, 3, H, W]`` of the encoder's input shape; 16-32 real clips suffice.
        stats: normalisation statistics (default: the model's own).
        engine: quantised engine whose kernels the packed weights target.
        float_modules: the model's modules to keep in float (``encoder.N``, a convolution with its BatchNorm and
            ReLU, or a bottleneck block; ``to_latent``): the layers whose int8 error moves the latents most
            (``benchmarks/int8_sensitivity.py``), at the cost of their int8 speed.
        options: ranges and fine-tuning (default :class:`Int8Options`).

    Returns:
        A frozen TorchScript module: normalised float clips ``[B, T, 3, H, W]`` -> float32 latents ``[B, D]``.
    """
    from torch.ao.quantization import QConfigMapping, disable_fake_quant
    from torch.ao.quantization.quantize_fx import convert_fx, fuse_fx, prepare_fx, prepare_qat_fx

    from tinyact.models.export import _input_shape

    model = _video_autoencoder(model)
    options = options or Int8Options()
    shape = _input_shape(model, None, None)
    calibration = np.asarray(calibration)
    if calibration.dtype != np.uint8 or calibration.ndim != 5 or tuple(calibration.shape[1:]) != shape or not len(calibration):
        raise TinyActError(f"calibration clips must be uint8 [N, {', '.join(map(str, shape))}] with N >= 1, "
                           f"got {calibration.dtype} {tuple(calibration.shape)}")
    stats = stats or model.config.normalization
    finetune = options.finetune_steps > 0
    stack = _conv_stack(model)
    with torch.no_grad():
        # The stack's input (the float front's output) for every calibration clip, in a seeded order so that the
        # batch-mean ranges do not depend on how the caller sorted its clips.
        order = torch.randperm(len(calibration), generator=torch.Generator().manual_seed(options.seed))
        inputs = torch.cat([model.encoder_input(normalize(torch.from_numpy(calibration[i.numpy()]), stats)).contiguous()
                            for i in order.split(options.batch_size)])
    with quantized_engine(engine), warnings.catch_warnings():
        # torch.ao.quantization warns that it is moving to torchao; the FX API is what ships with torch 2.13.
        warnings.simplefilter("ignore")
        mapping = QConfigMapping().set_global(_qconfig(options.ranges, finetune))
        for name in _stack_names(model, float_modules):
            mapping.set_module_name(name, None)
        if finetune:
            # BatchNorm folded into the convolutions first (eval-mode fusion): nothing then depends on train mode,
            # and units kept in float are plain convolutions, as in the post-training path.
            prepared = prepare_qat_fx(fuse_fx(stack).train(), mapping, example_inputs=(inputs[:1],))
            prepared.apply(disable_fake_quant)  # the ranges are calibrated on float activations
        else:
            prepared = prepare_fx(stack, mapping, example_inputs=(inputs[:1],))
        with torch.no_grad():
            for batch in inputs.split(options.batch_size):
                prepared(batch)
        if finetune:
            _finetune(prepared, _conv_stack(model), inputs, options)
        prepared.requires_grad_(False)  # layers kept in float would otherwise freeze as grad-tracking constants
        front = _FloatFront(model, convert_fx(prepared.eval())).eval()
        example = normalize(torch.from_numpy(calibration[:1]), stats)
        with torch.inference_mode():
            traced = torch.jit.trace(front, example, check_trace=False)
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
