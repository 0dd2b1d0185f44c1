"""Decoding, time-based sampling, resizing, normalisation and typed errors of tinyact.data.video."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import frame_index_of
from tinyact.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize,
    normalize,
    resize_short_side_center_crop,
)
from tinyact.data.video import (
    REORDER_DEPTH,
    ClipSampling,
    VideoDecodeError,
    clip_timestamps,
    in_presentation_order,
    match_frames,
    probe_video,
    read_clip,
    sample_clips,
)


@pytest.mark.parametrize("suffix", ["mp4", "mkv", "webm", "avi"])
def test_decode_generated_containers(make_video, suffix):
    path = make_video(f"ramp.{suffix}", n_frames=40, fps=25)
    info = probe_video(path)
    assert info.num_frames == 40
    assert info.width == 64 and info.height == 48
    assert info.duration == pytest.approx(1.6, abs=0.05)
    assert info.fps == pytest.approx(25, rel=0.05)
    clip = read_clip(path, ClipSampling(num_frames=16, size=32))
    assert clip.shape == (16, 3, 32, 32) and clip.dtype == torch.uint8
    # Uniform sampling over 40 frames picks the frame shown at each segment centre: floor((i + 0.5) * 2.5).
    got = [frame_index_of(clip[i, 0].float().mean()) for i in range(16)]
    assert got == [int((i + 0.5) * 40 / 16) for i in range(16)]


def test_variable_frame_rate_sampling_uses_presentation_times(make_video):
    times = [0.0, 0.1, 0.15, 0.2, 0.5, 0.55, 0.6, 1.0, 1.05, 1.1, 1.5, 1.6, 1.7, 1.75, 1.8, 2.0, 2.4, 2.5, 2.9, 3.0]
    path = make_video("vfr.mkv", n_frames=len(times), timestamps=times)
    info = probe_video(path)
    assert info.variable_frame_rate
    np.testing.assert_allclose(info.frame_times, times, atol=1e-3)
    clip = sample_clips(path, ClipSampling(num_frames=8, size=None))[0]
    assert clip.frames.shape == (8, 3, 48, 64)
    # Targets are segment centres of [0, end); each maps to the last frame shown at or before it.
    targets = clip_timestamps(info, ClipSampling(num_frames=8))[0]
    expected = [max(t for t in times if t <= target + 1e-9) for target in targets]
    np.testing.assert_allclose(clip.timestamps, expected, atol=1e-3)
    got = [times[frame_index_of(clip.frames[i, 0].float().mean())] for i in range(8)]
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_dense_sampling_from_start_with_stride(make_video):
    path = make_video("dense.mp4", n_frames=100, fps=25)
    clip = sample_clips(path, ClipSampling(strategy="dense", num_frames=8, stride=2, start=1.0, size=None))[0]
    np.testing.assert_allclose(clip.timestamps, 1.0 + np.arange(8) * 2 / 25, atol=1e-3)
    assert [frame_index_of(clip.frames[i, 0].float().mean()) for i in range(8)] == list(range(25, 41, 2))


def test_dense_sampling_at_fixed_rate(make_video):
    path = make_video("rate.mp4", n_frames=100, fps=25)
    clip = sample_clips(path, ClipSampling(strategy="dense", num_frames=5, sample_fps=5, size=None))[0]
    np.testing.assert_allclose(clip.timestamps, np.arange(5) * 0.2, atol=1e-3)


def test_dense_window_past_the_end_is_shifted_back(make_video):
    path = make_video("end.mp4", n_frames=50, fps=25)
    clip = sample_clips(path, ClipSampling(strategy="dense", num_frames=8, stride=4, start=10.0, size=None))[0]
    assert clip.timestamps[-1] <= 49 / 25 + 1e-6
    assert np.all(np.diff(clip.timestamps) > 0)


def test_dense_window_longer_than_video_is_compressed(make_video):
    path = make_video("short.mp4", n_frames=20, fps=25)
    clip = sample_clips(path, ClipSampling(strategy="dense", num_frames=16, stride=4, size=None))[0]
    assert len(clip.timestamps) == 16
    assert clip.timestamps[0] == pytest.approx(0) and clip.timestamps[-1] <= 19 / 25 + 1e-6


def test_multi_clip_windows_are_evenly_spaced(make_video):
    path = make_video("multi.mp4", n_frames=200, fps=25)
    clips = sample_clips(path, ClipSampling(strategy="multi", num_clips=3, num_frames=4, stride=2, size=16))
    assert len(clips) == 3
    starts = [c.timestamps[0] for c in clips]
    assert starts[0] == pytest.approx(0.0)
    assert starts[1] - starts[0] == pytest.approx(starts[2] - starts[1], abs=0.05)
    assert clips[2].timestamps[-1] <= 199 / 25 + 1e-6
    assert all(c.frames.shape == (4, 3, 16, 16) for c in clips)


def test_multi_needs_multi_strategy():
    with pytest.raises(ValueError):
        ClipSampling(strategy="uniform", num_clips=2)


@pytest.mark.parametrize(("h", "w", "size"), [(48, 64, 32), (64, 48, 32), (30, 40, 64), (50, 50, 50)])
def test_resize_short_side_center_crop_shapes(h, w, size):
    frames = torch.randint(0, 256, (4, 3, h, w), dtype=torch.uint8)
    out = resize_short_side_center_crop(frames, size)
    assert out.shape == (4, 3, size, size) and out.dtype == torch.uint8
    batched = resize_short_side_center_crop(frames[None].float(), size)
    assert batched.shape == (1, 4, 3, size, size) and batched.dtype == torch.float32


def test_resize_keeps_the_centre():
    frames = torch.zeros(1, 3, 40, 80, dtype=torch.uint8)
    frames[..., :, 20:60] = 200  # the centre square
    out = resize_short_side_center_crop(frames, 20)
    assert int(out.min()) == 200


def test_normalize_imagenet_and_clip_stats():
    frames = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = normalize(frames, "imagenet")
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor(expected))
    assert not torch.allclose(normalize(frames, "clip"), out)
    torch.testing.assert_close(denormalize(out, "imagenet"), torch.ones_like(out))
    assert normalize(frames, "none").max() == 1.0


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(VideoDecodeError, match="file not found") as error:
        probe_video(tmp_path / "nope.mp4")
    assert error.value.path.endswith("nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty file"):
        read_clip(empty)


def test_corrupt_file(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoDecodeError, match="not a readable media file") as error:
        read_clip(junk)
    assert error.value.reason


@pytest.mark.parametrize("suffix", ["mp4", "webm", "avi"])
def test_truncated_file(make_video, suffix):
    path = make_video(f"full.{suffix}", n_frames=60, fps=25)
    data = path.read_bytes()
    truncated = path.with_name(f"truncated.{suffix}")
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError) as error:
        read_clip(truncated, ClipSampling(size=16))
    assert "truncated" in error.value.reason or "not a readable" in error.value.reason or "no video" in error.value.reason


def test_audio_only_file(audio_only_file):
    with pytest.raises(VideoDecodeError, match="no video stream"):
        read_clip(audio_only_file)


def test_too_short_file(make_video):
    path = make_video("tiny.mp4", n_frames=5)
    with pytest.raises(VideoDecodeError, match="too short: 5 frames"):
        read_clip(path, ClipSampling(num_frames=16))
    assert read_clip(path, ClipSampling(num_frames=5, size=8)).shape == (5, 3, 8, 8)


def test_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(VideoDecodeError("/x.mp4", "why")))
    assert (error.path, error.reason) == ("/x.mp4", "why")


def test_frames_with_swapped_time_labels_are_matched_in_output_order():
    # MPEG-4 packed B-frames in an AVI: the decoder outputs pictures in order, labelled 1, 2, 4, 3, 5, 7, 6, ...
    # (FFmpeg's own encoder cannot write such a file; the real case is checked on real footage, docs/BENCHMARKS.md).
    labels = [1, 2, 4, 3, 5, 7, 6, 8, 10, 9, 11]
    pictures = [f"picture{i + 1}" for i in range(len(labels))]  # the i-th picture shown is the i-th output
    retimed = list(in_presentation_order(zip([t / 30 for t in labels], pictures, strict=True)))
    assert [p for _, p in retimed] == pictures and [t for t, _ in retimed] == [t / 30 for t in sorted(labels)]
    found, read = match_frames(zip([t / 30 for t in labels], pictures, strict=True), np.array([3, 4, 7]) / 30, 1 / 60)
    assert found == ["picture3", "picture4", "picture7"] and read <= 7 + REORDER_DEPTH
    ordered = [(i / 30, f"picture{i}") for i in range(1, 9)]  # increasing labels come out untouched
    assert list(in_presentation_order(ordered)) == ordered
