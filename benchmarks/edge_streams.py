"""Edge capacity benchmark: how many simulated 720p cameras one box keeps up with, per encoder backend.

    python benchmarks/edge_streams.py                       # full: 720p cameras, 112 px encoder, 4 backends
    python benchmarks/edge_streams.py --quick               # seconds: tiny files and encoder (used by the tests)
    python benchmarks/edge_streams.py --json docs/results/edge_streams.json

A *round* is what the edge agent does every interval: one 16-frame clip from every camera (seek + decode of
the H.264 file, frames scaled to the encoder's input, a JPEG snapshot), one encoder call on the batch of all
clips, and the latents written to the SQLite outbox (``EdgeAgent.run_round``, the real code). N cameras are
*kept up with* at interval I when every one of ``--rounds`` measured rounds (after a warm-up round) takes at
most I seconds. The search starts from an estimate (the per-camera cost of a small round) and walks up or
down in ~10 % steps until it finds the largest N that passes and N+step that fails.

Cameras are :class:`~tinyact.edge.sources.FileCamera` s on 720p H.264 files rendered by the synthetic action
generator (fixed camera, 25 fps, 2 s GOP, like a CCTV stream), each camera at its own position in the file.
Sending is not part of a round (the agent's sender is a separate thread; see ``benchmarks/cloud_load.py``).

Every row also records the CPU seconds a round used (all threads of the process) per camera, and from it
``cpu_bound_cameras`` = cores x interval / CPU-s per camera: the capacity of the same box with nothing else
running. On a shared machine (other programs, high load average) the measured wall-clock capacity is a lower
bound and the CPU-bound figure is the one to compare; both are reported.

Also measured per backend: the encoder alone, one batch of K clips vs the same K clips one at a time
(``batch_gain`` = sequential time / batch time; the paper reports ~3.2x on a Jetson).

The machine's load average is recorded with every row: the numbers of a shared machine are a lower bound.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/edge_streams.py` from the root

from benchmarks.common import console, markdown_table, print_table, save_results  # noqa: E402

BACKENDS = ("torch", "onnx-int8", "onnx", "torch-bf16")


def make_camera_files(folder: Path, count: int, height: int, seconds: float, fps: float = 25.0) -> list[Path]:
    """``count`` H.264 files of synthetic actions at ``height`` (16:9), ``seconds`` long, 2 s GOP; reused."""
    from tinyact.data.synth.generator import SynthConfig, plan_dataset, render_clip
    from tinyact.edge.simulate import write_playlist

    width = int(round(height * 16 / 9 / 2)) * 2
    paths = []
    folder.mkdir(parents=True, exist_ok=True)
    cfg = SynthConfig(out=folder / "clips", classes=6, clips_per_class=3, size=height, jitter_px=0.0, noise_max=2.0,
                      min_seconds=1.5, max_seconds=2.5, fps_choices=[25])
    plans = plan_dataset(cfg)
    for k in range(count):
        path = folder / f"cam-{height}p-{k}.mp4"
        paths.append(path)
        if path.is_file():
            continue
        from tinyact.data.encode import encode_video

        clips = []
        for j, plan in enumerate(plans[k * 3 : k * 3 + 3] or plans[:3]):
            frames, clip_fps, _ = render_clip(cfg, plan)
            # The generator's frames are 4:3; widen to 16:9 by padding with the edge columns (a wider room).
            pad = (width - frames[0].shape[1]) // 2
            frames = [np.pad(f, ((0, 0), (pad, width - f.shape[1] - pad), (0, 0)), mode="edge") for f in frames]
            clip_path = folder / "clips" / f"{k}-{j}.mp4"
            encode_video(clip_path, frames, clip_fps)
            clips.append((clip_path, str(plan.label_index)))
        write_playlist(clips, path, fps=fps, min_segment_s=seconds / 3)
    return paths


def build_encoder(backend: str, checkpoint: Path, calibration: np.ndarray | None):
    """An :class:`~tinyact.edge.encoder.EdgeEncoder` for ``backend`` (ONNX graphs exported next to the checkpoint;
    int8 = static QDQ calibrated on real clips)."""
    from tinyact.edge.encoder import EdgeEncoder
    from tinyact.models.base import config_of
    from tinyact.models.checkpoint import load_model
    from tinyact.models.runtime import load_runtime

    model, info = load_model(checkpoint)
    runtime = load_runtime(backend, checkpoint, calibration=calibration if backend == "onnx-int8" else None)
    config = config_of(model)
    return EdgeEncoder(runtime, backend, config.num_frames, tuple(config.input_size), config.latent_dim,
                       str(info.get("hash", "")))


def run_rounds(n: int, files: list[Path], encoder, work: Path, rounds: int, interval: float, capture_fps: float):
    """``rounds`` timed rounds (after one warm-up) of ``n`` cameras; returns per-round reports."""
    from tinyact.edge.agent import EdgeAgent
    from tinyact.edge.config import CameraConfig, EdgeConfig, EncoderConfig, ScheduleConfig
    from tinyact.edge.sources import FileCamera

    data_dir = Path(tempfile.mkdtemp(prefix=f"n{n}-", dir=work))
    cfg = EdgeConfig(
        device_id="bench", encoder=EncoderConfig(checkpoint=work / "encoder.pt"),
        cameras=[CameraConfig(id=f"cam-{i}", source=str(files[i % len(files)])) for i in range(n)],
        schedule=ScheduleConfig(interval_s=interval, capture_fps=capture_fps, capture_timeout_s=max(60.0, 3 * interval)),
        data_dir=data_dir,
    )
    cameras = []
    for i, camera_cfg in enumerate(cfg.cameras):
        offset = 0.37 * i  # every camera at its own place in its file
        cameras.append(FileCamera(camera_cfg.id, camera_cfg.source, clock=lambda o=offset: time.monotonic() + o))
    agent = EdgeAgent(cfg, encoder=encoder, cameras=cameras)
    reports = []
    try:
        for r in range(rounds + 1):
            start, cpu = time.perf_counter(), time.process_time()
            report = agent.run_round()
            report["round_s"] = time.perf_counter() - start
            report["cpu_s"] = time.process_time() - cpu  # all threads of this process: decode, encode, SQLite
            if report.get("cameras_failed"):
                raise RuntimeError(f"cameras failed in the benchmark: {report['cameras_failed']}")
            if r:  # the first round opens the files and warms the caches
                reports.append(report)
            # Wait as the schedule would, so the cameras' positions move on like in real use.
            time.sleep(max(0.0, min(interval, 1.0) - report["round_s"]))
        decoded = sum(c.decoded_frames for c in cameras) / max(1, sum(c.clips for c in cameras))
    finally:
        for camera in cameras:
            camera.close()
        agent.store.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return reports, decoded


def keeps_up(n, files, encoder, work, args) -> tuple[bool, dict]:
    reports, decoded = run_rounds(n, files, encoder, work, args.rounds, args.interval, args.capture_fps)
    worst = max(r["round_s"] for r in reports)
    row = {
        "cameras": n, "worst_round_s": round(worst, 2),
        "mean_round_s": round(float(np.mean([r["round_s"] for r in reports])), 2),
        "capture_s": round(float(np.mean([r["capture_ms"] for r in reports])) / 1000, 2),
        "encode_s": round(float(np.mean([r["encode_ms"] or 0 for r in reports])) / 1000, 2),
        "decoded_frames_per_clip": round(decoded, 1), "load": round(os.getloadavg()[0], 2),
        "ok": worst <= args.interval,
        # CPU seconds per camera per round, and how many cameras the machine's cores could serve at that cost
        # if nothing else ran (the load-independent figure on a shared machine).
        "cpu_s_per_camera": round(float(np.mean([r["cpu_s"] for r in reports])) / n, 4),
    }
    row["cpu_bound_cameras"] = int(args.cores * args.interval / row["cpu_s_per_camera"]) if row["cpu_s_per_camera"] else None
    console.print(f"  {encoder.backend}: {n} cameras -> worst round {worst:.2f} s "
                  f"(capture {row['capture_s']} s, encode {row['encode_s']} s) {'ok' if row['ok'] else 'too slow'}; "
                  f"{row['cpu_s_per_camera'] * 1000:.0f} CPU-ms per camera -> {row['cpu_bound_cameras']} cameras "
                  f"on {args.cores} idle cores (load {row['load']})")
    return row["ok"], row


def find_max_cameras(files, encoder, work, args) -> tuple[int, list[dict], bool]:
    """Largest N whose rounds all fit in the interval (see the module docstring), every round measured, and
    whether the search finished within ``--budget-s``."""
    tried: dict[int, dict] = {}
    deadline = time.monotonic() + args.budget_s

    def test(n: int) -> bool:
        if n not in tried:
            if time.monotonic() > deadline:  # out of time: stop where the search is, and say so
                tried[n] = {"cameras": n, "ok": None, "note": f"not tried: --budget-s {args.budget_s:g} s used up"}
                return False
            tried[n] = keeps_up(n, files, encoder, work, args)[1]
        return bool(tried[n]["ok"])

    probe = min(args.probe_cameras, args.max_cameras)
    test(probe)
    per_camera = tried[probe]["mean_round_s"] / probe
    n = int(max(1, min(args.max_cameras, 0.9 * args.interval / per_camera)))
    step = lambda k: max(1, int(round(k * 0.1)))  # noqa: E731
    if test(n):
        while n < args.max_cameras and test(min(args.max_cameras, n + step(n))):
            n = min(args.max_cameras, n + step(n))
    else:
        while n > 1 and not test(max(1, n - step(n))):
            n = max(1, n - step(n))
    best = best_count(tried)
    complete = all(t.get("ok") is not None for t in tried.values())
    return best, [tried[k] for k in sorted(tried) if tried[k].get("ok") is not None], complete


def best_count(tried: dict[int, dict]) -> int:
    """The largest camera count that kept up, below the smallest one that did not (0 if none kept up)."""
    failed = [n for n, t in tried.items() if t.get("ok") is False]
    limit = min(failed) if failed else float("inf")
    ok = [n for n, t in tried.items() if t.get("ok") and n < limit]
    return max(ok, default=0)


def batch_gain(encoder, clips: np.ndarray, repeats: int) -> dict:
    """Encoder alone: one call on K clips vs K calls on one clip (median of ``repeats``)."""
    k = len(clips)
    encoder.encode(clips)  # warm-up
    encoder.encode(clips[:1])
    batch, seq = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.encode(clips)
        batch.append(time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(k):
            encoder.encode(clips[i : i + 1])
        seq.append(time.perf_counter() - start)
    b, s = float(np.median(batch)), float(np.median(seq))
    return {"k": k, "batch_s": round(b, 3), "sequential_s": round(s, 3), "batch_clips_per_s": round(k / b, 1),
            "sequential_clips_per_s": round(k / s, 1), "batch_gain": round(s / b, 2), "load": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="seconds: 144p files, 32 px encoder, few cameras (tests)")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--height", type=int, default=720, help="camera resolution (16:9)")
    parser.add_argument("--size", type=int, default=112, help="encoder input (px)")
    parser.add_argument("--preset", default="fast", help="3-D autoencoder preset")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds per camera (the paper: 10)")
    parser.add_argument("--capture-fps", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds per camera count")
    parser.add_argument("--probe-cameras", type=int, default=16, help="cameras of the first (estimating) round")
    parser.add_argument("--max-cameras", type=int, default=200)
    parser.add_argument("--budget-s", type=float, default=900.0, help="stop a backend's search after this long")
    parser.add_argument("--files", type=int, default=4, help="distinct camera files")
    parser.add_argument("--seconds", type=float, default=9.0, help="length of each camera file")
    parser.add_argument("--k", type=int, default=16, help="clips in the batch-vs-sequential test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: cores)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores of the box for the CPU-bound figure")
    parser.add_argument("--work", type=Path, default=None, help="folder for the camera files (kept for reuse)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.height, args.size, args.interval, args.rounds = 144, 32, 2.0, 1
        args.probe_cameras, args.max_cameras, args.files, args.seconds, args.k, args.repeats = 2, 4, 2, 3.0, 4, 1
        if args.backends == ",".join(BACKENDS):
            args.backends = "torch,onnx-int8"
    torch.set_num_threads(args.threads or os.cpu_count() or 1)

    from tinyact.models.autoencoder3d import VideoAutoEncoder3D
    from tinyact.models.checkpoint import save_model

    cleanup = args.work is None
    work = args.work or Path(tempfile.mkdtemp(prefix="tinyact-edge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        files = make_camera_files(work / "cameras", args.files, args.height, args.seconds)
        bitrate = [round(p.stat().st_size * 8 / args.seconds / 1e6, 2) for p in files]
        console.print(f"{len(files)} camera files at {args.height}p ({bitrate} Mbit/s) in {time.perf_counter() - t0:.1f} s")
        torch.manual_seed(0)
        model = VideoAutoEncoder3D.from_preset(args.preset, input_size=args.size)
        checkpoint = work / "encoder.pt"
        save_model(checkpoint, model)
        # Real clips (from the camera files) for calibration and the batch test.
        from tinyact.edge.sources import FileCamera

        grabber = FileCamera("calib", files[0])
        grabbed = []
        for i in range(max(args.k, 8)):
            grabber.t0 = time.monotonic() - 0.5 * i
            grabbed.append(grabber.grab(16, args.capture_fps, (args.size, args.size)).frames)
        grabber.close()
        clips = np.stack(grabbed)
        results: dict[str, Any] = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "camera_file_mbit_s": bitrate, "backends": {}}
        rows = []
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            try:
                encoder = build_encoder(backend, checkpoint, clips[:8])
            except Exception as error:  # a backend this build cannot run: say so and go on
                console.print(f"[yellow]{backend}: skipped ({type(error).__name__}: {error})[/]")
                results["backends"][backend] = {"skipped": f"{type(error).__name__}: {error}"}
                continue
            gain = batch_gain(encoder, clips[: args.k], args.repeats)
            best, tried, complete = find_max_cameras(files, encoder, work, args)
            results["backends"][backend] = {"max_cameras": best, "search_complete": complete, "batch": gain,
                                            "tried": tried}
            # From the largest round measured: the encoder's per-call cost is shared by more clips there.
            largest = max((t for t in tried if t.get("cpu_bound_cameras")), key=lambda t: t["cameras"], default=None)
            cpu_bound = largest["cpu_bound_cameras"] if largest else None
            results["backends"][backend]["cpu_bound_cameras"] = cpu_bound
            rows.append((backend, best if complete else f">= {best}", cpu_bound, gain["k"], gain["batch_clips_per_s"], gain["sequential_clips_per_s"],
                         gain["batch_gain"], next((t["decoded_frames_per_clip"] for t in tried), ""),
                         max(t["load"] for t in tried)))
        columns = ("backend", f"max cameras @{args.interval:g} s (measured)", f"cameras @{args.interval:g} s (CPU-bound, idle)", "K", "batch clips/s", "1-by-1 clips/s", "batch gain",
                   "decoded frames/clip", "load")
        print_table(f"Edge capacity: {args.height}p cameras, {args.size} px {args.preset} encoder, "
                    f"{os.cpu_count()} cores", columns, rows)
        results["table_markdown"] = markdown_table(columns, rows)
        results["load_at_end"] = os.getloadavg()
        save_results(args.json, results)
        return results
    finally:
        if cleanup:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
