"""The teacher interface and :class:`ModuleTeacher`, which turns any ``nn.Module`` into a teacher.

A teacher takes our clips as they come out of the data path – uint8 ``[B, T, 3, H, W]`` – and does its own
preprocessing: it resamples the clip in time to the frame count it was trained on, resizes it to its
resolution and normalises it with its own statistics. The KD code never needs to know what the teacher wants.

::

    clips uint8 [B, T, 3, H, W]
      ├─ resample_frames   T -> num_frames (uniform, nearest frame)
      ├─ resize            short side -> size, centre crop size × size (bilinear, torch)
      ├─ normalise         (x · input_scale/255 − mean) / std          (input_scale 1: [0, 1]; 255: [0, 255])
      ├─ layout            BTCHW (default) or BCTHW
      └─ module(x) ─► logits [B, C]  (+ embedding [B, D] from the output or a hooked layer's input)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from tinyact.data.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    resize_short_side_center_crop,
)
from tinyact.errors import TinyActError

Layout = Literal["BTCHW", "BCTHW"]


class TeacherError(TinyActError):
    """A teacher cannot be loaded or run as specified (bad spec, missing file, incompatible output)."""


@dataclass
class TeacherOutput:
    """What a teacher returns for a batch: ``logits`` float32 ``[B, C]`` over ``label_names`` and optionally an
    embedding float32 ``[B, D]`` (for feature-level distillation)."""

    logits: torch.Tensor
    embedding: torch.Tensor | None = None


@runtime_checkable
class Teacher(Protocol):
    """Anything that maps uint8 clips ``[B, T, 3, H, W]`` to :class:`TeacherOutput`.

    Attributes:
        label_names: the teacher's class names in logit order (empty: same classes and order as the dataset).
        num_frames: frames per clip the teacher was trained on (clips are resampled to it).
        size: square input resolution the teacher expects.
        embedding_dim: size of the returned embedding, or ``None`` when it returns none (or it is not known
            before the first call).
    """

    label_names: list[str]
    embedding_dim: int | None

    @property
    def num_frames(self) -> int: ...

    @property
    def size(self) -> int: ...

    def __call__(self, clips: torch.Tensor) -> TeacherOutput: ...


def resample_frames(clips: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Pick ``num_frames`` frames spread uniformly over axis 1 of ``[B, T, …]`` (nearest frame, no blending).

    Works both ways: 16 -> 8 takes every other frame, 8 -> 16 repeats each frame twice.
    """
    t = clips.shape[1]
    if t == num_frames:
        return clips
    # Centre of each of num_frames equal segments of [0, t): the same rule as uniform clip sampling.
    index = ((torch.arange(num_frames, dtype=torch.float64) + 0.5) * t / num_frames).floor().long().clamp_(0, t - 1)
    return clips.index_select(1, index.to(clips.device))


def _three(values: Sequence[float], what: str) -> tuple[float, float, float]:
    out = tuple(float(v) for v in values)
    if len(out) != 3:
        raise TeacherError(f"{what} needs 3 values (R, G, B), got {list(out)}")
    return out[0], out[1], out[2]


