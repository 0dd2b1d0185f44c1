"""Live cameras: RTSP / HTTP streams and V4L2 webcams through PyAV, and :func:`open_camera` for a config entry.

A :class:`StreamCamera`'s reader thread demuxes packets all the time (cheap) but *decodes* only while a grab is
waiting: it starts at the next keyframe and stops after the last frame of the window, dropping the packets in
between windows. A stream that fails or stalls (no packet within the read timeout) is reopened with
exponential backoff; meanwhile the camera is down. Its clips go through the same :func:`~tinyact.edge.sources.clip_of`
as a file camera's (see :mod:`tinyact.edge.sources`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import av

from tinyact.edge.config import CameraConfig
from tinyact.edge.sources import (
    Camera,
    CameraError,
    FileCamera,
    Grab,
    clip_of,
    redact,
    snapshot_of,
    time_base_s,
)

logger = logging.getLogger(__name__)


@dataclass
class _Window:
    num_frames: int
    step: float
    size: tuple[int, int]
    frames: list
    done: threading.Event
    started: bool = False
    next_t: float | None = None
    last_frame: Any = None
    decoded: int = 0
    error: str | None = None


class StreamCamera(Camera):
    """RTSP / HTTP / V4L2 through PyAV with a reader thread (see the module docstring).

    ``pace``: sleep to the stream's timestamps (for sources that can be read faster than real time, such as
    a file served over HTTP); live sources arrive at their own pace and never wait here.
    """

    def __init__(self, camera_id: str, url: str, *, fps: float | None = None, resolution: tuple[int, int] | None = None,
                 read_timeout_s: float = 10.0, pace: bool = True, options: dict[str, str] | None = None,
                 grab_timeout_s: float = 15.0) -> None:
        super().__init__(camera_id)
        self.url = self.source = url
        self.grab_timeout_s = grab_timeout_s
        self.fps = fps
        self.resolution = resolution
        self.read_timeout_s = read_timeout_s
        self.pace = pace
        self.options = dict(options or {})
        self.reconnects = 0
        self.packets = 0
        self._window: _Window | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera_id}", daemon=True)
            self._thread.start()

    def _open(self) -> av.container.InputContainer:
        url, fmt, options = self.url, None, dict(self.options)
        if url.startswith("v4l2://") or url.startswith("/dev/video"):
            url, fmt = url.removeprefix("v4l2://"), "v4l2"
            if self.fps:
                options.setdefault("framerate", f"{self.fps:g}")
            if self.resolution:
                options.setdefault("video_size", f"{self.resolution[0]}x{self.resolution[1]}")
        elif url.startswith("rtsp://"):
            options.setdefault("rtsp_transport", "tcp")  # UDP loses packets on busy networks; TCP is the safe default
        return av.open(url, format=fmt, options=options, timeout=(self.read_timeout_s, self.read_timeout_s))

    def _run(self) -> None:
        while not self._stop.is_set():
            container = None
            try:
                container = self._open()
                if not container.streams.video:
                    raise CameraError("no video stream")
                stream = container.streams.video[0]
                stream.thread_count = 1
                self._read(container, stream)
                raise CameraError("the stream ended")
            except Exception as error:  # any failure of this camera: mark it down, back off, reopen
                if self._stop.is_set():
                    break
                message = str(error) if isinstance(error, CameraError) else f"{type(error).__name__}: {error}"
                message = message.replace(self.url, redact(self.url))  # FFmpeg errors quote the URL
                delay = self.health.failed(message)
                self._fail_window(message)
                logger.warning("camera %s: %s; reconnecting in %.1f s", self.camera_id, message, delay)
                self.reconnects += 1
                self._stop.wait(delay)
            finally:
                if container is not None:
                    with contextlib.suppress(Exception):
                        container.close()

    def _read(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> None:
        time_base = time_base_s(stream)
        base: tuple[float, float] | None = None  # (pts seconds, monotonic) of the first packet
        decoding = False
        for packet in container.demux(stream):
            if self._stop.is_set():
                return
            if packet.pts is None or packet.size == 0:
                continue
            self.packets += 1
            t = packet.pts * time_base
            if self.health.up is not True:
                self.health.ok()
            if self.pace:
                if base is None:
                    base = (t, time.monotonic())
                ahead = (t - base[0]) - (time.monotonic() - base[1])
                if ahead > 0:
                    self._stop.wait(min(ahead, 1.0))
            window = self._window
            if window is None:
                decoding = False
                continue  # between windows: the packet is dropped undecoded
            if not decoding:
                if not packet.is_keyframe:
                    continue  # a decoder can only start at a keyframe
                stream.codec_context.flush_buffers()
                decoding = True
            # A frame shown before the next sample time is never kept (the targets only move forward): skip
            # decoding it when nothing refers to it.
            early = window.next_t is not None and t + 1e-6 < window.next_t
            stream.codec_context.skip_frame = "NONREF" if early else "DEFAULT"
            for frame in packet.decode():
                window.decoded += 1
                self.decoded_frames += 1
                ft = float(frame.pts * time_base) if frame.pts is not None else t
                if window.next_t is None or ft + 1e-6 >= window.next_t:
                    window.frames.append(frame)  # converted by grab's thread (clip_of), not this reader
                    window.last_frame = frame
                    # Next target one step after this one (not after this frame), so the mean spacing is
                    # exactly 1/capture_fps; after a gap in the stream, restart from the frame.
                    target = window.next_t if window.next_t is not None and ft - window.next_t < window.step else ft
                    window.next_t = target + window.step
                    if len(window.frames) >= window.num_frames:
                        with self._lock:
                            self._window = None
                        window.done.set()
                        decoding = False
                        break

    def _fail_window(self, message: str) -> None:
        with self._lock:
            window, self._window = self._window, None
        if window is not None:
            window.error = message
            window.done.set()

    def grab(self, num_frames: int, capture_fps: float, size: tuple[int, int], timeout: float | None = None) -> Grab:
        """The next window: from the next keyframe on, ``num_frames`` frames ``1/capture_fps`` apart."""
        timeout = self.grab_timeout_s if timeout is None else timeout
        self.start()
        window = _Window(num_frames, 1.0 / capture_fps, size, [], threading.Event())
        with self._lock:
            self._window = window
        if not window.done.wait(timeout):
            with self._lock:
                if self._window is window:
                    self._window = None
            raise CameraError(f"stalled: no complete clip within {timeout:g} s")
        if window.error:
            raise CameraError(window.error)
        self.clips += 1
        return Grab(self.camera_id, clip_of(window.frames, window.size), datetime.now(UTC),
                    snapshot_of(window.last_frame), window.decoded)

    def close(self) -> None:
        self._stop.set()
        self._fail_window("camera closed")
        if self._thread is not None:
            self._thread.join(timeout=self.read_timeout_s + 2)

    def status(self) -> dict[str, Any]:
        return {**super().status(), "reconnects": self.reconnects, "packets": self.packets}


def open_camera(cfg: CameraConfig, grab_timeout_s: float = 15.0) -> Camera:
    """The source for a camera entry of the config (nothing is opened yet: failures show up on grab)."""
    if cfg.kind == "file":
        return FileCamera(cfg.id, cfg.source.removeprefix("file:"), fps=cfg.fps)
    return StreamCamera(cfg.id, cfg.source, fps=cfg.fps, resolution=cfg.resolution, pace=True,
                        grab_timeout_s=grab_timeout_s)
