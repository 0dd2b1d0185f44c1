"""Peer models: each builds, runs, and matches its published parameter count (±2 %) and multiply-adds."""

from __future__ import annotations

import pytest
import torch

from benchmarks.peer_models import PEERS, build_peer, count_macs, count_params
from tinyact.errors import TinyActError


@pytest.mark.parametrize("name", list(PEERS))
def test_peer_builds_runs_and_matches_published_size(name):
    spec = PEERS[name]
    with torch.device("meta"):
        params = count_params(build_peer(name))
    assert abs(params - spec.published_params) / spec.published_params < 0.02, (name, params)
    # A tiny clip: the right output shape, finite logits.
    with torch.no_grad():
        size = 64 if name == "movinet-a0" else 32  # MoViNet's 5 stride-2 stages need >= 64 px
        out = build_peer(name, num_classes=7)(torch.rand(2, 3, 4, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(PEERS))
def test_peer_macs_at_native_input(name):
    spec = PEERS[name]
    with torch.device("meta"):  # shapes only: counting needs no arithmetic
        macs = count_macs(build_peer(name), torch.zeros(1, 3, *spec.native))
    assert abs(macs / 1e9 - spec.published_gmacs) / spec.published_gmacs < 0.05, (name, macs)  # MoViNet: 2.63 vs 2.71 (SE/pooling not counted)


def test_params_at_400_classes_and_unknown_peer():
    # MoViNet was published on Kinetics-600; its 400-class head is 200 * 2049 parameters smaller.
    with torch.device("meta"):
        assert count_params(build_peer("movinet-a0")) - count_params(build_peer("movinet-a0", 400)) == 200 * 2049
        assert abs(count_params(build_peer("x3d-xs", 400)) - 3.76e6) / 3.76e6 < 0.02
    with pytest.raises(TinyActError, match="unknown peer"):
        build_peer("i3d")