def normalisation_stats(name: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Named statistics on the ``[0, 1]`` scale: ``imagenet``, ``clip``, ``half`` (0.5/0.5) or ``none`` (0/1)."""
    table = {
        "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
        "clip": (CLIP_MEAN, CLIP_STD),
        "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    }
    if name not in table:
        raise TeacherError(f"unknown normalisation {name!r}; choose one of {sorted(table)} or give 3 numbers")
    mean, std = table[name]
    return tuple(mean), tuple(std)  # type: ignore[return-value]


@dataclass
class Preprocess:
    """How a teacher wants its input (see the module docstring).

    ``mean``/``std`` are on the scale given by ``input_scale``: ImageNet statistics on a 0–255 scale (ILA,
    mmaction2) are ``mean=(123.675, 116.28, 103.53)``, ``std=(58.395, 57.12, 57.375)``, ``input_scale=255``.
    """

    num_frames: int = 16
    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_scale: float = 1.0
    layout: Layout = "BTCHW"

    def __post_init__(self) -> None:
        self.mean = _three(self.mean, "mean")
        self.std = _three(self.std, "std")
        if self.layout not in ("BTCHW", "BCTHW"):
            raise TeacherError(f"layout must be BTCHW or BCTHW, got {self.layout!r}")
        if self.num_frames < 1 or self.size < 8:
            raise TeacherError(f"bad teacher input shape: {self.num_frames} frames at {self.size} px")

    def __call__(self, clips: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """uint8 ``[B, T, 3, H, W]`` -> float ``[B, num_frames, 3, size, size]`` (or ``[B, 3, T, S, S]``)."""
        if clips.dim() != 5 or clips.shape[2] != 3:
            raise TeacherError(f"teacher input must be clips [B, T, 3, H, W], got shape {tuple(clips.shape)}")
        x = resample_frames(clips, self.num_frames).to(device)
        # uint8 clips are 0–255; float clips are taken to be in [0, 1] already.
        x = x.float() if x.dtype == torch.uint8 else x.float() * 255.0
        x = resize_short_side_center_crop(x, self.size)  # [B, T, 3, S, S]
        x = x * (self.input_scale / 255.0)
        mean = torch.tensor(self.mean, device=device).view(3, 1, 1)
        std = torch.tensor(self.std, device=device).view(3, 1, 1)
        x = (x - mean) / std
        if self.layout == "BCTHW":
            x = x.permute(0, 2, 1, 3, 4)  # [B, T, 3, S, S] -> [B, 3, T, S, S]
        return x.to(dtype).contiguous()


def split_output(output: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits and optional embedding from what a module returns: a tensor, a ``(logits, embedding)`` tuple, a
    dict with ``logits`` (and ``embedding``), or an object with a ``.logits`` attribute (Hugging Face outputs)."""
    embedding = None
    if isinstance(output, torch.Tensor):
        logits = output
    elif isinstance(output, dict):
        if "logits" not in output:
            raise TeacherError(f"teacher returned a dict without 'logits' (keys: {sorted(output)})")
        logits, embedding = output["logits"], output.get("embedding")
    elif hasattr(output, "logits"):
        logits = output.logits
    elif isinstance(output, list | tuple) and output and isinstance(output[0], torch.Tensor):
        logits = output[0]
        second = output[1] if len(output) > 1 else None
        embedding = second if isinstance(second, torch.Tensor) and second.dim() == 2 else None
    else:
        raise TeacherError(f"cannot find logits in the teacher's output of type {type(output).__name__}")
    if logits.dim() != 2:
        raise TeacherError(f"teacher logits must be [B, C], got shape {tuple(logits.shape)}")
    return logits, embedding


@dataclass
class ModuleTeacher:
    """A :class:`Teacher` around an ``nn.Module`` (TorchScript, an importable factory, a Hugging Face model).

    Args:
        module: called with the preprocessed batch; its output is read by :func:`split_output`.
        label_names: class names in logit order (empty: the dataset's own order).
        preprocess: the input contract (:class:`Preprocess`).
        device: where the module runs (``"auto"``: CUDA when present).
        dtype: the module's compute dtype (e.g. ``torch.float16`` for a big teacher on a GPU); outputs are
            always returned as float32.
        embedding_layer: name of a sub-module whose *input* is the embedding (e.g. ``"classifier"`` for a
            Hugging Face model: the pooled features before the head). Ignored when the output carries one.
        call: optional ``call(module, x) -> output`` replacing ``module(x)`` (models that need extra inputs).
    """

    module: nn.Module
    label_names: list[str] = field(default_factory=list)
    preprocess: Preprocess = field(default_factory=Preprocess)
    device: str | torch.device = "auto"
    dtype: torch.dtype = torch.float32
    embedding_layer: str | None = None
    call: Callable[[nn.Module, torch.Tensor], Any] | None = None
    embedding_dim: int | None = None

    def __post_init__(self) -> None:
        self.device = resolve_device(self.device)
        self.module = self.module.to(self.device)
        if self.dtype != torch.float32:
            self.module = self.module.to(self.dtype)
        self.module.eval()
        self._hooked: torch.Tensor | None = None
        if self.embedding_layer:
            try:
                layer = self.module.get_submodule(self.embedding_layer)
            except AttributeError:
                raise TeacherError(f"teacher has no sub-module {self.embedding_layer!r} to take the embedding from") from None
            layer.register_forward_pre_hook(self._capture)

    def _capture(self, _module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self._hooked = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None

    @property
    def num_frames(self) -> int:
        return self.preprocess.num_frames

    @property
    def size(self) -> int:
        return self.preprocess.size

    @torch.no_grad()  # not inference_mode: the outputs become loss targets in autograd graphs
    def __call__(self, clips: torch.Tensor) -> TeacherOutput:
        x = self.preprocess(clips, self.device, self.dtype)  # type: ignore[arg-type]
        self._hooked = None
        self.module.eval()  # some research code flips itself back to train mode inside forward
        output = self.call(self.module, x) if self.call is not None else self.module(x)
        logits, embedding = split_output(output)
        if embedding is None and self._hooked is not None:
            embedding = self._hooked.flatten(1)
        if self.label_names and logits.shape[1] != len(self.label_names):
            raise TeacherError(f"teacher gives {logits.shape[1]} logits but has {len(self.label_names)} label names")
        if embedding is not None:
            embedding = embedding.float()
            self.embedding_dim = int(embedding.shape[1])
        return TeacherOutput(logits.float(), embedding)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/``None`` -> CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
