"""Camera sources: where a round's clips come from.

Every camera answers ``grab(num_frames, capture_fps, size) -> Grab``: ``num_frames`` frames ``1/capture_fps``
apart, the *latest* window the camera has (like a camera's ring buffer: the clip ends "now"), resized to the
encoder's input size, plus a snapshot for the local page.

* :class:`FileCamera`: a video file played at real-time pace and looped, a simulated CCTV camera. Its
  position is ``(now - start) · speed`` modulo the file's length, so two grabs 10 s apart see frames 10 s
  apart. A grab seeks to the keyframe before the window and decodes only up to the window's last frame; only
  the frames kept are converted to RGB. Frames between windows are never decoded: this is what decides how
  many cameras one box can serve.
* :class:`~tinyact.edge.streams.StreamCamera` (:mod:`tinyact.edge.streams`): RTSP / HTTP streams and V4L2
  webcams, built on the base here.

The frames kept become the clip through :func:`clip_of`: RGB at the camera's native size, then
:func:`tinyact.data.transforms.prepare_frames`, the same function that made the training clips (read_clip,
the cache), so the encoder sees the pixels it was trained on. Only the snapshot for the local page is scaled
by swscale (display only).

A camera's failure is its own: ``grab`` raises :class:`CameraError` and records the error in ``health()``;
the agent skips it for this round and retries it later (backoff), and the other cameras go on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import numpy as np

from tinyact.data.transforms import prepare_frames
from tinyact.data.video import VideoDecodeError, frames_at, match_frames, probe_video
from tinyact.errors import TinyActError
from tinyact.retry import backoff_delay

logger = logging.getLogger(__name__)

SNAPSHOT_WIDTH = 640


class CameraError(TinyActError):
    """A camera could not give a clip; the message says why."""


@dataclass
class Grab:
    """One clip from one camera."""

    camera_id: str
    frames: np.ndarray  # uint8 [T, 3, H, W], from prepare_frames (like every training clip)
    captured_at: datetime  # end of the window, UTC
    snapshot: np.ndarray  # uint8 [h, w, 3] RGB, the window's last frame at snapshot size
    decoded_frames: int  # frames the decoder produced for this clip (the cost of the grab)
    position_s: float | None = None  # file cameras: time in the file of the window's last frame


def clip_of(frames: Sequence[av.VideoFrame], size: tuple[int, int]) -> np.ndarray:
    """Decoded frames (oldest first; the same frame may repeat) -> uint8 ``[T, 3, H, W]``, ``size = (H, W)``.

    Each distinct frame is converted to rgb24 at its native size, exactly as the training path decodes it
    (:func:`tinyact.data.video.decode_frames_at`), then all go through the shared
    :func:`~tinyact.data.transforms.prepare_frames` (scale to cover ``size``, centre crop) in one call.
    """
    slot: dict[int, int] = {}  # id(frame) -> row of the converted frame
    distinct: list[av.VideoFrame] = []
    for frame in frames:
        if id(frame) not in slot:
            slot[id(frame)] = len(distinct)
            distinct.append(frame)
    rgb = [f.to_ndarray(format="rgb24") for f in distinct]  # t x [H, W, 3] at native size, not stacked
    clip = prepare_frames(rgb, size).numpy()  # [t, 3, h, w]
    return clip if len(distinct) == len(frames) else clip[[slot[id(f)] for f in frames]]


def snapshot_of(frame: av.VideoFrame, max_width: int = SNAPSHOT_WIDTH) -> np.ndarray:
    """A display-size RGB ``[h, w, 3]`` copy of ``frame`` (aspect kept, even sizes)."""
    width = min(max_width, frame.width)
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    return frame.to_ndarray(width=width, height=height, format="rgb24")


class Health:
    """Up/down state of one camera with exponential backoff between failed attempts."""

    def __init__(self, base_s: float = 1.0, max_s: float = 60.0) -> None:
        self.up: bool | None = None  # None: not tried yet
        self.last_error: str | None = None
        self.last_ok_at: float | None = None
        self.failures = 0  # consecutive
        self.total_failures = 0
        self.next_try_at = 0.0
        self.base_s, self.max_s = base_s, max_s
        self._lock = threading.Lock()

    def ok(self) -> None:
        with self._lock:
            if self.up is False:
                logger.info("camera is back up after %d failure(s)", self.failures)
            self.up, self.failures, self.next_try_at, self.last_ok_at = True, 0, 0.0, time.time()

    def failed(self, error: str) -> float:
        with self._lock:
            self.up, self.last_error = False, error
            self.failures += 1
            self.total_failures += 1
            delay = backoff_delay(self.failures, self.base_s, self.max_s)
            self.next_try_at = time.monotonic() + delay
            return delay

    def ready(self) -> bool:
        return time.monotonic() >= self.next_try_at

    def as_dict(self) -> dict[str, Any]:
        return {
            "up": bool(self.up), "state": "up" if self.up else ("starting" if self.up is None else "down"),
            "last_error": self.last_error, "failures": self.total_failures,
            "last_ok_at": datetime.fromtimestamp(self.last_ok_at, UTC).isoformat() if self.last_ok_at else None,
            "retry_in_s": round(max(0.0, self.next_try_at - time.monotonic()), 1) if self.up is False else None,
        }


def redact(source: str) -> str:
    """``source`` without credentials (``rtsp://user:pass@host/...`` -> ``rtsp://***@host/...``), for status
    pages and logs."""
    scheme, sep, rest = source.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return source


class Camera:
    """Base of the sources: an id, a :class:`Health`, ``grab`` and ``close``."""

    source = ""

    def __init__(self, camera_id: str) -> None:
        self.camera_id = camera_id
        self.health = Health()
        self.clips = 0
        self.decoded_frames = 0

    def grab(self, num_frames: int, capture_fps: float, size: tuple[int, int]) -> Grab:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {"camera_id": self.camera_id, "kind": type(self).__name__, "source": redact(self.source), "clips": self.clips,
                "decoded_frames": self.decoded_frames, **self.health.as_dict()}


class FileCamera(Camera):
    """A video file played at real-time pace and looped (see the module docstring).

    ``fps``: play the file's frames at this rate instead of its own (a speed factor). ``clock``: monotonic
    seconds (tests pass a fake clock to check the pacing).
    """

    def __init__(self, camera_id: str, path: str | Path, *, fps: float | None = None, clock=time.monotonic,
                 skip_nonref: bool = True) -> None:
        super().__init__(camera_id)
        self.skip_nonref = skip_nonref
        self.path = self.source = str(path)
        self.fps = fps
        self.clock = clock
        self.t0 = clock()
        self._container: av.container.InputContainer | None = None
        self._lock = threading.Lock()

    def _open(self) -> None:
        try:
            self.info = probe_video(self.path)
        except VideoDecodeError as error:
            raise CameraError(error.reason) from None
        self.speed = self.fps / self.info.fps if self.fps else 1.0
        try:
            self._container = av.open(self.path)
        except (av.FFmpegError, OSError) as error:
            raise CameraError(f"cannot open: {error}") from None
        self._stream = self._container.streams.video[0]
        self._stream.thread_count = 1  # parallelism comes from grabbing several cameras at once
        # An AVI stores no presentation times: its packets' labels need not belong to the frames they decode to
        # (MPEG-4 packed B-frames), so skipping packets by label could drop a wanted frame. Decode them all.
        self._skip_by_label = self.skip_nonref and "avi" not in self._container.format.name.split(",")

    def position(self, now: float | None = None) -> float:
        """The file time (seconds) on screen at monotonic time ``now``."""
        if self._container is None:
            self._open()
        elapsed = ((self.clock() if now is None else now) - self.t0) * self.speed
        return self.info.start + elapsed % self.info.duration

    def grab(self, num_frames: int, capture_fps: float, size: tuple[int, int]) -> Grab:
        with self._lock:
            try:
                if self._container is None:
                    self._open()
                now = self.clock()
                captured_at = datetime.now(UTC)
                elapsed = (now - self.t0) * self.speed
                step = self.speed / capture_fps
                # Oldest first, last = now; rounded to the nanosecond so that float error at the start of the file
                # (-1e-16 s) does not wrap round to its last frame.
                unwrapped = np.round(elapsed - step * np.arange(num_frames - 1, -1, -1), 9)
                targets = self.info.start + np.mod(unwrapped, self.info.duration)
                indices = frames_at(self.info.frame_times, targets)
                frames, snapshot, decoded = self._decode(self._opened(), indices, size)
            except CameraError:
                self._close()
                raise
            except (av.FFmpegError, OSError) as error:
                self._close()
                raise CameraError(f"decoding failed: {error}") from None
        self.clips += 1
        self.decoded_frames += decoded
        return Grab(self.camera_id, frames, captured_at, snapshot, decoded, float(targets[-1]))

    def _opened(self) -> av.container.InputContainer:
        """The open file (opened now if it is not)."""
        if self._container is None:
            self._open()
        if self._container is None:  # _open raises rather than leave it closed
            raise CameraError("the file is not open")
        return self._container

    def _decode(self, container: av.container.InputContainer, indices: np.ndarray,
                size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
        # Split the window where it wraps around the end of the file: each run is decoded from its own seek.
        runs: list[list[int]] = [[int(indices[0])]]
        for i in indices[1:]:
            if i < runs[-1][-1]:
                runs.append([])
            runs[-1].append(int(i))
        kept: dict[int, av.VideoFrame] = {}
        snapshot = None
        decoded = 0
        last_index = int(indices[-1])
        for run in runs:
            got, last_frame, n = self._decode_run(container, sorted(set(run)), want_snapshot=last_index in run)
            kept.update(got)
            decoded += n
            if last_frame is not None:
                snapshot = snapshot_of(last_frame)
        if snapshot is None:
            raise CameraError("the window's last frame could not be decoded")
        return clip_of([kept[int(i)] for i in indices], size), snapshot, decoded

    def _decode_run(self, container: av.container.InputContainer, wanted: list[int],
                    want_snapshot: bool) -> tuple[dict[int, av.VideoFrame], av.VideoFrame | None, int]:
        times = self.info.frame_times
        tolerance = self.info.frame_duration / 2
        stream = self._stream
        time_base = time_base_s(stream)
        container.seek(int(times[wanted[0]] / time_base), stream=stream, backward=True, any_frame=False)
        frames = ((float(frame.pts * time_base), frame)
                  for frame in self._frames(container, stream, times[wanted], tolerance) if frame.pts is not None)
        found, decoded = match_frames(frames, times[wanted], tolerance)  # converted later, all at once (clip_of)
        if len(found) < len(wanted):
            raise CameraError(f"{len(wanted) - len(found)} frame(s) of the window could not be decoded (truncated file?)")
        return dict(zip(wanted, found, strict=True)), (found[-1] if want_snapshot else None), decoded

    def _frames(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                wanted_times: np.ndarray, tolerance: float) -> Iterator[av.VideoFrame]:
        """Decoded frames from the current position. With ``skip_nonref`` (not for AVI files, see ``_open``), a
        packet whose frame is not wanted is decoded with ``skip_frame=NONREF``: a frame no other frame refers to
        (most B-frames) is then not decoded at all, while reference frames still are (the wanted frames need them)."""
        context = stream.codec_context
        time_base = time_base_s(stream)
        try:
            for packet in container.demux(stream):
                if self._skip_by_label:
                    hit = True
                    if packet.pts is not None and packet.size:
                        t = packet.pts * time_base
                        i = int(np.searchsorted(wanted_times, t - tolerance))
                        hit = i < len(wanted_times) and abs(wanted_times[i] - t) <= tolerance
                    context.skip_frame = "DEFAULT" if hit else "NONREF"
                yield from packet.decode()
        finally:
            context.skip_frame = "DEFAULT"

    def _close(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):  # closing a broken container must not hide the real error
                self._container.close()
            self._container = None

    def close(self) -> None:
        with self._lock:
            self._close()


def time_base_s(stream: av.video.stream.VideoStream) -> float:
    """Seconds per timestamp tick of ``stream``."""
    if stream.time_base is None:
        raise CameraError("the video stream has no time base")
    return float(stream.time_base)
