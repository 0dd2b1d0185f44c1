"""``benchmarks/pose_baseline.py``'s feature and scoring code (MediaPipe itself is never installed for the tests:
it is imported only where the pose model runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pose_baseline import LANDMARKS, clip_features, leave_one_person_out, main  # noqa: E402


def test_clip_features_use_only_frames_with_a_person():
    rng = np.random.default_rng(0)
    landmarks = rng.normal(size=(10, LANDMARKS, 2))
    landmarks[[2, 5]] = np.nan  # no person found in two frames
    vector, rate = clip_features(landmarks)
    assert rate == pytest.approx(0.8) and vector[-1] == pytest.approx(0.8)
    seen = landmarks[~np.isnan(landmarks[:, 0, 0])].reshape(8, -1)
    np.testing.assert_allclose(vector[: LANDMARKS * 2], seen.mean(0))
    assert not np.isnan(vector).any()


def test_a_video_without_a_person_still_gets_a_vector():
    vector, rate = clip_features(np.full((6, LANDMARKS, 2), np.nan))
    assert rate == 0.0 and vector.shape == (3 * LANDMARKS * 2 + 1,) and not vector.any()


def test_leave_one_person_out_separates_classes_that_the_features_carry():
    rng = np.random.default_rng(1)
    persons = np.repeat(np.array(["a", "b", "c", "d"]), 6)
    labels = np.tile(np.array(["wave", "bend", "jump"]), 8)
    telling = np.eye(3)[np.searchsorted(["bend", "jump", "wave"], labels)] * 3 + 0.3 * rng.normal(size=(24, 3))
    assert leave_one_person_out(telling, labels, persons) == 1.0
    noise = rng.normal(size=(24, 3))
    assert leave_one_person_out(noise, labels, persons) < 0.7


def test_a_malformed_dataset_option_is_a_clear_error():
    with pytest.raises(SystemExit, match="NAME=FOLDER:CLIPSCSV"):
        main(["--dataset", "ud810=/somewhere"])
    with pytest.raises(SystemExit, match="no such --dataset"):
        main(["--dataset", "a=/x:/x.csv", "--invert", "b"])
