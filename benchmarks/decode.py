"""Decode benchmark: clips/s of decode + sample + resize, by source size, workers and threading, vs the cache.

    python benchmarks/decode.py                 # full: 10 s sources at 720p and 320p, 16×224² clips
    python benchmarks/decode.py --quick         # seconds: tiny sources (used by the test suite)

Rows: PyAV single-threaded and with FFmpeg's threaded decoding, in 1 and 2 worker processes; uniform
sampling (whole video decoded) and dense sampling (decoding stops after the window); and reading the same
clips back from the clip cache. Ratios are against 1 worker, single-threaded, uniform.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_info, markdown_table, print_table, save_results  # noqa: E402
from tinyact.data.cache import ClipCache, build_cache  # noqa: E402
from tinyact.data.encode import encode_video  # noqa: E402
from tinyact.data.manifest import Manifest, ManifestEntry  # noqa: E402
from tinyact.data.synth.generator import SynthConfig, plan_dataset, render_clip  # noqa: E402
from tinyact.data.video import ClipSampling, probe_video, sample_clips  # noqa: E402
from tinyact.parallel import process_pool  # noqa: E402


def make_sources(folder: Path, height: int, count: int, seconds: float) -> list[Path]:
    """Synthetic action videos of ``height`` px (4:3) and ``seconds`` long, 25 fps H.264."""
    cfg = SynthConfig(out=folder, classes=10, clips_per_class=max(3, count), size=height,
                      min_seconds=seconds, max_seconds=seconds, fps_choices=[25], noise_max=2)
    paths = []
    for plan in plan_dataset(cfg)[:count]:
        frames, fps, _ = render_clip(cfg, plan)
        path = folder / f"{height}p_{plan.index}.mp4"
        encode_video(path, frames, fps)
        paths.append(path)
    return paths


def _decode_one(args: tuple[str, dict]) -> int:
    path, sampling = args
    return sample_clips(path, ClipSampling.model_validate(sampling))[0].frames.shape[0]


def decode_rate(paths: list[Path], sampling: ClipSampling, workers: int) -> float:
    """Clips per second decoding every path once."""
    jobs = [(str(p), sampling.model_dump()) for p in paths]
    if workers == 1:
        start = time.perf_counter()
        for job in jobs:
            _decode_one(job)
        return len(jobs) / (time.perf_counter() - start)
    with process_pool(workers) as pool:
        list(pool.map(_decode_one, jobs[:workers]))  # start the workers before timing
        start = time.perf_counter()
        list(pool.map(_decode_one, jobs))
        return len(jobs) / (time.perf_counter() - start)


def cache_rate(paths: list[Path], sampling: ClipSampling, folder: Path) -> float:
    """Clips per second reading the same clips back from a clip cache (memory-mapped, copied to tensors)."""
    manifest = Manifest([ManifestEntry(str(p), "x", "train", p.stem) for p in paths], folder)
    build_cache(manifest, folder / "cache", sampling, workers=2)
    cache = ClipCache(folder / "cache")
    ids = cache.clip_ids
    for clip_id in ids:  # page the shards in once: the steady state of a training epoch
        cache[clip_id]
    start = time.perf_counter()
    repeats = 5
    for _ in range(repeats):
        for clip_id in ids:
            cache[clip_id]
    return repeats * len(ids) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sources, for the test suite")
    parser.add_argument("--videos", type=int, default=12, help="source videos per resolution")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each source video")
    parser.add_argument("--size", type=int, default=224, help="clip crop size")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    heights = [720, 320]
    if args.quick:
        args.videos, args.seconds, args.size, heights = 3, 1.0, 32, [96, 48]

    print(machine_info())
    work = Path(tempfile.mkdtemp(prefix="tinyact-decode-"))
    columns = ["source", "mode", "workers", "threads", "clips/s", "× baseline"]
    rows = []
    try:
        for height in heights:
            folder = work / f"{height}p"
            paths = make_sources(folder, height, args.videos, args.seconds)
            label = f"{height}p ({probe_video(paths[0]).width}×{height}, {args.seconds:g} s)"
            baseline: float | None = None
            for strategy in ("uniform", "dense"):
                for workers in (1, 2):
                    for threads in (False, True):
                        sampling = ClipSampling(strategy=strategy, size=args.size, threads=threads)
                        rate = decode_rate(paths, sampling, workers)
                        baseline = baseline or rate
                        rows.append([label, f"decode {strategy}", workers, "on" if threads else "off",
                                     f"{rate:.1f}", f"{rate / baseline:.2f}"])
            rate = cache_rate(paths, ClipSampling(size=args.size), folder)
            assert baseline is not None  # set by the first decode above
            rows.append([label, "read from cache", 1, "-", f"{rate:.1f}", f"{rate / baseline:.1f}"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(f"decode + sample + resize to 16×{args.size}², clips/s", columns, rows)
    print(markdown_table(columns, rows))
    result = {"columns": columns, "rows": rows}
    save_results(args.json, result)
    return result


if __name__ == "__main__":
    main()
