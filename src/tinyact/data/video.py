"""Video decoding and clip sampling with PyAV.

A clip is ``T`` frames (default 16) picked from a video by *presentation time*, not by frame index, so a
variable-frame-rate file gives the frames a viewer would see at those instants. Three strategies
(:class:`ClipSampling`):

* ``uniform`` — T instants spread evenly over the whole video (TSN-style segment centres);
* ``dense``   — T instants ``stride`` frames apart (at the video's average rate, or ``1/sample_fps`` s),
  from ``start`` seconds;
* ``multi``   — ``num_clips`` dense windows evenly spaced over the video (multi-clip testing).

How a clip is read::

    open ─► demux packet pts (cheap, no decode) ─► exact frame times
         ─► target instants (strategy) ─► wanted frames (last frame shown at each instant)
         ─► seek to the keyframe before the first wanted frame ─► decode, convert only wanted frames
         ─► [T, H, W, 3] uint8 ─► prepare_frames (torch resize + crop) ─► [T, 3, S, S] uint8

``prepare_frames`` (:mod:`tinyact.data.transforms`) is also what the edge cameras call on the frames of a
grab, so a clip the edge encodes has the pixels the encoder was trained on (``tests/test_preprocessing_parity.py``).

Any failure a user's file can cause (missing, empty, corrupt, truncated, audio-only, too short) raises one
:class:`VideoDecodeError` carrying the path and the reason; PyAV's own exceptions never escape.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import torch
from pydantic import Field, model_validator

from tinyact.config import TinyActConfig
from tinyact.data.transforms import prepare_frames
from tinyact.errors import TinyActError

logger = logging.getLogger(__name__)

_URL_PREFIXES = ("http://", "https://", "rtsp://", "rtmp://", "udp://", "tcp://", "file:")


class VideoDecodeError(TinyActError):
    """A video could not be read; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode {self.path}: {reason}")

    def __reduce__(self):  # keep the two fields when the error crosses a process boundary
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, read from its container and packet timestamps.

    ``frame_times`` are the presentation times (seconds, sorted) of every frame; ``duration`` runs from the
    first frame to the end of the last one.
    """

    path: str
    width: int
    height: int
    codec: str
    frame_times: np.ndarray
    frame_duration: float

    @property
    def num_frames(self) -> int:
        return int(len(self.frame_times))

    @property
    def start(self) -> float:
        return float(self.frame_times[0])

    @property
    def end(self) -> float:
        return float(self.frame_times[-1]) + self.frame_duration

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def variable_frame_rate(self) -> bool:
        """Whether frame intervals differ by more than a quarter of a frame."""
        gaps = np.diff(self.frame_times)
        return bool(len(gaps) > 1 and np.ptp(gaps) > 0.25 * self.frame_duration)

    @property
    def fps(self) -> float:
        """Average frame rate over the file (variable-rate files included)."""
        return self.num_frames / self.duration if self.duration > 0 else 0.0


class ClipSampling(TinyActConfig):
    """How clips are taken from a video (shared by datasets, the cache and the edge)."""

    strategy: Literal["uniform", "dense", "multi"] = Field(
        "uniform", title="Strategy", description="uniform over the video, dense from `start`, or `num_clips` dense windows"
    )
    num_frames: int = Field(16, ge=1, le=512, title="Frames per clip (T)")
    stride: int = Field(4, ge=1, le=64, title="Stride", description="frames between samples for dense/multi, at the video's average rate")
    sample_fps: float | None = Field(
        None, gt=0, title="Sample rate", description="if set, dense/multi sample at this rate instead of `stride`"
    )
    start: float = Field(0.0, ge=0, title="Start (s)", description="start of the dense window, seconds from the first frame")
    num_clips: int = Field(1, ge=1, le=64, title="Clips per video", description="number of windows for `multi`")
    size: int | None = Field(
        224, ge=8, le=4096, title="Crop size (px)", description="short side resized to this, then centre-cropped square; None keeps the frames as decoded"
    )
    threads: bool = Field(True, title="Threaded decoding", description="let FFmpeg decode with several threads")
    mirror: bool = Field(
        False, title="Mirrored too",
        description="also read every window mirrored left-right; a clip's latent is then the mean over both, so it "
                    "cannot tell left from right (for classes that do not depend on direction)")

    @model_validator(mode="after")
    def _multi_needs_clips(self) -> ClipSampling:
        if self.strategy != "multi" and self.num_clips != 1:
            raise ValueError("num_clips > 1 needs strategy 'multi'")
        return self


@dataclass
class Clip:
    """One sampled clip: ``frames`` uint8 ``[T, 3, H, W]`` and the presentation time of each frame (s)."""

    frames: torch.Tensor
    timestamps: np.ndarray


def _is_url(source: str) -> bool:
    return source.startswith(_URL_PREFIXES)


def _open(source: str | Path) -> av.container.InputContainer:
    source = str(source)
    if not _is_url(source):
        path = Path(source)
        if not path.exists():
            raise VideoDecodeError(source, "file not found")
        if path.is_dir():
            raise VideoDecodeError(source, "is a directory, not a video file")
        if path.stat().st_size == 0:
            raise VideoDecodeError(source, "empty file (0 bytes)")
    try:
        return av.open(source, mode="r", timeout=(10.0, 10.0))
    except av.FFmpegError as error:
        raise VideoDecodeError(source, f"not a readable media file ({error.strerror or error})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise VideoDecodeError(source, f"cannot open ({error})") from None


def _video_stream(container: av.container.InputContainer, source: str) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = sorted({str(s.type) for s in container.streams}) or ["none"]
        raise VideoDecodeError(source, f"no video stream (streams: {', '.join(kinds)}; audio-only?)")
    return container.streams.video[0]


def _time_base(stream: av.video.stream.VideoStream, source: str) -> Fraction:
    """Seconds per pts tick of ``stream``; FFmpeg sets one on every demuxed stream."""
    if stream.time_base is None:
        raise VideoDecodeError(source, "the video stream has no time base")
    return stream.time_base


def _scan_frame_times(container: av.container.InputContainer, stream, source: str) -> tuple[np.ndarray, float]:
    """Presentation times of all frames from packet pts (demux only, no decode) and one frame's duration."""
    times: list[float] = []
    durations: list[float] = []
    time_base = float(stream.time_base)
    try:
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            times.append(packet.pts * time_base)
            if packet.duration:
                durations.append(packet.duration * time_base)
    except av.FFmpegError as error:
        if not times:
            raise VideoDecodeError(source, f"corrupt container ({error.strerror or error})") from None
        logger.debug("%s: demux stopped early (%s); using %d frames", source, error, len(times))
    if not times:
        raise VideoDecodeError(source, "no video frames")
    frame_times = np.unique(np.asarray(times, dtype=np.float64))
    if durations:
        frame_duration = float(np.median(durations))
    elif len(frame_times) > 1:
        frame_duration = float(np.median(np.diff(frame_times)))
    else:
        rate = stream.average_rate or stream.guessed_rate
        frame_duration = 1.0 / float(rate) if rate else 0.04
    return frame_times, frame_duration


