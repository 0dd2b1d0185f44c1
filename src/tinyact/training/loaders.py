"""Clip loaders of the supervised trainers (in-project teacher, knowledge distillation): the clip cache, the
manifest's splits, and loaders sharded over the ranks of a ``torchrun`` job (:mod:`tinyact.training.distributed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, DistributedSampler, Subset

from tinyact.data.cache import ClipCache
from tinyact.data.datasets import ClipDataset, collate_clips
from tinyact.data.manifest import Manifest
from tinyact.data.video import ClipSampling
from tinyact.errors import ConfigError, DatasetError
from tinyact.training.distributed import DistInfo


def open_cache(cache_dir: Path | None, sampling: ClipSampling) -> ClipCache | None:
    """The clip cache at ``cache_dir`` (must match ``sampling``), or ``None`` to decode videos."""
    if cache_dir is None:
        return None
    cache = ClipCache(cache_dir)
    if not cache.matches(sampling):
        raise ConfigError(
            f"clip cache {cache_dir} was built with {cache.sampling.num_frames} frames at {cache.sampling.size} px "
            f"({cache.sampling.strategy}); this run wants {sampling.num_frames} frames at {sampling.size} px"
        )
    return cache


def split_or_fail(manifest: Manifest, split: str) -> Manifest:
    part = manifest.split(split)
    if len(part) == 0:
        raise DatasetError(f"the manifest has no '{split}' clips; a training run needs train and val splits")
    return part


def train_loader(
    manifest: Manifest,
    sampling: ClipSampling,
    cache: ClipCache | None,
    batch_size: int,
    seed: int,
    info: DistInfo,
    workers: int = 0,
    shuffle: bool = True,
) -> tuple[DataLoader, DistributedSampler]:
    """Loader over this rank's shard; call ``sampler.set_epoch(epoch)`` before each epoch.

    ``batch_size`` is the global batch: each of the ``N`` ranks loads ``batch_size // N`` clips per step, so a
    run gives the same updates on any number of processes.
    """
    if batch_size % info.world_size:
        raise ConfigError(f"batch_size {batch_size} must be a multiple of the number of processes ({info.world_size})")
    dataset = ClipDataset(manifest, sampling, cache=cache)
    sampler: DistributedSampler[Any] = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed)
    loader = DataLoader(
        dataset,
        batch_size=batch_size // info.world_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_clips,
        persistent_workers=workers > 0,
        # A last batch of one clip would break BatchNorm on a 1×1×1 grid; it is seen in another epoch.
        drop_last=len(sampler) >= batch_size // info.world_size,
    )
    return loader, sampler


def eval_loader(
    manifest: Manifest, sampling: ClipSampling, cache: ClipCache | None, batch_size: int, info: DistInfo, workers: int = 0
) -> DataLoader:
    """Loader over this rank's share of ``manifest`` in order, every clip exactly once over all ranks."""
    dataset = ClipDataset(manifest, sampling, cache=cache)
    shard = Subset(dataset, list(range(info.rank, len(dataset), info.world_size)))
    return DataLoader(shard, batch_size=max(1, batch_size // info.world_size), num_workers=workers, collate_fn=collate_clips)
