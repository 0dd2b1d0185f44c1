"""Real (rendered) synthetic action clips in memory, for calibration, drift and latency measurements.

The frames come from the project's synthetic generator (:mod:`tinyact.data.synth`), not from noise: int8
calibration and drift need the value statistics of real video (flat backgrounds, edges, a moving figure).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tinyact.data.synth.generator import SynthConfig, plan_dataset, render_clip
from tinyact.data.transforms import resize_short_side_center_crop


def synthetic_clips(
    n: int, *, frames: int = 16, size: int = 112, seed: int = 0, classes: int = 12, split: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 clips ``[n, frames, 3, size, size]`` and their action labels ``[n]``.

    Clips cycle through ``classes`` actions (balanced); each is a rendered 1.5–2.5 s video, ``frames`` frames
    sampled uniformly, short side resized to ``size`` and centre-cropped. ``split`` restricts to one
    generator split (its actors are disjoint from the other splits).
    """
    per_class = max(3, -(-n // classes) * (5 if split else 1))
    cfg = SynthConfig(out=Path("unused"), classes=classes, clips_per_class=per_class, seed=seed,
                      size=max(64, size), min_seconds=1.5, max_seconds=2.5, noise_max=2, workers=1)
    plans = [p for p in plan_dataset(cfg) if split is None or p.split == split]
    # Interleave classes so the first n clips are balanced.
    rank: dict[int, int] = {}
    keyed = []
    for plan in plans:
        rank[plan.label_index] = rank.get(plan.label_index, -1) + 1
        keyed.append(((rank[plan.label_index], plan.label_index), plan))
    plans = [plan for _, plan in sorted(keyed, key=lambda item: item[0])]
    clips, labels = [], []
    for plan in plans[:n]:
        rendered, _, _ = render_clip(cfg, plan)
        idx = np.linspace(0, len(rendered) - 1, frames).round().astype(int)
        video = torch.from_numpy(np.stack([rendered[i] for i in idx])).permute(0, 3, 1, 2)  # [T, 3, H, W]
        # Contiguous [T, 3, H, W], as the data path (sample_clips) and the edge cameras (to_rgb) deliver clips:
        # a strided view would make every runtime in a benchmark pay a transposing copy no real input needs.
        clips.append(resize_short_side_center_crop(video, size).contiguous().numpy())
        labels.append(plan.label_index)
    return np.stack(clips), np.asarray(labels)