def _declared_duration(container: av.container.InputContainer, stream) -> float | None:
    """Duration the container header claims (seconds), if it states one."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def probe_video(source: str | Path) -> VideoInfo:
    """Read a video's size, codec and exact frame times without decoding any frame."""
    source = str(source)
    container = _open(source)
    try:
        stream = _video_stream(container, source)
        frame_times, frame_duration = _scan_frame_times(container, stream, source)
        declared = _declared_duration(container, stream)
        found = float(frame_times[-1] - frame_times[0]) + frame_duration
        if declared is not None and found < 0.9 * declared - 0.2:
            raise VideoDecodeError(
                source, f"truncated: the container declares {declared:.2f} s but frames stop after {found:.2f} s"
            )
        ctx = stream.codec_context
        return VideoInfo(
            path=source,
            width=int(ctx.width),
            height=int(ctx.height),
            codec=ctx.name,
            frame_times=frame_times,
            frame_duration=frame_duration,
        )
    finally:
        container.close()


# --------------------------------------------------------------------------------------------------
# Sampling: from a VideoInfo to target instants (seconds), one array per clip.
# --------------------------------------------------------------------------------------------------


def uniform_timestamps(start: float, end: float, num_frames: int) -> np.ndarray:
    """Centres of ``num_frames`` equal segments of ``[start, end)``."""
    span = end - start
    return start + (np.arange(num_frames) + 0.5) * span / num_frames


def dense_timestamps(start: float, num_frames: int, step: float) -> np.ndarray:
    """``num_frames`` instants ``step`` seconds apart from ``start``."""
    return start + np.arange(num_frames) * step


