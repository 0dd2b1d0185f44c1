"""The numbers of the demo's ``summary.json``: delivery (lost, duplicated), accuracy, bytes, latency."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from tinyact.demo.config import DEMO_DEVICE
from tinyact.demo.live import ClipRow, is_scored


def _percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile rounded to 0.1 (None for no values)."""
    return round(float(np.percentile(values, q)), 1) if values else None


def cloud_clip_ids(cloud_db: str) -> list[str]:
    """Clip ids of every prediction the cloud stored for the demo's device (duplicates kept)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(cloud_db)
    try:
        with engine.connect() as db:
            cloud = db.execute(text(
                "SELECT p.clip_id FROM predictions p JOIN devices d ON d.id = p.device_id WHERE d.name = :n"),
                {"n": DEMO_DEVICE}).scalars().all()
    finally:
        engine.dispose()
    return [str(c).replace("-", "") for c in cloud]


def _camera_rows(rows: list[ClipRow], playlists: dict[str, Path]) -> list[dict[str, Any]]:
    """Per camera: its playlist, clips, results, scored clips and accuracy."""
    cameras = []
    for camera_id in sorted(playlists):
        mine = [r for r in rows if r.camera_id == camera_id]
        scored = [r for r in mine if is_scored(r)]
        cameras.append({
            "camera_id": camera_id, "playlist": str(playlists[camera_id]), "clips": len(mine),
            "with_result": sum(r.label is not None for r in mine), "scored": len(scored),
            "correct": sum(r.label == r.truth for r in scored),
            "accuracy": round(sum(r.label == r.truth for r in scored) / len(scored), 4) if scored else None,
        })
    return cameras


def summarise(rows: list[ClipRow], counts: dict[str, int], cloud_db: str, bytes_sent: int, clips_sent: int,
              playlists: dict[str, Path]) -> dict[str, Any]:
    """The numbers of summary.json.

    Args:
        rows: Every capture (:func:`~tinyact.demo.live.read_clips`).
        counts: The edge store's counters (captured, pending, dropped, ...).
        cloud_db: The cloud database URL, to count what arrived there.
        bytes_sent: Bytes the edge's transport sent.
        clips_sent: Clips the edge's transport sent.
        playlists: ``{camera_id: playlist video}``.

    Returns:
        A JSON-ready dict: delivery, accuracy, bytes per clip, latency and encode time, per-camera rows.
    """
    cloud_ids = cloud_clip_ids(cloud_db)
    edge_ids = {r.clip_id.replace("-", "") for r in rows}
    delivered = [r for r in rows if r.state == "delivered"]
    with_result = [r for r in rows if r.label is not None]
    clean = [r for r in with_result if is_scored(r)]
    correct = sum(r.label == r.truth for r in clean)
    mixed = [r for r in with_result if r.truth is not None]
    latencies = [r.latency_s * 1000 for r in with_result if r.latency_s is not None]
    encode = [r.encode_ms for r in rows if r.encode_ms is not None]
    cameras = _camera_rows(rows, playlists)
    return {
        "clips_captured": int(counts.get("captured", len(rows))),
        "clips_delivered": len(delivered),
        "clips_pending": int(counts.get("pending", 0)),
        "clips_dropped": int(counts.get("dropped", 0)),
        "results_received": len(with_result),
        "cloud_rows": len(cloud_ids),
        "duplicates": len(cloud_ids) - len(set(cloud_ids)),
        "lost": len(edge_ids - set(cloud_ids)) - int(counts.get("pending", 0)) - int(counts.get("dropped", 0)),
        "accuracy": round(correct / len(clean), 4) if clean else None,
        "accuracy_clips": len(clean),
        "accuracy_interval95": accuracy_interval(correct, len(clean)),
        "chance": round(1 / max(1, len({r.truth for r in rows if r.truth})), 4) if any(r.truth for r in rows) else None,
        "accuracy_all_windows": round(sum(r.label == r.truth for r in mixed) / len(mixed), 4) if mixed else None,
        "accuracy_note": "accuracy: clips whose 16 frames all show one action; accuracy_all_windows: every clip "
                         "with a result, true label = the action of most of its frames",
        "bytes_sent": int(bytes_sent),
        "bytes_per_clip": round(bytes_sent / clips_sent, 1) if clips_sent else None,
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95),
                       "note": "end of the capture window -> result stored on the edge"},
        "encode_ms_per_clip": round(float(np.mean(encode)), 1) if encode else None,
        "cameras": cameras,
    }


def accuracy_interval(correct: int, clips: int) -> list[float] | None:
    """The 95 % Wilson interval of a top-1 of ``correct`` in ``clips``: the per-clip rates that such a count fits.
    50 clips leave it ~±12 points wide, which is why one run's figure is read together with the replay's."""
    from scipy.stats import binomtest

    if not clips:
        return None
    interval = binomtest(correct, clips).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(interval.low), 4), round(float(interval.high), 4)]


def write_live_records(rows: list[ClipRow], label_names: list[str], out: Path) -> dict[str, str]:
    """Every capture of the run as ``out/clips.csv`` (camera, time, true action and the share of frames showing it,
    prediction, score, and the playlist time of the window's last frame) and the scored clips' confusion matrix as
    ``out/confusion.png``.

    Returns:
        ``{"clips": csv path, "confusion": png path}`` (no png when no clip was scored).
    """
    from sklearn.metrics import confusion_matrix

    from tinyact.classifiers.evaluate import plot_confusion

    out.mkdir(parents=True, exist_ok=True)
    path = out / "clips.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "camera_id", "captured_at", "truth", "purity", "predicted", "score", "scored",
                         "position_s"])
        for r in rows:
            writer.writerow([r.clip_id, r.camera_id, f"{r.captured_at:.3f}", r.truth or "",
                             "" if r.purity is None else f"{r.purity:.3f}", r.label or "",
                             "" if r.score is None else f"{r.score:.4f}", int(is_scored(r)),
                             "" if r.position_s is None else f"{r.position_s:.4f}"])
    files = {"clips": str(path)}
    scored = [r for r in rows if is_scored(r) and r.truth in label_names and r.label in label_names]
    if scored:
        matrix = confusion_matrix([r.truth for r in scored], [r.label for r in scored], labels=label_names)
        accuracy = np.trace(matrix) / matrix.sum()
        files["confusion"] = str(plot_confusion(matrix, label_names, out / "confusion.png",
                                                title=f"live: {accuracy:.1%} of {matrix.sum()} clips"))
    return files
