"""Replay the demo's cameras offline: the accuracy of every window a camera could send, not only the ~70 a run sends.

    python benchmarks/demo_replay.py [--demo tinyact-data/demo] [--step 0.25] [--backend torch-int8]
        [--json docs/results/demo_replay.json]

Reads the encoder, the classifier and the camera playlists of a finished ``tinyact demo`` run (its
``summary.json``). Every window of 16 frames at the cameras' capture rate whose frames all lie in one playlist
segment (one action), ending every ``--step`` seconds, is read from the playlist file the way the edge camera
reads it (frames on screen at those times, :func:`~tinyact.data.transforms.prepare_frames`), encoded and
classified, by the encoder runtime the run's edge used (``--backend`` another: e.g. ``torch-int8`` on an fp32 run's
windows, paired; it loads the int8 file the demo writes next to the checkpoint, or quantises one there as the demo
does). Also reported, as the reference the cameras are compared with: the same windows ``--step`` apart over
the test clips' own files. Top-1 overall and per class.

Also, where the run's ``clips.csv`` records each capture's playlist time (``position_s``), the very windows the
live run scored, read again offline: their top-1, and how often the offline prediction equals the one the cloud
gave live. Equal predictions mean a live/replay gap comes from which windows a run happens to capture; unequal
ones would point at the live path itself.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table, save_results  # noqa: E402
from tinyact.classifiers.saved import load_classifier  # noqa: E402
from tinyact.data.manifest import Manifest  # noqa: E402
from tinyact.data.transforms import prepare_frames  # noqa: E402
from tinyact.data.video import decode_frames_at, frames_at, probe_video  # noqa: E402
from tinyact.demo.config import DemoConfig  # noqa: E402
from tinyact.demo.prepare import build_uniform_cache, ensure_int8_encoder  # noqa: E402
from tinyact.edge.simulate import Playlist  # noqa: E402
from tinyact.models.runtime import BACKENDS, load_runtime  # noqa: E402


def decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of ``path`` (RGB ``[N, H, W, 3]``) and its presentation time in seconds, through the project's
    reading path (:func:`~tinyact.data.video.probe_video`, :func:`~tinyact.data.video.decode_frames_at`)."""
    info = probe_video(path)
    return decode_frames_at(path, info, np.arange(len(info.frame_times))), info.frame_times


def windows(frames: np.ndarray, times: np.ndarray, start: float, end: float, step: float, n: int,
            fps: float, size: int) -> list[torch.Tensor]:
    """Every ``n``-frame window at ``fps`` inside ``[start, end)`` whose last frame falls on a multiple of ``step``."""
    ends = np.arange(start + (n - 1) / fps, end - 1e-6, step)
    return [window_at(frames, times, t, n, fps, size) for t in ends]


def window_at(frames: np.ndarray, times: np.ndarray, end: float, n: int, fps: float, size: int) -> torch.Tensor:
    """The ``n``-frame window at ``fps`` whose last frame is the one on screen at file time ``end``."""
    return prepare_frames([frames[i] for i in frames_at(times, end - np.arange(n - 1, -1, -1) / fps)], size)


def live_windows(demo: Path) -> dict[str, list[dict[str, str]]]:
    """The run's scored captures that record their playlist time, by camera (empty for runs that did not)."""
    path = demo / "clips.csv"
    by_camera: dict[str, list[dict[str, str]]] = {}
    if path.is_file():
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("scored") == "1" and row.get("position_s"):
                    by_camera.setdefault(row["camera_id"], []).append(row)
    return by_camera


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("tinyact-data/demo"))
    parser.add_argument("--step", type=float, default=0.25)
    parser.add_argument("--backend", default=None, choices=BACKENDS, help="encoder runtime [default: the run's own]")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    summary = json.loads((args.demo / "summary.json").read_text())
    config = DemoConfig.from_yaml(args.demo / "config.yaml")
    checkpoint = Path(summary["encoder"]["checkpoint"])
    backend = args.backend or config.backend
    int8_file: Path | None = None
    if backend in ("torch-int8", "onnx-int8"):  # the demo's own int8 file (written as the demo writes it if missing)
        manifest = Manifest.read(config.data / "manifest.csv")
        int8_file = ensure_int8_encoder(backend, checkpoint, manifest, build_uniform_cache(config, manifest))
    runtime = (load_runtime(backend, checkpoint, int8_path=int8_file) if backend == "torch-int8"
               else load_runtime(backend, checkpoint, onnx_path=int8_file))
    classifier = load_classifier(summary["classifier"]["folder"])
    size, fps = int(summary["encoder"]["size"]), config.capture_fps

    def classify(clips: list[torch.Tensor]) -> list[str]:
        latents = np.concatenate([runtime.encode(torch.stack(clips[i : i + 64])) for i in range(0, len(clips), 64)])
        return list(np.asarray(classifier.label_names)[classifier.predict(latents)])

    results: dict[str, dict[str, list[bool]]] = {"cameras": {}, "test clips": {}}
    live = live_windows(args.demo)
    agree: list[bool] = []
    for camera in summary["cameras"]:
        playlist = Playlist.load(camera["playlist"])
        frames, times = decode(playlist.path)
        captured = live.get(camera["camera_id"], [])
        if captured:
            offline = classify([window_at(frames, times, float(r["position_s"]), 16, fps, size) for r in captured])
            for row, predicted in zip(captured, offline, strict=True):
                results.setdefault("live windows, replayed", {}).setdefault(row["truth"], []).append(
                    predicted == row["truth"])
                agree.append(predicted == row["predicted"])
        for segment in playlist.segments:
            clips = windows(frames, times, segment.start, segment.end, args.step, 16, fps, size)
            if clips:
                results["cameras"].setdefault(segment.label, []).extend(p == segment.label for p in classify(clips))
    manifest = Manifest.read(config.data / "manifest.csv").split("test")
    for entry in manifest.entries:
        frames, times = decode(manifest.resolve(entry))
        clips = windows(frames, times, 0.0, times[-1] + 1e-3, args.step, 16, fps, size)
        if clips:
            results["test clips"].setdefault(entry.label, []).extend(p == entry.label for p in classify(clips))
    rows: dict[str, Any] = {}
    for source, by_class in results.items():
        hits = [h for v in by_class.values() for h in v]
        rows[source] = {"windows": len(hits), "top1": float(np.mean(hits)) if hits else None,
                        "per_class": {k: float(np.mean(v)) for k, v in sorted(by_class.items())}}
    labels = sorted({k for r in rows.values() for k in r["per_class"]})
    print_table(f"Demo replay: every window {args.step} s apart (run: {args.demo}; encoder runtime {backend})",
                ["source", "windows", "top-1", *labels],
                [[s, r["windows"], f"{r['top1']:.1%}", *(f"{r['per_class'].get(k, float('nan')):.0%}" for k in labels)]
                 for s, r in rows.items()])
    if agree:
        print(f"live windows replayed: the offline prediction equals the live one for {sum(agree)} of {len(agree)}")
    save_results(args.json, {"protocol": __doc__, "demo": str(args.demo), "backend": backend, "live_accuracy": summary["accuracy"],
                             "live_clips": summary["accuracy_clips"], "results": rows,
                             "live_windows_agreement": float(np.mean(agree)) if agree else None,
                             "seconds": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    main()
