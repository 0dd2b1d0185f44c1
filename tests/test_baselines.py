"""Table 1's baselines as latents files: raw pixels pooled to 1024 values, a seeded untrained encoder, and
classical motion-history features (MEI + MHI + mean + std at 32x32)."""

from __future__ import annotations

import numpy as np
import torch

from tinyact.classifiers.baselines import (
    MotionHistoryEncoder,
    RawPixelEncoder,
    motion_history_latents,
    random_encoder,
    random_encoder_latents,
    raw_pixel_latents,
)
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest
from tinyact.data.transforms import normalize
from tinyact.data.video import ClipSampling


def test_raw_pixel_encoder_pools_grey_levels():
    x = torch.zeros(2, 8, 3, 32, 32)
    x[1, :4, :, :16, :16] = 3.0  # first half of the frames, top-left quarter
    z = RawPixelEncoder().encode(x)
    assert z.shape == (2, 1024) and torch.all(z[0] == 0)
    grid = z[1].view(4, 16, 16)
    assert torch.all(grid[:2, :8, :8] == 3.0) and torch.all(grid[2:] == 0) and torch.all(grid[:, 8:] == 0)


def test_random_encoder_is_seeded_and_leaves_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = random_encoder("ae3d", "fast", seed=1, num_frames=8, input_size=32)
    assert torch.equal(torch.rand(1), expected)  # the caller's stream is untouched
    b = random_encoder("ae3d", "fast", seed=1, num_frames=8, input_size=32)
    c = random_encoder("ae3d", "fast", seed=2, num_frames=8, input_size=32)
    assert torch.equal(a.to_latent.weight, b.to_latent.weight)
    assert not torch.equal(a.to_latent.weight, c.to_latent.weight)
    assert not a.training


def test_baseline_latents_files(tiny_synth, tmp_path):
    entries, _ = read_kinetics(tiny_synth)
    manifest = Manifest(entries, tiny_synth)
    sampling = ClipSampling(num_frames=8, size=32)
    raw = raw_pixel_latents(manifest, sampling, tmp_path / "raw.npz")
    assert raw.latents.shape == (len(manifest), 1024) and raw.encoder_hash == "raw-pixels-4x16x16"
    assert set(raw.splits.tolist()) == {"train", "val", "test"} and "actor" in raw.meta["columns"]
    assert np.isfinite(raw.latents).all() and raw.latents.std() > 0
    rnd = random_encoder_latents(manifest, sampling, tmp_path / "rnd.npz", seed=0)
    again = random_encoder_latents(manifest, sampling, tmp_path / "rnd2.npz", seed=0)
    assert rnd.latents.shape == (len(manifest), 1024) and rnd.encoder_hash.startswith("random-ae3d-fast-seed0-")
    assert rnd.encoder_hash == again.encoder_hash
    np.testing.assert_allclose(rnd.latents, again.latents, rtol=1e-5, atol=1e-6)


def square_clip(t: int = 16, size: int = 32, path=None, side: int = 4, bg: int = 40, fg: int = 220) -> torch.Tensor:
    """uint8 ``[T, 3, size, size]``: a ``side``-px square at ``path(i) = (top, left)`` in frame ``i``."""
    clip = torch.full((t, 3, size, size), bg, dtype=torch.uint8)
    for i in range(t):
        top, left = path(i)
        if top is not None:
            clip[i, :, top : top + side, left : left + side] = fg
    return clip


def test_motion_history_marks_where_the_square_moved_and_nothing_else():
    t = 8
    clip = square_clip(t, path=lambda i: (10, 2 + 2 * i))  # 4-px square moving right 2 px a frame
    z = MotionHistoryEncoder().encode(normalize(clip)[None])  # [1, 4096]
    assert z.shape == (1, 4 * 32 * 32)
    mei, mhi, mean, std = z.view(4, 32, 32)
    swept = torch.zeros(32, 32, dtype=torch.bool)
    swept[10:14, 2 : 2 + 2 * (t - 1) + 4] = True  # every position the square took
    assert torch.all(mhi[swept] > 0) and torch.all(mhi[~swept] == 0)
    assert torch.equal(mei.bool(), swept)
    # Recent motion is brighter: what the last step uncovered is 1, the first pixels it left decayed by 1/T a frame.
    last = 2 + 2 * (t - 1)
    assert torch.all(mhi[10:14, last + 2 : last + 4] == 1) and torch.all(mhi[10:14, last : last + 2] == 1 - 1 / t)
    assert torch.allclose(mhi[10:14, 2:4], torch.tensor(1 - (t - 2) / t))
    assert torch.all(std[~swept] < 1e-4) and torch.allclose(mean[~swept], torch.tensor(40 / 255), atol=1e-4)
    # The same clip shrunk from 64x64 frames (resize to 32x32 inside) gives the same picture.
    big = torch.nn.functional.interpolate(clip.float(), scale_factor=2, mode="nearest").to(torch.uint8)
    assert torch.allclose(MotionHistoryEncoder().encode(normalize(big)[None]), z, atol=1e-4)
    assert MotionHistoryEncoder().name == "motion-history-32px-thr0.05"


def motion_set(per_class: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Three trivially different motions, 16 frames of 32x32 RGB with noise: a box crossing the frame
    horizontally, crossing it vertically, or blinking in place, near the middle (a few px of jitter); random
    sizes, speeds, grey levels."""
    rng = np.random.default_rng(seed)
    clips, labels = [], []
    for label in range(3):
        for _ in range(per_class):
            side, speed = int(rng.integers(4, 8)), float(rng.uniform(1.2, 1.8))
            a = int(rng.integers(16 - side // 2 - 3, 16 - side // 2 + 4))  # the middle, +-3 px
            along = [min(32 - side, int(rng.integers(0, 4) + speed * i)) for i in range(16)]
            if label == 0:
                path = lambda i, a=a, along=along: (a, along[i])  # noqa: E731
            elif label == 1:
                path = lambda i, a=a, along=along: (along[i], a)  # noqa: E731
            else:
                path = lambda i, a=a: (a, a) if (i // 2) % 2 == 0 else (None, None)  # noqa: E731
            clip = square_clip(16, path=path, side=side, bg=int(rng.integers(0, 100)), fg=int(rng.integers(150, 256)))
            noise = torch.from_numpy(rng.normal(0, 3, clip.shape)).round()
            clips.append((clip.float() + noise).clamp(0, 255).to(torch.uint8))
            labels.append(label)
    return normalize(torch.stack(clips)), np.array(labels)  # [N, T, 3, 32, 32]


def test_motion_history_separates_trivially_different_motions():
    from sklearn.linear_model import LogisticRegression

    encoder = MotionHistoryEncoder()
    x_train, y_train = motion_set(20, seed=0)
    x_test, y_test = motion_set(10, seed=1)
    model = LogisticRegression(max_iter=2000).fit(encoder.encode(x_train).numpy(), y_train)
    accuracy = float((model.predict(encoder.encode(x_test).numpy()) == y_test).mean())
    assert accuracy >= 0.8  # chance is 1/3


def test_motion_history_latents_file(tiny_synth, tmp_path):
    entries, _ = read_kinetics(tiny_synth)
    manifest = Manifest(entries, tiny_synth)
    mh = motion_history_latents(manifest, ClipSampling(num_frames=8, size=32), tmp_path / "mh.npz")
    assert mh.latents.shape == (len(manifest), 4096) and mh.encoder_hash == "motion-history-32px-thr0.05"
    assert np.isfinite(mh.latents).all() and mh.latents[:, 1024:2048].max() > 0  # some MHI somewhere
