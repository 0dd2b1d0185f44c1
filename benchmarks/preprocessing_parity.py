"""Train/serve parity of the edge cameras' preprocessing: the old swscale path vs the shared ``prepare_frames``.

    python benchmarks/preprocessing_parity.py                 # 720p H.264 camera file, 224 and 112 px clips
    python benchmarks/preprocessing_parity.py --quick         # seconds: a 180p file (used by the tests)
    python benchmarks/preprocessing_parity.py --json docs/results/preprocessing_parity.json

Before the shared resize path, an edge camera scaled each kept frame with swscale while converting it to RGB
(``frame.to_ndarray(width=, height=)``, :func:`swscale_clip` below), while training clips (``read_clip``, the
cache) were scaled by torch (bilinear, antialiased). Now both go through
:func:`tinyact.data.transforms.prepare_frames` (:func:`tinyact.edge.sources.clip_of`).

For each clip size, the same :class:`~tinyact.edge.sources.FileCamera` windows (a fake clock walks the camera
through the file) are grabbed twice, with the old conversion patched in and with the shipped one, and:

* ``old vs new``: mean / p99 / max absolute difference (grey levels, all pixels and channels) between the
  clips the two paths give for the same window;
* ``new vs read_clip``: max difference between the shipped camera path and ``sample_clips`` reading the same
  frames (dense sampling, the window's start and stride): 0 means the encoder sees training pixels;
* ``train float vs new``: mean / max difference between the training clips of before (the same torch resize
  computed in float32) and now (torch's uint8 kernel, shared with the edge): what changed in the cache;
* frames/s of a whole grab (seek, decode, convert, resize; the snapshot too) per path, and the ratio
  (median over windows and repeats; the two paths alternate grab by grab). The load average is recorded:
  on a shared machine compare the ratio, not the absolute rates.

Two camera files, both 25 fps H.264 with a 2 s GOP: ``actions``, a clip of the synthetic action generator
(4:3, a figure in a cluttered scene: the content the encoder is trained on) and ``blocks``,
:func:`tinyact.edge.simulate.synthetic_frames` (16:9, 8-px random blocks drifting and a moving disc: sharp
edges everywhere, the worst case for resampling differences).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import console, markdown_table, print_table, save_results  # noqa: E402
from tinyact.data.encode import encode_video  # noqa: E402
from tinyact.data.synth.generator import SynthConfig, plan_dataset, render_clip  # noqa: E402
from tinyact.data.transforms import resize_short_side_center_crop  # noqa: E402
from tinyact.data.video import ClipSampling, sample_clips  # noqa: E402
from tinyact.edge import sources  # noqa: E402
from tinyact.edge.simulate import synthetic_frames  # noqa: E402

FPS = 25
NUM_FRAMES = 16
STRIDE = 3  # file frames between clip frames: capture_fps = FPS / STRIDE


def swscale_clip(frames, size: tuple[int, int]) -> np.ndarray:
    """The edge's former conversion: swscale scales each frame so it covers ``size`` while converting
    to RGB, then a centre crop. uint8 ``[T, 3, H, W]``. Kept here only to measure what changed."""
    height, width = size
    out = []
    for frame in frames:
        scale = max(height / frame.height, width / frame.width)
        sw, sh = max(width, round(frame.width * scale)), max(height, round(frame.height * scale))
        rgb = frame.to_ndarray(width=sw, height=sh, format="rgb24")
        top, left = (sh - height) // 2, (sw - width) // 2
        out.append(rgb[top : top + height, left : left + width].transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out))


def make_video(path: Path, content: str, height: int, seconds: float) -> Path:
    """A ``height``p H.264 file at 25 fps (2 s GOP, like a CCTV stream) of ``content`` (actions | blocks)."""
    if content == "blocks":
        frames = synthetic_frames(height, round(height * 16 / 9 / 2) * 2, int(seconds * FPS))
    else:
        cfg = SynthConfig(out=path.parent, classes=10, clips_per_class=3, size=height, min_seconds=seconds,
                          max_seconds=seconds, fps_choices=[FPS], noise_max=2)
        frames = render_clip(cfg, plan_dataset(cfg)[0])[0]
    encode_video(path, frames, FPS)
    return path


def grab_windows(video: Path, ends: list[float], size: tuple[int, int], repeats: int) -> dict[str, tuple[list, list]]:
    """Grab every window (file seconds of its end) with both paths, alternating old and new grab by grab so a
    busy machine slows both alike; returns per path the clips and the seconds of every grab."""
    now = [0.0]
    cameras = {path: sources.FileCamera(path, video, clock=lambda: now[0]) for path in ("old", "new")}
    out: dict[str, tuple[list, list]] = {"old": ([], []), "new": ([], [])}
    for repeat in range(repeats):
        for end in ends:
            for path, camera in cameras.items():
                patch = mock.patch.object(sources, "clip_of", swscale_clip) if path == "old" else contextlib.nullcontext()
                with patch:
                    if repeat == 0 and end == ends[0]:
                        camera.grab(NUM_FRAMES, FPS / STRIDE, size)  # warm-up: open, probe
                    now[0] = end
                    start = time.perf_counter()
                    grab = camera.grab(NUM_FRAMES, FPS / STRIDE, size)
                    out[path][1].append(time.perf_counter() - start)
                if repeat == 0:
                    out[path][0].append(grab.frames)
    for camera in cameras.values():
        camera.close()
    return out


def training_clip(video: Path, end: float, size: int | None) -> np.ndarray:
    """The same window through the training path (``sample_clips``, dense sampling); ``size=None``: native."""
    step = STRIDE / FPS
    sampling = ClipSampling(strategy="dense", num_frames=NUM_FRAMES, stride=STRIDE, start=end - (NUM_FRAMES - 1) * step, size=size)
    return sample_clips(video, sampling)[0].frames.numpy()


def float_training_clip(native: np.ndarray, size: int) -> np.ndarray:
    """The former training path: the same torch resize computed in float32, rounded to uint8."""
    resized = resize_short_side_center_crop(torch.from_numpy(native).float(), size)
    return resized.round_().clamp_(0, 255).to(torch.uint8).numpy()


def compare(content: str, size: int, video: Path, ends: list[float], repeats: int) -> dict:
    grabs = grab_windows(video, ends, (size, size), repeats)
    (old_clips, old_s), (new_clips, new_s) = grabs["old"], grabs["new"]
    diff = np.abs(np.stack(old_clips).astype(np.int16) - np.stack(new_clips).astype(np.int16))
    parity = max(int(np.abs(training_clip(video, end, size).astype(np.int16) - clip.astype(np.int16)).max())
                 for end, clip in zip(ends, new_clips, strict=True))
    # What the shared uint8 kernel changed in training clips (caches made before it stay usable if this is small).
    kernel = np.stack([np.abs(float_training_clip(training_clip(video, end, None), size).astype(np.int16)
                              - clip.astype(np.int16)) for end, clip in zip(ends, new_clips, strict=True)])
    old_fps, new_fps = NUM_FRAMES / float(np.median(old_s)), NUM_FRAMES / float(np.median(new_s))
    return {
        "content": content, "size": size, "windows": len(ends),
        "old_vs_new_mean": round(float(diff.mean()), 3), "old_vs_new_p99": float(np.percentile(diff, 99)),
        "old_vs_new_max": int(diff.max()), "new_vs_read_clip_max": parity,
        "train_float_vs_new_mean": round(float(kernel.mean()), 3), "train_float_vs_new_max": int(kernel.max()),
        "old_fps": round(old_fps, 1), "new_fps": round(new_fps, 1), "new_over_old": round(new_fps / old_fps, 3),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="seconds: a 180p file, 2 windows, one size (tests)")
    parser.add_argument("--height", type=int, default=720, help="camera file resolution (16:9)")
    parser.add_argument("--sizes", default="224,112", help="clip sizes (square, px)")
    parser.add_argument("--contents", default="actions,blocks", help="camera files: actions, blocks")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the camera file")
    parser.add_argument("--windows", type=int, default=8, help="grabs per path and size")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the windows per path")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.height, args.sizes, args.seconds, args.windows, args.repeats = 180, "64", 4.0, 2, 1
    sizes = [int(s) for s in args.sizes.split(",")]
    window = (NUM_FRAMES - 1) * STRIDE / FPS
    # Window ends half a frame after a frame time, so both paths pick the same frames despite rounding.
    last = args.seconds - 1 / FPS
    ends = [round(float(e) * FPS) / FPS + 0.5 / FPS for e in np.linspace(window + 0.1, last - 0.1, args.windows)]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for content in args.contents.split(","):
            video = make_video(Path(folder) / f"{content}_{args.height}p.mp4", content, args.height, args.seconds)
            rows += [compare(content, size, video, ends, args.repeats) for size in sizes]
    columns = ["content", "size", "windows", "old_vs_new_mean", "old_vs_new_p99", "old_vs_new_max", "new_vs_read_clip_max",
               "train_float_vs_new_mean", "train_float_vs_new_max", "old_fps", "new_fps", "new_over_old"]
    title = f"FileCamera grab, {args.height}p H.264 -> clip: swscale (old) vs prepare_frames (new)"
    print_table(title, columns, [[r[c] for c in columns] for r in rows])
    console.print(markdown_table(columns, [[r[c] for c in columns] for r in rows]))
    results = {"load_average_1m": round(os.getloadavg()[0], 2), "height": args.height, "fps": FPS, "num_frames": NUM_FRAMES, "stride": STRIDE, "rows": rows}
    save_results(args.json, results)
    return results


if __name__ == "__main__":
    main()
