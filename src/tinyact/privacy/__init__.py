"""The parts of a privacy audit of the latents that leave the edge: inversion attack, probes, defences.

- :mod:`~tinyact.privacy.metrics`: PSNR and SSIM (torch, Gaussian window);
- :mod:`~tinyact.privacy.attack`: the attacker's decoder, the mean-frame and nearest-neighbour references;
- :mod:`~tinyact.privacy.probes`: actor / scene / action probes with chance levels;
- :mod:`~tinyact.privacy.defences`: wire round trips, noise and coarse quantisation.

``benchmarks/privacy_audit.py`` puts them together over one synthetic dataset whose actors and scenes are
known, ``benchmarks/privacy.py`` runs it end to end, and ``docs/PRIVACY.md`` explains the results.
"""

from tinyact.privacy.attack import (
    AttackConfig,
    AttackDecoder,
    mean_frame_baseline,
    nearest_neighbour_attack,
    train_attack,
)
from tinyact.privacy.defences import Defence, quantize_per_vector, wire_roundtrip
from tinyact.privacy.metrics import psnr_per_item, reconstruction_scores, ssim_per_item
from tinyact.privacy.probes import ProbeResult, conditional_baseline, probe_cv, probe_split

__all__ = [
    "AttackConfig", "AttackDecoder", "Defence", "ProbeResult",
    "conditional_baseline", "mean_frame_baseline", "nearest_neighbour_attack", "probe_cv", "probe_split",
    "psnr_per_item", "quantize_per_vector", "reconstruction_scores", "ssim_per_item",
    "train_attack", "wire_roundtrip",
]
