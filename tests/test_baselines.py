"""Table 1's baselines as latents files: raw pixels pooled to 1024 values, and a seeded untrained encoder."""

from __future__ import annotations

import numpy as np
import torch

from tinyact.classifiers.baselines import (
    RawPixelEncoder,
    random_encoder,
    random_encoder_latents,
    raw_pixel_latents,
)
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest
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
