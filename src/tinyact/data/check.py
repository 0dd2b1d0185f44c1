"""Check that every video of a manifest gives a clip (mmaction2's ``check_videos``, for our reading path)."""

from __future__ import annotations

import csv
from pathlib import Path

from tinyact.console import progress_bar
from tinyact.data.manifest import Manifest
from tinyact.data.video import ClipSampling, VideoDecodeError, sample_clips
from tinyact.parallel import process_pool, worker_count


def _check_one(args: tuple[str, str, int]) -> tuple[str, str, str] | None:
    path, clip_id, frames = args
    try:
        # Tiny frames: the point is that every needed frame decodes, not the picture.
        sample_clips(path, ClipSampling(num_frames=frames, size=16, threads=False))
    except VideoDecodeError as error:
        return path, clip_id, error.reason
    return None


def check_manifest(manifest: Manifest, frames: int = 16, workers: int = 0, report: str | Path | None = None) -> list[tuple[str, str, str]]:
    """Return ``(path, clip_id, reason)`` for each video that fails; also written to ``report`` as CSV."""
    jobs = [(str(manifest.resolve(e)), e.clip_id, frames) for e in manifest.entries]
    bad: list[tuple[str, str, str]] = []
    with progress_bar("check videos", total=len(jobs), unit="video") as bar, process_pool(worker_count(workers)) as pool:
        for result in pool.map(_check_one, jobs, chunksize=8):
            if result is not None:
                bad.append(result)
            bar.advance()
    if report is not None:
        with open(report, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "clip_id", "reason"])
            writer.writerows(bad)
    return bad
