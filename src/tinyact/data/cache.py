"""The clip cache: every manifest entry decoded once into uint8 shards that later reads memory-map.

Decoding dominates training time on CPUs; the cache pays it once. Layout::

    DIR/cache.json          sampling (frames, size, strategy …) and shape of one entry
    DIR/index.csv           clip_id,shard,row       one line per cached clip
    DIR/skipped.csv         path,clip_id,reason     files that failed to decode
    DIR/shard-<uuid>.npy    uint8 [n, K, T, 3, S, S] (K = clips per video, 1 unless strategy "multi")
    DIR/config.yaml         the run's resolved config

Building is resumable: a shard is written under a temporary name and renamed, and only then are its index
lines appended, so a killed build leaves at worst an unreferenced shard, which the next run deletes before
carrying on with the clips that are not in the index yet.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tinyact.console import progress_bar
from tinyact.data.manifest import Manifest
from tinyact.data.video import ClipSampling, VideoDecodeError, sample_clips
from tinyact.errors import DatasetError
from tinyact.parallel import run_bounded, worker_count
from tinyact.paths import atomic_path

logger = logging.getLogger(__name__)

INDEX_FIELDS = ["clip_id", "shard", "row"]
SKIPPED_FIELDS = ["path", "clip_id", "reason"]


@dataclass
class CacheBuildResult:
    cached: int
    skipped: int
    already_done: int
    out: Path


def _sampling_key(sampling: ClipSampling) -> dict:
    """The parts of a sampling that change what is stored (threads does not; mirror is applied when reading)."""
    return sampling.model_dump(exclude={"threads", "mirror"})


def _decode_chunk(args: tuple[list[tuple[str, str]], dict, str]) -> tuple[str | None, list[str], list[tuple[str, str, str]]]:
    """Worker: decode ``(path, clip_id)`` pairs, write one shard; returns (shard name, cached ids, skipped)."""
    items, sampling_dict, out_dir = args
    sampling = ClipSampling.model_validate(sampling_dict)
    clips, ids, skipped = [], [], []
    for path, clip_id in items:
        try:
            sampled = sample_clips(path, sampling)
        except VideoDecodeError as error:
            skipped.append((path, clip_id, error.reason))
            continue
        clips.append(np.stack([c.frames.numpy() for c in sampled]))  # K x [T, 3, S, S] -> [K, T, 3, S, S]
        ids.append(clip_id)
    if not clips:
        return None, [], skipped
    return write_shard(out_dir, np.stack(clips)), ids, skipped  # [n, K, T, 3, S, S]


def write_shard(out_dir: str | Path, array: np.ndarray) -> str:
    """Write ``array`` as a new ``shard-<uuid>.npy`` in ``out_dir`` (temporary name, fsync, rename: a killed
    writer never leaves half a shard); returns the file name for the index."""
    name = f"shard-{uuid.uuid4().hex[:12]}.npy"
    with atomic_path(Path(out_dir) / name, durable=True) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)
    return name


def append_rows(path: Path, fields: list[str], rows: list[tuple]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(fields)
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


ChunkResult = tuple[str | None, list[str], list[tuple[str, str, str]]]


def decode_into_cache(
    manifest: Manifest,
    out: Path,
    decode_chunk: Callable[[tuple[list[tuple[str, str]], dict, str]], ChunkResult],
    key: dict,
    workers: int,
    chunk_size: int,
    what: str,
) -> tuple[int, int, int]:
    """Decode the clips of ``manifest`` that ``out`` lacks, in chunks over a process pool, resuming a killed build.

    The part shared by the clip cache and the self-supervised window cache: which clips are done (``index.csv``
    and ``skipped.csv``), removing shards a killed build left unreferenced, and appending each chunk's rows.

    Args:
        manifest: The clips to cache.
        out: The cache folder (its ``cache.json`` already checked or written).
        decode_chunk: Picklable worker: ``(chunk of (path, clip_id), key, out) -> (shard file or None, clip ids
            stored, (path, clip_id, reason) of the clips that failed)``.
        key: What the worker needs to decode (the sampling's fields).
        workers: Processes (0 = one per core).
        chunk_size: Clips per chunk (one shard each).
        what: The name in progress bars and log lines.

    Returns:
        ``(clips cached now, clips skipped now, clips already done)``.
    """
    index_rows = read_rows(out / "index.csv")
    done = {row["clip_id"] for row in index_rows} | {row["clip_id"] for row in read_rows(out / "skipped.csv")}
    referenced = {row["shard"] for row in index_rows}
    for stale in list(out.glob("shard-*.npy")) + list(out.glob("shard-*.tmp")):
        if stale.name not in referenced:  # left behind by a killed run
            stale.unlink()
    todo = [e for e in manifest.entries if e.clip_id not in done]
    if done and todo:  # an earlier, interrupted run's clips
        logger.info("%s: resuming, %d clips already done, %d to go", what, len(manifest) - len(todo), len(todo))
    elif done:
        logger.debug("%s: %s already holds all %d clips", what, out, len(manifest))
    else:
        logger.info("%s: decoding %d clip(s) into %s", what, len(todo), out)
    chunks = [[(str(manifest.resolve(e)), e.clip_id) for e in todo[i : i + chunk_size]]
              for i in range(0, len(todo), chunk_size)]
    cached = skipped = 0
    with progress_bar(f"{what}: decode", total=len(todo), unit="clip") as bar:

        def record(result: ChunkResult) -> None:
            nonlocal cached, skipped
            shard, ids, bad = result
            if shard is not None:
                append_rows(out / "index.csv", INDEX_FIELDS, [(cid, shard, row) for row, cid in enumerate(ids)])
            if bad:
                append_rows(out / "skipped.csv", SKIPPED_FIELDS, bad)
                for path, _, reason in bad:
                    logger.warning("%s: skipped %s: %s", what, path, reason)
            cached += len(ids)
            skipped += len(bad)
            bar.advance(len(ids) + len(bad))

        run_bounded(decode_chunk, ((chunk, key, str(out)) for chunk in chunks),
                    min(worker_count(workers), max(1, len(chunks))), record)
    return cached, skipped, len(manifest) - len(todo)


def build_cache(
    manifest: Manifest,
    out: str | Path,
    sampling: ClipSampling,
    workers: int = 0,
    chunk_size: int = 16,
) -> CacheBuildResult:
    """Decode every entry of ``manifest`` into the cache at ``out`` (resuming a partial one).

    Files that fail to decode are listed in ``out/skipped.csv`` with the reason and not retried on resume.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "cache.json"
    key = _sampling_key(sampling)
    if meta_path.exists():
        existing = json.loads(meta_path.read_text())
        if existing["sampling"] != key:
            raise DatasetError(
                f"{out} holds a cache made with different sampling {existing['sampling']}; "
                "use another --out folder or delete this one"
            )
    else:
        meta_path.write_text(json.dumps({"sampling": key, "format": 1}, indent=2))

    cached, skipped, already_done = decode_into_cache(manifest, out, _decode_chunk, key, workers, chunk_size, "cache")
    total_skipped = len(read_rows(out / "skipped.csv"))
    if total_skipped:
        logger.warning("cache: %d file(s) could not be decoded; see %s", total_skipped, out / "skipped.csv")
    return CacheBuildResult(cached=cached, skipped=skipped, already_done=already_done, out=out)


class ClipCache:
    """Read side of a cache folder: ``cache[clip_id]`` -> uint8 ``[T, 3, S, S]`` (``[K, T, 3, S, S]`` for multi)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        meta_path = self.root / "cache.json"
        if not meta_path.exists():
            raise DatasetError(f"{self.root} is not a clip cache (no cache.json); build one with `tinyact data cache`")
        meta = json.loads(meta_path.read_text())
        self.sampling = ClipSampling.model_validate(meta["sampling"])
        self._where = {row["clip_id"]: (row["shard"], int(row["row"])) for row in read_rows(self.root / "index.csv")}
        self.skipped = {row["clip_id"]: row["reason"] for row in read_rows(self.root / "skipped.csv")}
        self._shards: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self._where

    @property
    def clip_ids(self) -> list[str]:
        return list(self._where)

    def matches(self, sampling: ClipSampling) -> bool:
        """Whether this cache stores clips sampled as ``sampling`` asks."""
        return _sampling_key(self.sampling) == _sampling_key(sampling)

    def get_array(self, clip_id: str) -> np.ndarray:
        """The stored clip(s) as a read-only numpy view ``[K, T, 3, S, S]`` (no copy)."""
        shard, row = self._where[clip_id]
        array = self._shards.get(shard)
        if array is None:
            array = np.load(self.root / shard, mmap_mode="r")
            self._shards[shard] = array
        return array[row]

    def __getitem__(self, clip_id: str) -> torch.Tensor:
        clips = torch.from_numpy(np.array(self.get_array(clip_id)))  # copy out of the memory map
        return clips[0] if self.sampling.strategy != "multi" else clips

    def __getstate__(self) -> dict:
        # Memory maps are reopened in each DataLoader worker rather than pickled.
        state = dict(self.__dict__)
        state["_shards"] = {}
        return state
