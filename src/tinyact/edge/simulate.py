"""Simulated CCTV cameras with known ground truth (the demo and the edge benchmarks).

A *playlist* is one H.264 file made of labelled action clips played one after the other (each looped to at
least ``min_segment_s`` so a capture window usually sees one action; :func:`write_takes` takes frames, e.g.
performances rendered that long, which then play once), plus ``<name>.json`` with the segments
``[{label, start, end, source}]``. A :class:`~tinyact.edge.sources.FileCamera` plays it at real-time pace and
loops it; :class:`RecordingCamera` wraps a camera and remembers, per captured clip, which file times its frames
came from, so the true action of every clip the agent sends is known::

    playlist = write_playlist(paths_and_labels, "cam-1.mp4")
    camera = RecordingCamera(FileCamera("cam-1", "cam-1.mp4"), playlist)
    ... agent rounds ...
    camera.truths[captured_at]  ->  Truth(label="waving", purity=1.0)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import av
import numpy as np

from tinyact.data.encode import encode_video
from tinyact.data.video import frames_at
from tinyact.errors import TinyActError


@dataclass(frozen=True)
class Segment:
    label: str
    start: float  # seconds in the playlist file
    end: float
    source: str


@dataclass(frozen=True)
class Playlist:
    """A playlist file and its labelled segments (``duration`` = the file's length)."""

    path: Path
    fps: float
    segments: tuple[Segment, ...]

    @property
    def duration(self) -> float:
        return self.segments[-1].end if self.segments else 0.0

    def label_at(self, t: float) -> str:
        """The action on screen at file time ``t`` (wrapped into the file)."""
        t = float(t) % self.duration
        for segment in self.segments:
            if t < segment.end:
                return segment.label
        return self.segments[-1].label

    @classmethod
    def load(cls, path: str | Path) -> Playlist:
        path = Path(path)
        data = json.loads(path.with_suffix(".json").read_text())
        return cls(path, float(data["fps"]), tuple(Segment(**s) for s in data["segments"]))


@dataclass(frozen=True)
class Truth:
    """The true action of one captured clip: the majority label of its frames, the share of frames that
    show it (1.0: the whole window is one action), and the playlist time of its last frame (so the very window
    can be read again offline)."""

    label: str
    purity: float
    position_s: float | None = None


def _decode_rgb(path: Path, size: tuple[int, int] | None) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        frames = []
        for frame in container.decode(stream):
            if size is None:
                frames.append(frame.to_ndarray(format="rgb24"))
            else:
                frames.append(frame.to_ndarray(width=size[0], height=size[1], format="rgb24"))
    if not frames:
        raise TinyActError(f"{path} has no video frames")
    return frames, fps


@dataclass(frozen=True)
class Take:
    """One labelled performance to put in a playlist: decoded RGB frames ``[H, W, 3]`` at ``fps``."""

    frames: Sequence[np.ndarray]
    fps: float
    label: str
    source: str  # where it came from (a file name), kept in the playlist's segments


def write_playlist(
    clips: Sequence[tuple[str | Path, str]],
    out: str | Path,
    *,
    fps: float = 15.0,
    min_segment_s: float = 4.0,
    size: tuple[int, int] | None = None,
) -> Playlist:
    """Concatenate ``(video, label)`` clips into one file at ``fps`` (frames resampled by time), each clip
    looped to at least ``min_segment_s``; ``size`` = ``(width, height)`` to rescale (default: the first
    clip's). Writes ``out`` and ``out.json``; returns the :class:`Playlist`."""
    takes = []
    for source, label in clips:
        frames, src_fps = _decode_rgb(Path(source), size)
        if size is None:
            size = (frames[0].shape[1] // 2 * 2, frames[0].shape[0] // 2 * 2)
            frames = [f[: size[1], : size[0]] for f in frames]
        takes.append(Take(frames, src_fps, label, Path(source).name))
    return write_takes(takes, out, fps=fps, min_segment_s=min_segment_s)


def write_takes(takes: Sequence[Take], out: str | Path, *, fps: float = 15.0, min_segment_s: float = 4.0) -> Playlist:
    """The playlist of ``takes`` (frames of one size) at ``fps``, each looped to at least ``min_segment_s``.

    A take as long as ``min_segment_s`` plays once, as a camera sees a person: a looped one jumps back to its
    start, which a window across the loop point sees as a jump of the person. Encoded once (H.264).
    Writes ``out`` and ``out.json``; returns the :class:`Playlist`."""
    out = Path(out)
    frames_out: list[np.ndarray] = []
    segments: list[Segment] = []
    for take in takes:
        length_s = len(take.frames) / take.fps
        loops = max(1, int(np.ceil((min_segment_s - 0.5 / take.fps) / length_s)))  # half a frame short is long enough
        n_out = max(1, int(round(loops * length_s * fps)))
        # Frame shown at output time t: the source frame on screen at (t mod take length), the data path's rule.
        idx = frames_at(np.arange(len(take.frames)) / take.fps, np.arange(n_out) / fps % length_s)
        start = len(frames_out) / fps
        frames_out.extend(take.frames[i] for i in idx)
        segments.append(Segment(take.label, round(start, 4), round(len(frames_out) / fps, 4), take.source))
    if not frames_out:
        raise TinyActError("a playlist needs at least one clip")
    encode_video(out, frames_out, fps)
    playlist = Playlist(out, fps, tuple(segments))
    out.with_suffix(".json").write_text(json.dumps({"fps": fps, "segments": [asdict(s) for s in segments]}, indent=1))
    return playlist


class RecordingCamera:
    """Wraps a :class:`~tinyact.edge.sources.FileCamera` playing ``playlist``: every grab is passed through
    unchanged and its :class:`Truth` is kept in ``truths`` (keyed by ``captured_at``) and ``by_time``.

    The frame times of a grab are rebuilt the way FileCamera samples them: the last frame at
    ``grab.position_s`` and the others ``speed / capture_fps`` seconds apart before it."""

    def __init__(self, camera, playlist: Playlist) -> None:
        self._camera = camera
        self.playlist = playlist
        self.truths: dict[datetime, Truth] = {}
        self.first_clip: np.ndarray | None = None  # uint8 [T, 3, H, W] of the first grab (bytes comparisons)
        self._lock = threading.Lock()

    def __getattr__(self, name):  # everything else (camera_id, health, status, close, …) is the camera's
        return getattr(self._camera, name)

    def grab(self, num_frames: int, capture_fps: float, size):
        grab = self._camera.grab(num_frames, capture_fps, size)
        if self.first_clip is None:
            self.first_clip = grab.frames
        if grab.position_s is not None:
            speed = getattr(self._camera, "speed", 1.0) or 1.0
            times = grab.position_s - (speed / capture_fps) * np.arange(num_frames - 1, -1, -1)
            labels = [self.playlist.label_at(t) for t in times]
            values, counts = np.unique(labels, return_counts=True)
            best = int(np.argmax(counts))
            with self._lock:
                self.truths[grab.captured_at] = Truth(str(values[best]), float(counts[best]) / len(labels),
                                                      float(grab.position_s))
        return grab

    def truth_of(self, captured_at: datetime, tolerance_s: float = 0.01) -> Truth | None:
        """The truth of the grab captured at ``captured_at`` (as stored: rounding to the millisecond is fine)."""
        with self._lock:
            if captured_at in self.truths:
                return self.truths[captured_at]
            target = captured_at.timestamp()
            for at, truth in self.truths.items():
                if abs(at.timestamp() - target) <= tolerance_s:
                    return truth
        return None

    def now_label(self) -> str | None:
        """The action on screen right now."""
        try:
            return self.playlist.label_at(self._camera.position())
        except Exception:  # camera not open / failing: nothing on screen
            return None


def h264_bytes(clip: np.ndarray, fps: float, crf: int = 23) -> int:
    """Bytes of ``clip`` (uint8 ``[T, 3, H, W]``) as an H.264 file at ``fps``: what sending the video itself
    would cost, to compare with a latent."""
    import tempfile

    frames = [np.ascontiguousarray(f.transpose(1, 2, 0)) for f in clip]
    with tempfile.TemporaryDirectory() as folder:
        return encode_video(Path(folder) / "clip.mp4", frames, fps, crf=crf)


def synthetic_frames(height: int, width: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB frames of a moving textured scene at ``height``×``width`` (benchmarks: simulated 720p cameras
    whose content costs a realistic amount to encode and decode)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    base = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(n):
        shift = (i * 3) % 8
        frame = base[shift : shift + height, shift : shift + width].copy()
        cx, cy = int(width * (0.2 + 0.6 * (i % 50) / 50)), height // 2
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < (height // 8) ** 2
        frame[mask] = (255, 200, 40)
        frames.append(frame)
    return frames
