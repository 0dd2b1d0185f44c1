"""Real-trained knowledge on real footage: MediaPipe pose landmarks as features, next to the zoo encoder.

The pretrained-encoder issue names a pose teacher (the ``pose_landmark_full.tflite`` model inside the
``mediapipe==0.10.14`` wheel, trained on real people) as a candidate for feature distillation. Before building
one, this measures what it knows about the actions of our real sets: how often it finds the person at all, and
how well its landmarks separate the classes under the same leave-one-person-out protocol as
``benchmarks/real_footage.py`` reports for the encoder (a standardised logistic regression, C = 0.5, nothing
chosen). MediaPipe pulls jax and opencv, so it is never a TinyAct dependency; run this in its own environment::

    python -m venv .venv-pose && .venv-pose/bin/pip install mediapipe==0.10.14 av scikit-learn
    .venv-pose/bin/python benchmarks/pose_baseline.py --dataset ud810=/path/ud810_ps7:/path/ud810-clips.csv \\
        --json docs/results/pose_baseline.json

Default datasets: Weizmann ``silhouettes`` and ``rgb64`` in ``../shared/data/real/weizmann`` (``*-clips.csv``:
path, class, person). Nothing is downloaded: the ``full`` pose model ships inside the wheel.

Features of a video (every decoded frame, MediaPipe's video mode): per frame the 33 landmarks' image (x, y),
centred on the hip midpoint and scaled by the torso (hip to shoulder midpoints); over the frames where a person
was found, the mean and standard deviation of each coordinate and the mean absolute frame-to-frame change; plus
the share of frames with a person. A video with no person found gets zeros (it is still scored). Binary masks
(Weizmann silhouettes: a white figure on black) are also read as their negatives (``--invert NAME``): the pose
model finds few people in white-on-black masks and most in dark-on-light ones.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

WEIZMANN = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "weizmann"
DEFAULT_DATASETS = {
    "silhouettes": (WEIZMANN / "silhouettes", WEIZMANN / "silhouettes-clips.csv"),
    "rgb64": (WEIZMANN / "rgb64", WEIZMANN / "rgb64-clips.csv"),
}
LANDMARKS = 33
LEFT_HIP, RIGHT_HIP, LEFT_SHOULDER, RIGHT_SHOULDER = 23, 24, 11, 12


def read_clips(clips_csv: Path) -> list[dict[str, str]]:
    """Rows ``path, class, person`` of a clip list."""
    with open(clips_csv, newline="") as handle:
        return [{k: row[k] for k in ("path", "class", "person")} for row in csv.DictReader(handle)]


def video_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video as RGB ``uint8 [H, W, 3]``."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def frame_landmarks(pose: Any, frames: list[np.ndarray]) -> np.ndarray:
    """``[T, 33, 2]`` normalised landmarks per frame (NaN where no person was found)."""
    out = np.full((len(frames), LANDMARKS, 2), np.nan)
    for t, frame in enumerate(frames):
        result = pose.process(frame)
        if result.pose_landmarks is None:
            continue
        xy = np.array([(p.x, p.y) for p in result.pose_landmarks.landmark])
        hip = (xy[LEFT_HIP] + xy[RIGHT_HIP]) / 2
        torso = np.linalg.norm((xy[LEFT_SHOULDER] + xy[RIGHT_SHOULDER]) / 2 - hip)
        out[t] = (xy - hip) / max(torso, 1e-3)
    return out


def clip_features(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """A fixed-length feature vector of one video's landmarks, and the share of frames with a person."""
    found = ~np.isnan(landmarks[:, 0, 0])
    dims = LANDMARKS * 2
    if not found.any():
        return np.zeros(3 * dims + 1), 0.0
    seen = landmarks[found].reshape(int(found.sum()), dims)
    motion = np.abs(np.diff(seen, axis=0)).mean(0) if len(seen) > 1 else np.zeros(dims)
    rate = float(found.mean())
    return np.concatenate([seen.mean(0), seen.std(0), motion, [rate]]), rate


def leave_one_person_out(x: np.ndarray, y: np.ndarray, persons: np.ndarray) -> float:
    """Top-1 of a standardised logistic regression (C = 0.5), each person predicted by a model of the others:
    ``tinyact.training.pretrain.probe_predictions``' fit, written out here because this script runs in an
    environment without torch, which importing tinyact's training code would need."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=5000))
    predicted = cross_val_predict(probe, x, y, groups=persons, cv=LeaveOneGroupOut())
    return float((predicted == y).mean())


def evaluate(name: str, folder: Path, clips_csv: Path, invert: bool = False) -> dict[str, Any]:
    """Detection rate and leave-one-person-out top-1 of the pose features on one dataset (``invert``: each frame
    as its negative first, e.g. a white-on-black mask as a dark figure on a light ground)."""
    import mediapipe as mp

    rows = read_clips(clips_csv)
    features, rates = [], []
    started = time.perf_counter()
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pose:
        for index, row in enumerate(rows):
            frames = video_frames(folder / row["path"])
            vector, rate = clip_features(frame_landmarks(pose, [255 - f for f in frames] if invert else frames))
            features.append(vector)
            rates.append(rate)
            print(f"\r{name}: {index + 1}/{len(rows)} videos", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    labels = np.array([row["class"] for row in rows])
    persons = np.array([row["person"] for row in rows])
    rates_arr = np.array(rates)
    return {
        "videos": len(rows), "classes": len(set(labels)), "persons": len(set(persons)), "inverted": invert,
        "frames_with_person_mean": float(rates_arr.mean()),
        "videos_with_no_person": int((rates_arr == 0).sum()),
        "leave_one_person_out_top1": leave_one_person_out(np.stack(features), labels, persons),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=FOLDER:CLIPSCSV",
                        help="a folder of videos and its clip list (path, class, person); repeatable")
    parser.add_argument("--invert", action="append", default=[], metavar="NAME",
                        help="feed this dataset's frames as their negatives (white-on-black masks); repeatable")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    datasets = {}
    for spec in args.dataset:
        name, _, rest = spec.partition("=")
        folder, _, clips = rest.partition(":")
        if not (name and folder and clips):
            raise SystemExit(f"--dataset {spec!r}: expected NAME=FOLDER:CLIPSCSV")
        datasets[name] = (Path(folder), Path(clips))
    if not datasets:
        datasets = {k: v for k, v in DEFAULT_DATASETS.items() if v[1].is_file()}
    if not datasets:
        raise SystemExit("no dataset: pass --dataset NAME=FOLDER:CLIPSCSV (the Weizmann default is absent)")

    unknown = set(args.invert) - set(datasets)
    if unknown:
        raise SystemExit(f"--invert {', '.join(sorted(unknown))}: no such --dataset")
    results = {name: evaluate(name, folder, clips, name in args.invert) for name, (folder, clips) in datasets.items()}
    print("| dataset | videos | frames with a person (mean) | videos with none | pose LOPO top-1 |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['videos']} | {r['frames_with_person_mean'] * 100:.1f} % | {r['videos_with_no_person']} "
              f"| {r['leave_one_person_out_top1'] * 100:.1f} % |")
    record = {"command": " ".join(["benchmarks/pose_baseline.py", *(argv if argv is not None else sys.argv[1:])]),
              "machine": {"processor": platform.processor() or platform.machine(), "python": platform.python_version()},
              "model": "mediapipe 0.10.14 pose, model_complexity 1 (pose_landmark_full.tflite), video mode",
              "protocol": "leave-one-person-out, standardised logistic regression C = 0.5, nothing chosen",
              "datasets": results}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    main()
