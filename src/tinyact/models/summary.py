"""Parameters and FLOPs of every autoencoder kind and preset at several input sizes (``tinyact models summary``).

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` on a batch of one clip, with the model
and input on the ``meta`` device (shapes only: nothing is computed, so the whole table takes about a second).
The counter covers convolutions, transposed convolutions and matrix products, which are >99 % of the work;
BatchNorm, ReLU, pooling and the Sigmoid are not counted. One multiply-add is 2 FLOPs (GMACs = GFLOPs / 2).

``encoder`` is what runs on the edge (``encode``); ``full`` is ``forward`` (encode + decode, what training runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tinyact.models.factory import KINDS, build_autoencoder, presets


def count_flops(fn: Callable[..., object], *args: Any) -> int:
    """FLOPs of one call ``fn(*args)`` (convolutions and matrix products; one multiply-add is 2 FLOPs).

    Args:
        fn: A model or bound method, e.g. ``model.encode``.
        *args: Its inputs (tensors on any device, ``meta`` included).

    Returns:
        The FLOPs counted by :class:`~torch.utils.flop_counter.FlopCounterMode`.
    """
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args)
    return int(counter.get_total_flops())


def count_params(modules: Iterable[nn.Module]) -> int:
    """Number of parameters of ``modules`` together."""
    return sum(p.numel() for m in modules for p in m.parameters())


def summarize(kind: str, preset: str, size: int | tuple[int, int], frames: int = 16, **overrides: Any) -> dict[str, Any]:
    """One row: params (encoder, total) and GFLOPs (encoder, full forward) for a ``[1, frames, 3, H, W]`` clip.

    ``overrides`` are model config fields (e.g. ``stem_stride=(4, 4, 4)``) for variants between presets.
    """
    height, width = (size, size) if isinstance(size, int) else size
    with torch.device("meta"):
        model = build_autoencoder(kind, preset, **{**overrides, "num_frames": frames, "input_size": (height, width)}).eval()
        x = torch.empty(1, frames, 3, height, width)
    with torch.no_grad():
        encoder_flops = count_flops(model.encode, x)
        full_flops = count_flops(model, x)
    return {
        "kind": kind,
        "preset": preset,
        "frames": frames,
        "size": height if height == width else f"{height}x{width}",
        "encoder_params_m": round(count_params(model.encoder_modules()) / 1e6, 3),
        "total_params_m": round(count_params([model]) / 1e6, 3),
        "encoder_gflops": round(encoder_flops / 1e9, 3),
        "full_gflops": round(full_flops / 1e9, 3),
        "encoder_gmacs": round(encoder_flops / 2e9, 3),
        "latent_dim": model.config.latent_dim,
    }


def summary_table(
    kinds: Iterable[str] = KINDS, sizes: Iterable[int] = (112, 160, 224), frames: int = 16
) -> list[dict[str, Any]]:
    """Rows of :func:`summarize` for every preset of every kind at every size."""
    return [summarize(kind, preset, size, frames) for kind in kinds for preset in presets(kind) for size in sizes]


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (the one in docs/MODELS.md)."""
    header = "| kind | preset | T | size | encoder params (M) | total params (M) | encoder GFLOPs | encoder GMACs | full GFLOPs |"
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['kind']} | {r['preset']} | {r['frames']} | {r['size']} | {r['encoder_params_m']:.2f} | "
            f"{r['total_params_m']:.2f} | {r['encoder_gflops']:.2f} | {r['encoder_gmacs']:.2f} | {r['full_gflops']:.2f} |"
        )
    return "\n".join(lines)
