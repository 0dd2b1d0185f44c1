"""Lightweight action-recognition peers, rebuilt from their published block tables for side-by-side benchmarks.

All peers take ``[B, 3, T, H, W]`` float clips and return logits ``[B, num_classes]``. They are randomly
initialised (latency and cost do not depend on the weights; no network, no pretrained files). Each entry of
:data:`PEERS` records the published parameter count and multiply-adds with their source, and the tests check
our rebuild against them (±2 % parameters).

pytorchvideo's ``create_x3d``/``create_r2plus1d`` were not used: ``pytorchvideo.models`` imports its detection
head, which imports ``torchvision.ops`` (not installed with our CPU torch), and the package would add fvcore
and iopath for two builders. The rebuilds here match the published counts (X3D: 3.79 M = pytorchvideo's count).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.peer_models.movinet import movinet_a0
from benchmarks.peer_models.r2plus1d import r2plus1d_18
from benchmarks.peer_models.tsm import tsm_mobilenet_v2
from benchmarks.peer_models.x3d import x3d_s, x3d_xs
from tinyact.errors import TinyActError
from tinyact.models import summary


@dataclass(frozen=True)
class PeerSpec:
    """A peer model and its published figures."""

    name: str
    build: Callable[[int], nn.Module]
    native: tuple[int, int, int]  # (T, H, W) it was published at
    published_params: float  # parameters, at ``published_classes``
    published_classes: int
    published_gmacs: float  # multiply-adds at ``native``, one view
    source: str


PEERS: dict[str, PeerSpec] = {
    spec.name: spec
    for spec in (
        PeerSpec("x3d-xs", x3d_xs, (4, 160, 160), 3.76e6, 400, 0.60, "X3D paper (CVPR 2020) Table 3"),
        PeerSpec("x3d-s", x3d_s, (13, 160, 160), 3.76e6, 400, 1.96, "X3D paper (CVPR 2020) Table 3"),
        PeerSpec("r2plus1d-18", r2plus1d_18, (16, 112, 112), 31.505325e6, 400, 40.52,
                 "torchvision r2plus1d_18 model card (Kinetics-400)"),
        PeerSpec("movinet-a0", movinet_a0, (50, 172, 172), 3.1e6, 600, 2.71,
                 "MoViNets paper (CVPR 2021) Table 3 (Kinetics-600)"),
        PeerSpec("tsm-mobilenetv2", tsm_mobilenet_v2, (8, 224, 224), 2.736272e6, 400, 2.40,
                 "MobileNetV2 paper / torchvision (3.50 M, 0.30 GMACs per frame at 1000 classes) with a 400-class head, ×8 frames"),
    )
}


def build_peer(name: str, num_classes: int | None = None) -> nn.Module:
    """Build peer ``name`` (eval mode); ``num_classes`` defaults to the class count it was published with."""
    if name not in PEERS:
        raise TinyActError(f"unknown peer model {name!r}; choose one of {', '.join(PEERS)}")
    spec = PEERS[name]
    return spec.build(num_classes or spec.published_classes).eval()


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return summary.count_params([model])


def count_macs(model: nn.Module, example: torch.Tensor, fn: Callable[[torch.Tensor], object] | None = None) -> float:
    """Multiply-adds of one call of ``fn`` (default ``model``) on ``example``: convolutions and matmuls, FLOPs / 2."""
    return summary.count_flops(fn or model, example) / 2


__all__ = ["PEERS", "PeerSpec", "build_peer", "count_macs", "count_params"]
