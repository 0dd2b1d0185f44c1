"""Writing real video files with PyAV (synthetic datasets, test fixtures, simulated cameras).

The codec follows the container: H.264 for ``.mp4``/``.mkv``/``.mov``, VP8 for ``.webm``, MPEG-4 Part 2 for
``.avi``. Passing ``timestamps`` writes a variable-frame-rate file with exactly those presentation times.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.container import OutputContainer
from av.video.stream import VideoStream

from tinyact.paths import atomic_path

CODEC_FOR_SUFFIX = {".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264", ".webm": "libvpx", ".avi": "mpeg4"}


def _add_video_stream(container: OutputContainer, codec: str, rate: Fraction, time_base: Fraction,
                      shape: tuple[int, ...], *, gop: int, crf: int, preset: str) -> VideoStream:
    """A yuv420p video stream of ``shape`` ``(H, W)`` with the codec's quality settings."""
    stream = container.add_stream(codec, rate=rate)
    if not isinstance(stream, VideoStream):  # pragma: no cover - every codec of CODEC_FOR_SUFFIX is a video codec
        raise ValueError(f"{codec} is not a video codec")
    stream.height, stream.width = int(shape[0]), int(shape[1])
    stream.pix_fmt = "yuv420p"
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    stream.codec_context.gop_size = gop
    if codec == "libx264":
        # With macroblock-tree rate control, x264 gave different files for the same frames from run to run (up to 60
        # grey levels once decoded), so a seed did not pin a dataset. Without it, on one thread (synth workers
        # already use every core), the files are bit-identical and, unlike x264 without its assembly (6x slower per
        # clip), as fast as before (docs/BENCHMARKS.md, "The demo and fine-tuning").
        stream.options = {"crf": str(crf), "preset": preset, "x264-params": "no-mbtree=1:threads=1"}
    elif codec == "libvpx":
        stream.options = {"crf": str(max(4, crf - 13)), "b:v": "1M", "deadline": "realtime", "cpu-used": "8"}
        stream.bit_rate = 1_000_000
    else:  # mpeg4 ignores crf; ask for a high bit rate so small test frames stay faithful
        stream.bit_rate = 4_000_000
    return stream


def encode_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    timestamps: Sequence[float] | None = None,
    crf: int = 23,
    preset: str = "veryfast",
    gop_seconds: float = 2.0,
) -> int:
    """Encode RGB uint8 ``[H, W, 3]`` frames (even ``H`` and ``W``) into ``path``; returns the byte size.

    ``timestamps`` (seconds, increasing) overrides the constant rate ``fps`` for a variable-frame-rate file.
    """
    path = Path(path)
    codec = CODEC_FOR_SUFFIX.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"no codec for {path.suffix!r}; use one of {sorted(CODEC_FOR_SUFFIX)}")
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path, keep_suffix=True) as tmp, av.open(str(tmp), mode="w") as container:
        stream: VideoStream | None = None
        time_base = Fraction(1, 1000) if timestamps is not None else 1 / rate
        for i, image in enumerate(frames):
            if stream is None:
                stream = _add_video_stream(container, codec, rate, time_base, image.shape[:2],
                                           gop=max(1, int(round(float(rate) * gop_seconds))), crf=crf, preset=preset)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = int(round(timestamps[i] * 1000)) if timestamps is not None else i
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is None:
            raise ValueError("no frames to encode")
        for packet in stream.encode():
            container.mux(packet)
    return path.stat().st_size
