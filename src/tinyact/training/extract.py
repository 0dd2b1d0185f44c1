"""Latent extraction: every clip of a manifest through an encoder, into one :class:`~tinyact.latents.LatentsFile`.

::

    manifest ─► ClipDataset (clip cache when it matches, else PyAV) ─► uint8 [B, T, 3, S, S]
             ─► normalise (the encoder's statistics, ImageNet by default) ─► encoder.encode ─► [B, D]
             ─► latents.npz (latents, labels, label_names, clip_ids, splits, encoder_hash, meta)

Resumable: every ``save_every`` batches the rows done so far go to ``OUT.partial.npz`` (written atomically,
with the encoder hash and sampling that made them). A run started again with the same encoder and sampling
skips those clips; a different encoder or sampling starts over. The partial file is removed once ``OUT`` is
written. Clips that fail to decode are left out, logged, and listed in ``meta["skipped"]`` with the reason.

``meta`` holds ``columns`` (the manifest's metadata columns such as ``actor`` and ``scene``, one value per row,
so :meth:`LatentsFile.column` works), ``sampling`` (the clip sampling), ``encoder`` (its kind, config and file
when known) and ``skipped``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from tinyact.console import progress_bar
from tinyact.data.cache import ClipCache
from tinyact.data.datasets import ClipDataset, collate_clips
from tinyact.data.manifest import Manifest
from tinyact.data.transforms import NormStats, normalize
from tinyact.data.video import ClipSampling
from tinyact.errors import TinyActError
from tinyact.latents import LatentsFile
from tinyact.models.base import encode_fn
from tinyact.models.checkpoint import load_model, state_dict_hash
from tinyact.training.runtime import pick_device

logger = logging.getLogger(__name__)


def _partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial.npz")


def _sampling_json(sampling: ClipSampling) -> str:
    return json.dumps(sampling.model_dump(mode="json", exclude={"threads"}), sort_keys=True)


def _load_encoder(encoder: nn.Module | str | Path, encoder_hash: str | None) -> tuple[nn.Module, str, dict[str, Any]]:
    """A module ready for inference, the hash naming its weights, and what is known about it for ``meta``."""
    if isinstance(encoder, str | Path):
        model, info = load_model(encoder)
        described = {"file": str(Path(encoder).resolve()), "kind": info.get("kind"), "config": info.get("config")}
        return model, encoder_hash or str(info["hash"]), described
    if not hasattr(encoder, "encode"):
        raise TinyActError(f"the encoder must have an .encode(x) method; got {type(encoder).__name__}")
    config = getattr(encoder, "config", None)
    to_dict = config.to_dict() if config is not None and hasattr(config, "to_dict") else None
    described = {"kind": type(encoder).__name__, "config": to_dict}
    return encoder, encoder_hash or state_dict_hash(encoder.state_dict()), described


def _read_partial(path: Path, encoder_hash: str, sampling_key: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Rows (clip_id -> latent) and skipped clips (clip_id -> reason) of an earlier run, if it is compatible."""
    if not path.exists():
        return {}, {}
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["encoder_hash"]) != encoder_hash or str(data["sampling"]) != sampling_key:
                logger.info("extract: %s was made by another encoder or sampling; starting over", path)
                return {}, {}
            rows = dict(zip(data["clip_ids"].tolist(), data["latents"], strict=True))
            skipped = json.loads(str(data["skipped"]))
    except (OSError, ValueError, KeyError) as error:
        logger.warning("extract: ignoring unreadable partial file %s (%s)", path, error)
        return {}, {}
    return rows, skipped


def _write_partial(path: Path, rows: dict[str, np.ndarray], skipped: dict[str, str], encoder_hash: str, sampling_key: str) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    ids = list(rows)
    latents = np.stack([rows[i] for i in ids]) if ids else np.zeros((0, 0), np.float32)
    np.savez(
        tmp,
        latents=latents.astype(np.float32),
        clip_ids=np.asarray(ids, dtype=str),
        encoder_hash=np.asarray(encoder_hash),
        sampling=np.asarray(sampling_key),
        skipped=np.asarray(json.dumps(skipped)),
    )
    tmp.replace(path)


def _already_complete(out: Path, manifest: Manifest, encoder_hash: str, sampling_key: str) -> LatentsFile | None:
    """The existing ``out`` when it was made by this encoder and sampling from exactly this manifest."""
    if not out.exists():
        return None
    try:
        existing = LatentsFile.load(out)
    except TinyActError:
        return None
    sampling_meta = existing.meta.get("sampling")
    done = set(existing.clip_ids.tolist()) | set(existing.meta.get("skipped", {}))
    if (
        existing.encoder_hash == encoder_hash
        and sampling_meta is not None
        and json.dumps(sampling_meta, sort_keys=True) == sampling_key
        and done == {e.clip_id for e in manifest.entries}
    ):
        return existing
    return None


def _input_stats(model: nn.Module) -> NormStats:
    """The normalisation the encoder's config asks for (ImageNet statistics when it states none)."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "normalization"):
        stats: NormStats = config.normalization
        return stats
    return "imagenet"


def encode_windows(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Normalised ``[B, T, 3, H, W]`` -> ``[B, D]`` latents; ``[B, K, T, 3, H, W]`` (K windows of one video,
    ``ClipSampling(strategy="multi")``) -> the mean of each video's K window latents."""
    encode = encode_fn(model)
    if x.dim() == 6:
        b, k = x.shape[:2]
        return encode(x.flatten(0, 1)).float().reshape(b, k, -1).mean(1)
    return encode(x).float()


