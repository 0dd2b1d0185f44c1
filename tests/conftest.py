"""Shared fixtures: small real video files written with PyAV, and a tiny synthetic dataset.

Nothing is downloaded: every video a test reads was encoded here and is decoded through the real path.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tinyact.data.encode import encode_video

os.environ.setdefault("TINYACT_NO_PROGRESS", "1")
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    # pytest-xdist (scripts/check.sh): the cores shared among the workers, so that N workers do not each start one
    # torch thread per core and spin against each other.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def ramp_frames(n: int, height: int = 48, width: int = 64, step: int = 6) -> list[np.ndarray]:
    """Frames whose grey level encodes their index (``i * step``), so a test can tell which frame it got."""
    return [np.full((height, width, 3), min(255, i * step), np.uint8) for i in range(n)]


def frame_index_of(value: float, step: int = 6) -> int:
    """Invert :func:`ramp_frames` despite lossy compression."""
    return int(round(float(value) / step))


@pytest.fixture
def make_video(tmp_path: Path):
    """``make_video(name, n_frames=40, fps=25, timestamps=None, height=48, width=64) -> Path``."""

    def _make(name: str = "clip.mp4", n_frames: int = 40, fps: float = 25, timestamps=None, height: int = 48, width: int = 64):
        path = tmp_path / name
        encode_video(path, ramp_frames(n_frames, height, width), fps, timestamps=timestamps, crf=10)
        return path

    return _make


@pytest.fixture
def audio_only_file(tmp_path: Path) -> Path:
    """An .mp4 with an AAC audio stream and no video."""
    path = tmp_path / "audio_only.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(20):
            samples = (np.sin(np.arange(1024) / 10.0 + i) * 0.1).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """A 3-class synthetic dataset (5 clips per class, 48 px) in the Kinetics CVDF layout."""
    from tinyact.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(out=out, classes=3, clips_per_class=5, size=48, min_seconds=1.2, max_seconds=1.6, actors=6, workers=1))
    return out


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread (and on a loaded machine OpenMP threads spin); restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