def _dense_step(info: VideoInfo, sampling: ClipSampling) -> float:
    """Seconds between samples, shrunk if the window would be longer than the video."""
    step = 1.0 / sampling.sample_fps if sampling.sample_fps else sampling.stride / max(info.fps, 1e-6)
    window = (sampling.num_frames - 1) * step + info.frame_duration
    if window > info.duration and sampling.num_frames > 1:
        # Fit the window into a short video rather than repeating frames past its end.
        step = max(info.duration - info.frame_duration, 0.0) / (sampling.num_frames - 1)
    return step


def clip_timestamps(info: VideoInfo, sampling: ClipSampling) -> list[np.ndarray]:
    """Target instants for every clip the strategy takes from ``info`` (a list of ``[T]`` arrays)."""
    t = sampling.num_frames
    if sampling.strategy == "uniform":
        return [uniform_timestamps(info.start, info.end, t)]
    step = _dense_step(info, sampling)
    window = (t - 1) * step
    latest_start = max(info.end - info.frame_duration - window, info.start)
    if sampling.strategy == "dense":
        start = min(info.start + sampling.start, latest_start)
        return [dense_timestamps(start, t, step)]
    k = sampling.num_clips
    starts = [info.start + (latest_start - info.start) * (i / (k - 1) if k > 1 else 0.5) for i in range(k)]
    return [dense_timestamps(s, t, step) for s in starts]