@torch.no_grad()
def extract_latents(
    encoder: nn.Module | str | Path,
    manifest: Manifest,
    sampling: ClipSampling,
    out: Path,
    *,
    cache_dir: Path | None = None,
    batch_size: int = 8,
    encoder_hash: str | None = None,
    resume: bool = True,
    device: str = "auto",
    workers: int = 0,
    save_every: int = 16,
) -> LatentsFile:
    """Encode every clip of ``manifest`` and write the latents file ``out``; returns it.

    Args:
        encoder: a module with ``.encode(x)`` taking normalised float ``[B, T, 3, H, W]`` and returning
            ``[B, D]``, or the path of a model file (``tinyact.models.checkpoint.save_model``).
        manifest: the clips; their order is the row order of the file (undecodable clips left out).
        sampling: how clips are read (frames, crop size …); the encoder sees ``[B, T, 3, size, size]``; with
            ``multi`` a clip's latent is the mean over its windows (:func:`encode_windows`).
        out: the ``.npz`` to write.
        cache_dir: a clip cache (``tinyact data cache``) to read from when it was made with ``sampling``.
        batch_size: clips per encoder call.
        encoder_hash: the name of the weights recorded in the file (default: the model file's hash, or
            :func:`~tinyact.models.checkpoint.state_dict_hash` of the module).
        resume: reuse ``out`` if complete and rows of ``OUT.partial.npz`` from an interrupted run.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` …
        workers: DataLoader worker processes for decoding (0 = in this process).
        save_every: write the partial file every this many batches.
    """
    out = Path(out)
    model, weights_hash, described = _load_encoder(encoder, encoder_hash)
    dev = pick_device(device)
    was_training = model.training
    model.eval().to(dev)
    stats = _input_stats(model)
    sampling_key = _sampling_json(sampling)

    if resume and (complete := _already_complete(out, manifest, weights_hash, sampling_key)) is not None:
        logger.info("extract: %s is already complete (%d clips)", out, len(complete))
        return complete

    partial = _partial_path(out)
    rows, skipped = _read_partial(partial, weights_hash, sampling_key) if resume else ({}, {})
    if rows or skipped:
        logger.info("extract: resuming, %d clips already encoded", len(rows) + len(skipped))
    todo = Manifest([e for e in manifest.entries if e.clip_id not in rows and e.clip_id not in skipped],
                    manifest.root, list(manifest.label_names))

    cache = ClipCache(cache_dir) if cache_dir is not None and (Path(cache_dir) / "cache.json").exists() else None
    if cache_dir is not None and cache is None:
        logger.warning("extract: no clip cache at %s; decoding the videos", cache_dir)
    skip_report = out.with_name(out.stem + ".skipped.csv")
    dataset = ClipDataset(todo, sampling, cache=cache, skip_report=skip_report)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_clips)

    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    batches = 0
    with progress_bar("extract", total=len(todo), unit="clip") as bar:
        position = 0
        for clips, _, clip_ids in loader:
            batch_entries = todo.entries[position : position + batch_size]
            position += len(batch_entries)
            for entry in batch_entries:  # the collate step drops clips that failed to decode
                if entry.clip_id not in clip_ids:
                    skipped[entry.clip_id] = (
                        cache.skipped.get(entry.clip_id, "failed to decode") if cache else "failed to decode"
                    )
            if clip_ids:
                x = normalize(clips.to(dev), stats)  # uint8 [B, T, 3, S, S] -> float normalised
                z = encode_windows(model, x).cpu().numpy()  # [B, D]
                rows.update(zip(clip_ids, z, strict=True))
            bar.advance(len(batch_entries))
            batches += 1
            if batches % save_every == 0:
                _write_partial(partial, rows, skipped, weights_hash, sampling_key)
    elapsed = time.perf_counter() - started
    if was_training:
        model.train()

    kept = [e for e in manifest.entries if e.clip_id in rows]
    if not kept:
        raise TinyActError(f"no clip of the manifest could be decoded ({len(skipped)} skipped; see {skip_report})")
    columns = {c: [e.extra.get(c, "") for e in kept] for c in manifest.extra_columns}
    meta = {
        "columns": columns,
        "sampling": json.loads(sampling_key),
        "encoder": described,
        "skipped": {cid: reason for cid, reason in skipped.items() if cid in {e.clip_id for e in manifest.entries}},
    }
    result = LatentsFile(
        latents=np.stack([rows[e.clip_id] for e in kept]),
        labels=np.asarray([e.label for e in kept], dtype=str),
        label_names=list(manifest.label_names),
        clip_ids=np.asarray([e.clip_id for e in kept], dtype=str),
        splits=np.asarray([e.split for e in kept], dtype=str),
        encoder_hash=weights_hash,
        meta=meta,
    )
    result.save(out)
    partial.unlink(missing_ok=True)
    if skipped:
        logger.warning("extract: %d clip(s) could not be decoded and are not in %s (see meta['skipped'])", len(skipped), out)
    logger.info("extract: %d clips -> %s in %.1f s (%d new)", len(result), out, elapsed, len(todo))
    return result
