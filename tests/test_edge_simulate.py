"""Simulated cameras for the demo and the benchmarks: a playlist of labelled clips is one real H.264 file whose
segments (and so the true action at any file time) are known."""

from __future__ import annotations

import av
import numpy as np
import pytest

from tinyact.edge.simulate import Playlist, write_playlist
from tinyact.errors import TinyActError


def test_playlist_segments_and_labels(make_video, tmp_path):
    a = make_video("a.mp4", n_frames=25, fps=25)  # 1.0 s
    b = make_video("b.mp4", n_frames=45, fps=15)  # 3.0 s
    playlist = write_playlist([(a, "waving"), (b, "running"), (a, "jumping")], tmp_path / "cam.mp4", fps=10,
                              min_segment_s=2.5)
    # a (1 s) is looped 3 times to reach 2.5 s; b (3 s) plays once.
    assert [(s.label, s.start, s.end) for s in playlist.segments] == [
        ("waving", 0.0, 3.0), ("running", 3.0, 6.0), ("jumping", 6.0, 9.0)]
    assert playlist.duration == 9.0
    assert playlist.label_at(0.1) == "waving" and playlist.label_at(3.5) == "running"
    assert playlist.label_at(8.99) == "jumping" and playlist.label_at(9.5) == "waving"  # looped
    with av.open(str(playlist.path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 90 and frames[0].shape == (48, 64, 3)
    # b's frames are a grey ramp: its segment shows them in order, not a's.
    ramp = [float(f.mean()) for f in frames[30:60]]
    assert np.all(np.diff(ramp[::3]) > 0)
    loaded = Playlist.load(playlist.path)
    assert loaded.segments == playlist.segments and loaded.fps == 10


def test_empty_playlist_is_refused(tmp_path):
    with pytest.raises(TinyActError):
        write_playlist([], tmp_path / "none.mp4")


def test_recording_camera_knows_the_truth_of_each_grab(make_video, tmp_path):
    from tinyact.edge.simulate import RecordingCamera, h264_bytes
    from tinyact.edge.sources import FileCamera

    a = make_video("a.mp4", n_frames=50, fps=25)
    playlist = write_playlist([(a, "waving"), (a, "running")], tmp_path / "cam.mp4", fps=25, min_segment_s=2.0)
    now = [100.0]
    camera = RecordingCamera(FileCamera("cam", playlist.path, clock=lambda: now[0]), playlist)
    assert camera.camera_id == "cam" and camera.health.up is None  # the wrapped camera's attributes
    # Segments: waving 0-2 s, running 2-4 s. A window is 16 frames 1/8 s apart, ending at the file time now.
    now[0] += 3.95  # window 2.075-3.95 s: all "running"
    grab = camera.grab(16, 8.0, (32, 32))
    assert grab.frames.shape == (16, 3, 32, 32)
    truth = camera.truth_of(grab.captured_at)
    assert truth.label == "running" and truth.purity == 1.0
    assert truth.position_s == grab.position_s and 3.9 <= truth.position_s <= 3.95  # the window's last frame
    assert camera.now_label() == "running"
    now[0] += 1.2  # window 3.275-5.15 s wraps: 6 frames "running", then 10 "waving" (0.025-1.15 s)
    grab = camera.grab(16, 8.0, (32, 32))
    truth = camera.truth_of(grab.captured_at)
    assert truth.label == "waving" and truth.purity == 10 / 16
    assert camera.first_clip is not None and h264_bytes(camera.first_clip, 8.0) > 100
    camera.close()


def test_a_take_as_long_as_the_segment_plays_once_and_a_short_one_loops(tmp_path):
    from tinyact.edge.simulate import Take, write_takes

    ramp = [np.full((32, 48, 3), 8 * i, np.uint8) for i in range(30)]  # 2.0 s at 15 fps, brighter each frame
    long_take, short_take = Take(ramp, 15.0, "waving", "a.mp4"), Take(ramp[:15], 15.0, "running", "b.mp4")
    playlist = write_takes([long_take, short_take], tmp_path / "cam.mp4", fps=15, min_segment_s=2.0)
    assert [(s.label, s.start, s.end, s.source) for s in playlist.segments] == [
        ("waving", 0.0, 2.0, "a.mp4"), ("running", 2.0, 4.0, "b.mp4")]
    with av.open(str(playlist.path)) as container:
        means = [float(f.to_ndarray(format="rgb24").mean()) for f in container.decode(video=0)]
    assert np.all(np.diff(means[2:28:4]) > 0)  # the long take: one pass, never back to its start
    assert means[45] < means[43] - 40  # the short one jumps back at its loop point (1 s in)
