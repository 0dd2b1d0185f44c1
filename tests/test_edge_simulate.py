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
