"""Train/serve parity: an edge camera's clip has the pixels the training path (read_clip, the cache) gives.

Both go through :func:`tinyact.data.transforms.prepare_frames`; these tests read the same frames of a real
H.264 file both ways and compare the uint8 clips.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import av
import numpy as np
import pytest
import torch

from tinyact.data.encode import encode_video
from tinyact.data.transforms import prepare_frames, resize_short_side_center_crop
from tinyact.data.video import ClipSampling, read_clip, sample_clips
from tinyact.edge import sources
from tinyact.edge.simulate import synthetic_frames

FPS, STRIDE, T = 25, 3, 16


@pytest.fixture(scope="module")
def textured_video(tmp_path_factory) -> Path:
    """3 s of 8-px random blocks drifting under a moving disc, 25 fps, 96×128: sharp edges everywhere, so
    two different resamplers disagree by many grey levels."""
    path = tmp_path_factory.mktemp("parity") / "textured.mp4"
    encode_video(path, synthetic_frames(96, 128, 3 * FPS), FPS, crf=18)
    return path


def camera_grab(path: Path, end: float, size: tuple[int, int], *, old: bool = False) -> sources.Grab:
    """A FileCamera grab whose window (16 frames, 3 file frames apart) ends at file time ``end``."""
    now = [50.0]
    camera = sources.FileCamera("c", path, clock=lambda: now[0])  # t0 = 50: the camera shows 0.0 s now
    now[0] += end
    if old:
        from benchmarks.preprocessing_parity import swscale_clip

        with mock.patch.object(sources, "clip_of", swscale_clip):
            grab = camera.grab(T, FPS / STRIDE, size)
    else:
        grab = camera.grab(T, FPS / STRIDE, size)
    camera.close()
    return grab


def dense(end: float, size: int | None) -> ClipSampling:
    """The training path's sampling of the window that ends at ``end``."""
    return ClipSampling(strategy="dense", num_frames=T, stride=STRIDE, start=end - (T - 1) * STRIDE / FPS, size=size)


def max_diff(a, b) -> int:
    return int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())


# Window ends half a frame after a frame time: both paths then pick the same frames whatever the rounding.
@pytest.mark.parametrize("end", [2.02, 2.9])
def test_file_camera_clip_equals_read_clip(textured_video, end):
    grab = camera_grab(textured_video, end, (48, 48))
    clip = sample_clips(textured_video, dense(end, 48))[0]
    assert grab.frames.shape == (T, 3, 48, 48) and grab.frames.dtype == np.uint8
    assert 0 <= grab.position_s - clip.timestamps[-1] < 1 / FPS  # the same window: its last frame is on screen
    assert max_diff(grab.frames, clip.frames) <= 1
    assert torch.equal(read_clip(textured_video, dense(end, 48)), clip.frames)


def test_non_square_edge_size_is_the_shared_resize(textured_video):
    grab = camera_grab(textured_video, 2.02, (40, 64))
    native = sample_clips(textured_video, dense(2.02, None))[0].frames  # [T, 3, 96, 128] as decoded
    expected = prepare_frames(native.permute(0, 2, 3, 1), (40, 64))  # [T, 3, H, W] -> [T, H, W, 3] -> [T, 3, 40, 64]
    assert grab.frames.shape == (T, 3, 40, 64)
    assert max_diff(grab.frames, expected) <= 1


def test_the_old_swscale_path_did_differ(textured_video):
    """The parity test has teeth: the conversion the edge used before disagrees with training by far more."""
    old = camera_grab(textured_video, 2.02, (48, 48), old=True)
    clip = sample_clips(textured_video, dense(2.02, 48))[0]
    assert max_diff(old.frames, clip.frames) > 10


class CountingFrame:
    """A decoded frame that counts its conversions."""

    def __init__(self, frame: av.VideoFrame) -> None:
        self.frame, self.conversions = frame, 0

    def to_ndarray(self, **kwargs) -> np.ndarray:
        self.conversions += 1
        return self.frame.to_ndarray(**kwargs)


def test_clip_of_converts_each_distinct_frame_once(textured_video):
    """StreamCamera and FileCamera both make their clip with clip_of: native rgb24, then prepare_frames."""
    with av.open(str(textured_video)) as container:
        frames = [CountingFrame(f) for _, f in zip(range(3), container.decode(video=0), strict=False)]
    window = [frames[0], frames[1], frames[1], frames[2]]  # a repeated frame (capture rate above the file's)
    clip = sources.clip_of(window, (32, 48))
    assert [f.conversions for f in frames] == [1, 1, 1] and clip.shape == (4, 3, 32, 48)
    expected = prepare_frames(np.stack([f.frame.to_ndarray(format="rgb24") for f in window]), (32, 48)).numpy()
    assert np.array_equal(clip, expected)


def test_prepare_frames_contract():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 30, 50, 3), dtype=np.uint8)  # [T, H, W, 3]
    out = prepare_frames(frames, 20)
    assert out.shape == (4, 3, 20, 20) and out.dtype == torch.uint8 and out.is_contiguous()
    assert torch.equal(out, prepare_frames(torch.from_numpy(frames), (20, 20)))  # numpy or tensor, int or (h, w)
    assert prepare_frames(frames, (10, 40)).shape == (4, 3, 10, 40)
    assert torch.equal(prepare_frames(frames, None), torch.from_numpy(frames).permute(0, 3, 1, 2))
    # The uint8 kernel stays within a grey level of resizing through float32.
    chw = torch.from_numpy(frames).permute(0, 3, 1, 2)
    through_float = resize_short_side_center_crop(chw.float(), 20).round().clamp(0, 255)
    assert max_diff(out, through_float) <= 1
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        prepare_frames(frames.transpose(0, 3, 1, 2), 20)  # channels first is refused, not silently garbled


def test_preprocessing_parity_benchmark_quick(tmp_path):
    from benchmarks import preprocessing_parity

    out = tmp_path / "parity.json"
    results = preprocessing_parity.main(["--quick", "--contents", "blocks", "--json", str(out)])
    row = results["rows"][0]
    assert row["new_vs_read_clip_max"] <= 1 and row["old_vs_new_max"] > 1 and row["new_fps"] > 0
    assert json.loads(out.read_text())["rows"][0]["size"] == 64
