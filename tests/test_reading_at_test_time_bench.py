"""``benchmarks/reading_at_test_time.py``: the motion crop finds and enlarges a small moving figure, leaves a still or
panning window whole, and the benchmark runs end to end on a tiny generated dataset (never ../shared)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reading_at_test_time import main, motion_crop  # noqa: E402
from tests.test_real_footage_bench import CLASSES, PERSONS, tiny_dataset  # noqa: E402,F401 (a fixture)

S = 64


def small_walker(frames: int = 8, top: int = 8, left: int = 40) -> torch.Tensor:
    """A 6x3 px white figure stepping right across a grey window's upper right: uint8 ``[1, T, 3, S, S]``."""
    clip = torch.full((1, frames, 3, S, S), 90, dtype=torch.uint8)
    for t in range(frames):
        clip[0, t, :, top : top + 6, left + t : left + t + 3] = 255
    return clip


def test_the_crop_centres_and_enlarges_a_small_moving_figure():
    clip = small_walker()
    cropped, sides = motion_crop(clip)
    assert sides[0] < S and sides[0] >= 0.4 * S  # zoomed, at most 2.5x
    assert cropped.shape == clip.shape and cropped.dtype == torch.uint8
    bright = lambda x: int((x[0, 0, 0] > 200).sum())  # noqa: E731
    assert bright(cropped) > 2 * bright(clip)  # the figure covers more pixels
    ys, xs = torch.nonzero(cropped[0, 4, 0] > 200, as_tuple=True)
    assert abs(xs.float().mean() - S / 2) < S / 4 and abs(ys.float().mean() - S / 2) < S / 4  # near the centre


def test_a_still_window_is_left_whole_and_a_pan_barely_zoomed():
    still = torch.full((2, 8, 3, S, S), 120, dtype=torch.uint8)
    cropped, sides = motion_crop(still)
    assert torch.equal(cropped, still) and (sides == S).all()
    texture = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (S, S + 16), dtype=np.uint8))
    pan = torch.stack([texture[:, t : t + S] for t in range(8)])[None, :, None].expand(1, 8, 3, S, S).contiguous()
    _, sides = motion_crop(pan)
    assert sides[0] >= 0.8 * S  # the whole frame moves: no region to zoom into


def test_max_side_zooms_only_a_small_moving_region():
    small = small_walker()
    large = torch.full((1, 8, 3, S, S), 90, dtype=torch.uint8)
    for t in range(8):  # a 40 px tall figure stepping right
        large[0, t, :, 10:50, 10 + 2 * t : 22 + 2 * t] = 255
    both = torch.cat([small, large])
    cropped, sides = motion_crop(both, max_side=0.5)
    assert sides[0] <= 0.5 * S and not torch.equal(cropped[0], both[0])
    assert sides[1] == S and torch.equal(cropped[1], both[1])


def test_height_sizing_zooms_a_walker_more_than_extent_sizing():
    clip = small_walker(frames=16, left=10)  # travels 16 px while 6 px tall
    _, by_extent = motion_crop(clip, min_side=0.1)
    _, by_height = motion_crop(clip, side_from="height", min_side=0.1)
    assert by_height[0] < by_extent[0]


@pytest.mark.slow
def test_the_benchmark_runs_on_a_tiny_dataset(request, tmp_path):
    from tinyact.models.autoencoder3d import VideoAutoEncoder3D
    from tinyact.models.checkpoint import save_model

    root, split_file = request.getfixturevalue("tiny_dataset")  # 3 classes x 4 persons, encoded videos
    persons = tmp_path / "persons.csv"
    with open(persons, "w", newline="") as handle:
        csv.writer(handle).writerows([("path", "class", "person"),
                                      *((f"{kind}/{p}_{kind}.mp4", kind, p) for kind in CLASSES for p in PERSONS)])
    torch.manual_seed(0)
    save_model(tmp_path / "enc.pt", VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 8),
                                                       latent_dim=16))
    result = main(["--encoder", str(tmp_path / "enc.pt"), "--sizes", "32,40", "--work", str(tmp_path / "w"),
                   "--probe", f"tiny={root}:{split_file}:{persons}",
                   "--probe", f"tiny_all={root}:{split_file}:{persons}:all", "--json", str(tmp_path / "r.json")])
    assert (tmp_path / "r.json").is_file() and result["trained_size"] == 32
    nontest, every = result["datasets"]["tiny"], result["datasets"]["tiny_all"]
    assert (nontest["clips"], nontest["persons"]) == (9, 3) and (every["clips"], every["persons"]) == (12, 4)
    assert not nontest["test_persons_included"] and every["test_persons_included"]
    for data in (nontest, every):
        assert {"size 32", "size 40", "crop extent", "full + crop height"} <= set(data["top1"])
        assert all(0 <= v[r] <= 100 for v in data["top1"].values() for r in ("recorded", "mirrored"))
        assert 0 < data["top1"]["crop extent"]["mean_side_px"] <= 32
