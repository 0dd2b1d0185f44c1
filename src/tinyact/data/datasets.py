"""PyTorch datasets over a manifest.

``ClipDataset[i]`` returns ``(clip, label_index, clip_id)`` with ``clip`` uint8 ``[T, 3, S, S]`` (or
``[K, T, 3, S, S]`` for multi-clip sampling; ``[2K, T, 3, S, S]`` with ``mirror``, the mirror images after the
windows). Clips come from the clip cache when one is given and was made
with the same sampling, otherwise they are decoded from the video. A video that fails to decode yields
``None``; :func:`collate_clips` drops those from the batch and the failure is appended to the skip report,
so one bad file never stops an epoch.

Example::

    manifest = Manifest.read("data/synth/manifest.csv")
    ds = ClipDataset(manifest.split("train"), ClipSampling(size=112), cache="data/synth/cache")
    loader = DataLoader(ds, batch_size=8, collate_fn=collate_clips)
    for clips, labels, clip_ids in loader:   # clips: uint8 [B, T, 3, S, S]
        ...
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tinyact.data.cache import ClipCache
from tinyact.data.manifest import Manifest
from tinyact.data.transforms import with_mirror_windows
from tinyact.data.video import ClipSampling, VideoDecodeError, sample_clips

logger = logging.getLogger(__name__)

Sample = tuple[torch.Tensor, int, str]


class ClipDataset(Dataset):
    """Clips of a manifest, from the cache when possible (see module docstring)."""

    def __init__(
        self,
        manifest: Manifest,
        sampling: ClipSampling | None = None,
        cache: ClipCache | str | Path | None = None,
        skip_report: str | Path | None = None,
    ) -> None:
        self.manifest = manifest
        self.sampling = sampling or (ClipCache(cache).sampling if isinstance(cache, str | Path) else ClipSampling())
        if isinstance(cache, str | Path):
            cache = ClipCache(cache)
        if cache is not None and not cache.matches(self.sampling):
            logger.warning("clip cache %s was built with other sampling; decoding videos instead", cache.root)
            cache = None
        self.cache = cache
        self.skip_report = Path(skip_report) if skip_report else None
        if cache is not None:
            uncached = sum(1 for e in manifest.entries if e.clip_id not in cache)
            if uncached:
                logger.info("%d of %d clips are not in the cache and will be decoded", uncached, len(manifest))

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def label_names(self) -> list[str]:
        return self.manifest.label_names

    def __getitem__(self, index: int) -> Sample | None:
        entry = self.manifest.entries[index]
        label = self.manifest.label_index(entry.label)
        if self.cache is not None and entry.clip_id in self.cache:
            return self._read_as_asked(self.cache[entry.clip_id]), label, entry.clip_id
        if self.cache is not None and entry.clip_id in self.cache.skipped:
            return None  # already known to be undecodable, reported when the cache was built
        try:
            clips = sample_clips(self.manifest.resolve(entry), self.sampling)
        except VideoDecodeError as error:
            self._report(error, entry.clip_id)
            return None
        frames = torch.stack([c.frames for c in clips]) if self.sampling.strategy == "multi" else clips[0].frames
        return self._read_as_asked(frames), label, entry.clip_id

    def _read_as_asked(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` with their mirror images as further windows when the sampling asks for ``mirror``."""
        return with_mirror_windows(frames) if self.sampling.mirror else frames

    def _report(self, error: VideoDecodeError, clip_id: str) -> None:
        logger.warning("skipping %s: %s", error.path, error.reason)
        if self.skip_report is None:
            return
        self.skip_report.parent.mkdir(parents=True, exist_ok=True)
        new = not self.skip_report.exists()
        # One short append per failure: safe enough across DataLoader worker processes.
        with open(self.skip_report, "a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["path", "clip_id", "reason", "pid"])
            writer.writerow([error.path, clip_id, error.reason, os.getpid()])


def collate_clips(batch: list[Sample | None]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stack samples into ``(clips [B, …] uint8, labels [B] int64, clip_ids)``, dropping failed ones."""
    kept = [item for item in batch if item is not None]
    if not kept:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long), []
    clips = torch.stack([item[0] for item in kept])
    labels = torch.tensor([item[1] for item in kept], dtype=torch.long)
    return clips, labels, [item[2] for item in kept]


class CachedWindows(Dataset):
    """Every window of the cached clips of a manifest, one item each: ``(uint8 [T, 3, S, S], label index)``.

    A clip cached with ``multi`` sampling gives its K windows as K items (a uniform cache: one per clip), so a
    model learns from what a camera sends, one window at a time. Clips missing from the cache are left out.
    """

    def __init__(self, manifest: Manifest, cache: ClipCache) -> None:
        self.cache = cache
        self.label_names = list(manifest.label_names)
        entries = [e for e in manifest.entries if e.clip_id in cache]
        windows = cache.sampling.num_clips if cache.sampling.strategy == "multi" else 1
        self.items = [(e.clip_id, k, manifest.label_index(e.label)) for e in entries for k in range(windows)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        clip_id, window, label = self.items[index]
        clip = torch.from_numpy(np.array(self.cache.get_array(clip_id)[window]))
        return clip, label