def frames_at(frame_times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the frame on screen at each target instant (the last frame whose time <= target)."""
    idx = np.searchsorted(frame_times, targets + 1e-9, side="right") - 1
    return np.clip(idx, 0, len(frame_times) - 1)


# --------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------


def iter_frames(
    source: str | Path, start: float = 0.0, threads: bool = True
) -> Generator[tuple[float, av.VideoFrame], None, None]:
    """Decode frames from ``start`` seconds on (after seeking to the keyframe before it), yielding
    ``(time_s, frame)``. Frames are not converted; call ``frame.to_ndarray(format="rgb24")`` on those you keep.
    """
    source = str(source)
    container = _open(source)
    try:
        stream = _video_stream(container, source)
        if threads:
            stream.thread_type = "AUTO"  # frame + slice threads, one per core
        else:
            stream.thread_count = 1  # FFmpeg's default (0) means "auto", not "off"
        time_base = _time_base(stream, source)
        if start > 0:
            container.seek(int(start / float(time_base)), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            yield float(frame.pts * time_base), frame
    except av.FFmpegError as error:
        raise VideoDecodeError(source, f"decoding failed ({error.strerror or error}); file corrupt or truncated?") from None
    finally:
        container.close()


#: Frames a decoder may output ahead of their turn in timestamp order; :func:`in_presentation_order` looks this far.
REORDER_DEPTH = 4


def in_presentation_order(
    frames: Iterable[tuple[float, av.VideoFrame]], depth: int = REORDER_DEPTH
) -> Generator[tuple[float, av.VideoFrame], None, None]:
    """Decoded ``(time, frame)`` pairs re-timed so that times never decrease: each frame, in the order the decoder
    outputs it, gets the smallest time among its own and the next ``depth`` frames' labels.

    A decoder outputs frames in presentation order, but an AVI file stores no presentation times: with MPEG-4
    Part 2 B-frames in "packed bitstream" (Xvid/DivX, as in KTH- and UCF101-era datasets) the derived labels come
    out swapped between neighbours (1, 2, 4, 3, 5, 7, 6 …), while the pictures are in order (their successive
    differences are smallest in output order). Without this, matching by time picked a neighbouring frame, and
    the cache and the edge cameras picked different ones. Where labels already increase (MP4, MKV, WebM) every
    pair comes out unchanged.
    """
    import heapq
    from collections import deque

    times: list[float] = []
    pending: deque[av.VideoFrame] = deque()
    for time, frame in frames:
        heapq.heappush(times, time)
        pending.append(frame)
        if len(pending) > depth:
            yield heapq.heappop(times), pending.popleft()
    while pending:
        yield heapq.heappop(times), pending.popleft()


def match_frames(
    frames: Iterable[tuple[float, av.VideoFrame]], wanted_times: np.ndarray, tolerance: float
) -> tuple[list[av.VideoFrame], int]:
    """The frame on screen at each of ``wanted_times`` (sorted seconds), from decoded ``(time, frame)`` pairs in
    the decoder's output order (re-timed by :func:`in_presentation_order`); stops reading once the last is found.

    A wanted frame the decoder never outputs (a damaged packet) is replaced by the frame on screen before it.
    Shared by file decoding (:func:`decode_frames_at`) and the edge's file cameras, which decode their own way.

    Returns:
        ``(frames, pairs read)``: one frame per wanted time, fewer when the stream ended first.
    """
    found: list[av.VideoFrame] = []
    previous: av.VideoFrame | None = None
    read = 0

    def counted() -> Iterator[tuple[float, av.VideoFrame]]:
        nonlocal read
        for pair in frames:
            read += 1
            yield pair

    for time, frame in in_presentation_order(counted()):
        while len(found) < len(wanted_times) and time > wanted_times[len(found)] + tolerance and previous is not None:
            found.append(previous)
        if len(found) < len(wanted_times) and abs(time - wanted_times[len(found)]) <= tolerance:
            found.append(frame)
        if len(found) >= len(wanted_times):
            break
        previous = frame
    return found, read


def decode_frames_at(
    source: str | Path, info: VideoInfo, indices: Sequence[int] | np.ndarray, threads: bool = True
) -> np.ndarray:
    """Decode the frames with the given indices into ``info.frame_times``; returns ``[len(indices), H, W, 3]``
    uint8 RGB in the order of ``indices`` (repeats allowed).

    A wanted frame the decoder never outputs (a damaged packet) is replaced by the frame on screen before it;
    wanted frames past the last decodable one raise :class:`VideoDecodeError`.
    """
    wanted = sorted(set(int(i) for i in indices))
    frames = iter_frames(source, start=float(info.frame_times[wanted[0]]), threads=threads)
    found, _ = match_frames(frames, info.frame_times[wanted], info.frame_duration / 2)
    frames.close()  # closes the container now rather than at garbage collection
    if len(found) < len(wanted):
        missing = wanted[len(found):]
        raise VideoDecodeError(
            source,
            f"truncated or corrupt: {len(missing)} of {len(wanted)} needed frames could not be decoded "
            f"(first missing at {info.frame_times[missing[0]]:.2f} s of {info.end:.2f} s)",
        )
    # Frames between wanted ones were decoded (the codec needs them) but only the wanted ones become RGB.
    decoded = {index: frame.to_ndarray(format="rgb24") for index, frame in zip(wanted, found, strict=True)}
    return np.stack([decoded[int(i)] for i in indices])


def sample_clips(source: str | Path, sampling: ClipSampling | None = None, info: VideoInfo | None = None) -> list[Clip]:
    """Sample the clip(s) that ``sampling`` describes from a video.

    Returns a list of :class:`Clip` (one for ``uniform``/``dense``, ``num_clips`` for ``multi``), each with
    ``frames`` uint8 ``[T, 3, S, S]`` (``S = sampling.size``; native ``H, W`` if ``size`` is None).
    Raises :class:`VideoDecodeError` if the video cannot give ``T`` distinct frames.
    """
    sampling = sampling or ClipSampling()
    info = info or probe_video(source)
    if info.num_frames < sampling.num_frames:
        raise VideoDecodeError(
            source, f"too short: {info.num_frames} frames ({info.duration:.2f} s), a clip needs {sampling.num_frames}"
        )
    per_clip = [frames_at(info.frame_times, targets) for targets in clip_timestamps(info, sampling)]
    all_indices = np.concatenate(per_clip)
    images = decode_frames_at(source, info, all_indices, threads=sampling.threads)
    clips = []
    for k, indices in enumerate(per_clip):
        block = images[k * len(indices) : (k + 1) * len(indices)]  # [T, H, W, 3] rgb24, native size
        frames = prepare_frames(block, sampling.size)  # -> [T, 3, S, S]: the edge cameras call the same function
        clips.append(Clip(frames=frames, timestamps=info.frame_times[indices]))
    return clips


def read_clip(source: str | Path, sampling: ClipSampling | None = None) -> torch.Tensor:
    """The single clip of a ``uniform`` or ``dense`` sampling as uint8 ``[T, 3, S, S]``."""
    sampling = sampling or ClipSampling()
    if sampling.strategy == "multi":
        raise ValueError("read_clip returns one clip; use sample_clips for strategy 'multi'")
    return sample_clips(source, sampling)[0].frames
