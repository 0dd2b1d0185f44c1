"""Cached teacher outputs: run a teacher once over a manifest, then distil from the file.

A 200 M-parameter teacher costs far more per clip than the student; running it once (on a GPU, or on another
machine) and reading its logits from disk is the practical path. The file is also the exchange format for
teachers run elsewhere: produce the same ``.npz`` with any tool and the KD trainer reads it.

File format (``.npz``, no pickle)::

    clip_ids     str     [N]        manifest clip ids, one row each
    logits       float32 [N, C]     the teacher's raw logits (before temperature), in label_names order
    label_names  str     [C]        the teacher's class names (mapped onto a dataset's with map_labels)
    embeddings   float32 [N, D]     optional: the teacher's embedding per clip (feature-level KD)
    teacher      str     []         the spec that produced it (informational)

Building is resumable: finished batches are written as parts next to the output
(``OUT.parts/part-*.npz``, each renamed into place only when complete); a rerun skips the clips already
there, and the parts are merged into ``OUT`` and removed at the end.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from tinyact.console import progress_bar
from tinyact.data.datasets import ClipDataset, collate_clips
from tinyact.data.manifest import Manifest
from tinyact.data.video import ClipSampling
from tinyact.errors import DatasetError, TinyActError
from tinyact.teachers.base import Teacher
from tinyact.teachers.labels import LabelMap, map_labels

logger = logging.getLogger(__name__)


@dataclass
class CachedLogits:
    """Teacher logits (and optional embeddings) per clip id; see the module docstring for the file format."""

    clip_ids: np.ndarray
    logits: np.ndarray
    label_names: list[str]
    embeddings: np.ndarray | None = None
    teacher: str = ""
    _row: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.clip_ids = np.asarray(self.clip_ids, dtype=str)
        self.logits = np.asarray(self.logits, dtype=np.float32)
        self.label_names = [str(n) for n in self.label_names]
        if self.embeddings is not None:
            self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
        n = len(self.clip_ids)
        if self.logits.ndim != 2 or len(self.logits) != n or self.logits.shape[1] != len(self.label_names):
            raise DatasetError(
                f"cached logits are inconsistent: {n} clip ids, logits {self.logits.shape}, "
                f"{len(self.label_names)} label names"
            )
        if self.embeddings is not None and (self.embeddings.ndim != 2 or len(self.embeddings) != n):
            raise DatasetError(f"cached embeddings {self.embeddings.shape} do not match {n} clip ids")
        self._row = {clip_id: i for i, clip_id in enumerate(self.clip_ids.tolist())}
        if len(self._row) != n:
            raise DatasetError("cached logits list a clip id twice")

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self._row

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    @property
    def embedding_dim(self) -> int | None:
        return None if self.embeddings is None else int(self.embeddings.shape[1])

    def rows(self, clip_ids: list[str]) -> np.ndarray:
        """Row indices of ``clip_ids``; a missing id raises :class:`DatasetError` naming it."""
        try:
            return np.array([self._row[c] for c in clip_ids], dtype=np.int64)
        except KeyError as error:
            raise DatasetError(
                f"clip {error.args[0]!r} has no cached teacher logits; rerun `tinyact teacher cache` on this manifest"
            ) from None

    def lookup(self, clip_ids: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits float32 [B, C], embeddings float32 [B, D] or None)`` for a batch of clip ids."""
        index = self.rows(clip_ids)
        embeddings = None if self.embeddings is None else torch.from_numpy(self.embeddings[index])
        return torch.from_numpy(self.logits[index]), embeddings

    def for_dataset(self, dataset_names: list[str], aliases: dict[str, str] | None = None) -> CachedLogits:
        """The same rows with logits mapped onto ``dataset_names`` (see :func:`map_labels`)."""
        label_map = self.label_map(dataset_names, aliases)
        if label_map.is_identity and list(dataset_names) == self.label_names:
            return self
        logits = label_map.apply(self.logits).numpy()
        return CachedLogits(self.clip_ids, logits, list(dataset_names), self.embeddings, self.teacher)

    def label_map(self, dataset_names: list[str], aliases: dict[str, str] | None = None) -> LabelMap:
        return map_labels(self.label_names, dataset_names, aliases)

    def save(self, path: str | Path) -> Path:
        """Write atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "clip_ids": self.clip_ids,
            "logits": self.logits,
            "label_names": np.asarray(self.label_names, dtype=str),
            "teacher": np.asarray(self.teacher, dtype=str),
        }
        if self.embeddings is not None:
            arrays["embeddings"] = self.embeddings
        _save_npz(path, arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> CachedLogits:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"cached teacher logits not found: {path} (make them with `tinyact teacher cache`)")
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    clip_ids=data["clip_ids"],
                    logits=data["logits"],
                    label_names=data["label_names"].tolist(),
                    embeddings=data["embeddings"] if "embeddings" in data.files else None,
                    teacher=str(data["teacher"]) if "teacher" in data.files else "",
                )
        except (KeyError, ValueError, OSError) as error:
            raise DatasetError(f"{path} is not a cached-logits file ({type(error).__name__}: {error})") from None


def _save_npz(path: Path, arrays: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def _teacher_label_names(teacher: Teacher, manifest: Manifest, num_logits: int) -> list[str]:
    if teacher.label_names:
        return list(teacher.label_names)
    if num_logits != len(manifest.label_names):
        raise TinyActError(
            f"the teacher names no classes and gives {num_logits} logits, but the manifest has "
            f"{len(manifest.label_names)} classes; give it a label file (labels=FILE in the spec)"
        )
    logger.info("teacher names no classes: taking its %d logits in the manifest's label order", num_logits)
    return list(manifest.label_names)


def cache_teacher(
    teacher: Teacher,
    manifest: Manifest,
    sampling: ClipSampling | None,
    out: str | Path,
    cache_dir: str | Path | None = None,
    batch_size: int = 8,
    *,
    workers: int = 0,
    teacher_spec: str = "",
    parts_every: int = 16,
) -> CachedLogits:
    """Run ``teacher`` over every clip of ``manifest`` and write its outputs to ``out`` (resuming a partial run).

    Args:
        teacher: any :class:`Teacher` (it picks its own device; outputs are stored as float32 on the CPU).
        manifest: the clips (all splits).
        sampling: how clips are taken from the videos; ``None``: uniform, ``teacher.num_frames`` frames at
            ``teacher.size`` (the teacher resamples/resizes whatever it gets anyway).
        out: the ``.npz`` to write.
        cache_dir: a clip cache (``tinyact data cache``) to read instead of decoding, if its sampling matches.
        batch_size: clips per teacher call.
        workers: DataLoader worker processes for decoding.
        teacher_spec: recorded in the file.
        parts_every: batches per resumable part file.

    Clips whose video does not decode are skipped (logged, and remembered so a resume does not retry them).
    Logs how the teacher's classes map onto the manifest's (unmapped classes are listed).
    """
    out = Path(out)
    parts_dir = out.with_name(out.name + ".parts")
    sampling = sampling or ClipSampling(num_frames=teacher.num_frames, size=teacher.size)
    done: set[str] = set()
    if out.exists() and not parts_dir.exists():
        existing = CachedLogits.load(out)
        if teacher_spec and existing.teacher and existing.teacher != teacher_spec:
            raise TinyActError(
                f"{out} holds logits of another teacher ({existing.teacher}); choose another --out or delete it"
            )
        missing = [e.clip_id for e in manifest.entries if e.clip_id not in existing]
        if not missing:
            logger.info("teacher cache: %s already covers all %d clips", out, len(manifest))
            _report_mapping(existing.label_names, manifest)
            return existing
        parts_dir.mkdir(parents=True)  # carry the finished file over as the first part
        shutil.copyfile(out, parts_dir / "part-00000.npz")
    parts_dir.mkdir(parents=True, exist_ok=True)
    for stale in parts_dir.glob("*.tmp"):
        stale.unlink()
    parts = sorted(parts_dir.glob("part-*.npz"))
    for part in parts:
        with np.load(part, allow_pickle=False) as data:
            done.update(data["clip_ids"].tolist())
            if "skipped" in data.files:
                done.update(data["skipped"].tolist())
    todo = Manifest([e for e in manifest.entries if e.clip_id not in done], manifest.root, list(manifest.label_names))
    if done:
        logger.info("teacher cache: resuming, %d clips done, %d to go", len(manifest) - len(todo), len(todo))

    dataset = ClipDataset(todo, sampling, cache=cache_dir)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_clips,
        pin_memory=torch.cuda.is_available(),
    )
    next_part = len(parts)
    buffer: dict[str, list[np.ndarray]] = {"clip_ids": [], "logits": [], "embeddings": [], "skipped": []}
    label_names: list[str] | None = None

    def flush() -> None:
        nonlocal next_part
        if not buffer["clip_ids"] and not buffer["skipped"]:
            return
        arrays = {
            "clip_ids": np.concatenate(buffer["clip_ids"]) if buffer["clip_ids"] else np.array([], dtype=str),
            "logits": np.concatenate(buffer["logits"]) if buffer["logits"] else np.zeros((0, 0), np.float32),
            "skipped": np.asarray(sum((list(s) for s in buffer["skipped"]), []), dtype=str),
            "label_names": np.asarray(label_names or [], dtype=str),
            "teacher": np.asarray(teacher_spec, dtype=str),
        }
        if buffer["embeddings"]:
            arrays["embeddings"] = np.concatenate(buffer["embeddings"])
        _save_npz(parts_dir / f"part-{next_part:05d}.npz", arrays)
        next_part += 1
        for values in buffer.values():
            values.clear()

    starts = range(0, len(todo), batch_size)
    with progress_bar("teacher: logits", total=len(todo), unit="clip") as bar:
        for step, (start, (clips, _labels, clip_ids)) in enumerate(zip(starts, loader, strict=True)):
            asked = [e.clip_id for e in todo.entries[start : start + batch_size]]
            failed = sorted(set(asked) - set(clip_ids))
            if failed:
                buffer["skipped"].append(np.asarray(failed, dtype=str))
            if clip_ids:
                output = teacher(clips)
                logits = output.logits.detach().float().cpu().numpy()
                if label_names is None:
                    label_names = _teacher_label_names(teacher, manifest, logits.shape[1])
                buffer["clip_ids"].append(np.asarray(clip_ids, dtype=str))
                buffer["logits"].append(logits)
                if output.embedding is not None:
                    buffer["embeddings"].append(output.embedding.detach().float().cpu().numpy())
            bar.advance(len(asked))
            if (step + 1) % parts_every == 0:
                flush()
        flush()

    result = _merge_parts(sorted(parts_dir.glob("part-*.npz")), manifest, teacher_spec)
    result.save(out)
    shutil.rmtree(parts_dir)
    skipped = len(manifest) - len(result)
    if skipped:
        logger.warning("teacher cache: %d clip(s) could not be decoded and have no logits", skipped)
    _report_mapping(result.label_names, manifest)
    logger.info("teacher cache: %d clips x %d classes -> %s", len(result), result.num_classes, out)
    return result


def _merge_parts(parts: list[Path], manifest: Manifest, teacher_spec: str) -> CachedLogits:
    ids, logits, embeddings = [], [], []
    label_names: list[str] = []
    for part in parts:
        with np.load(part, allow_pickle=False) as data:
            if len(data["clip_ids"]) == 0:
                continue
            names = data["label_names"].tolist()
            if label_names and names != label_names:
                raise DatasetError(f"{part} was written by a teacher with other classes; delete {part.parent}")
            label_names = names
            ids.extend(data["clip_ids"].tolist())
            logits.append(data["logits"])
            if "embeddings" in data.files:
                embeddings.append(data["embeddings"])
    if not ids:
        raise DatasetError("no clip could be decoded, so the teacher produced no logits")
    stacked = np.concatenate(logits)
    emb = np.concatenate(embeddings) if embeddings and sum(len(e) for e in embeddings) == len(ids) else None
    # Rows in manifest order, whatever order the parts were written in.
    position = {clip_id: i for i, clip_id in enumerate(ids)}
    order = np.array([position[e.clip_id] for e in manifest.entries if e.clip_id in position], dtype=np.int64)
    return CachedLogits(
        np.asarray(ids)[order], stacked[order], label_names, None if emb is None else emb[order], teacher_spec
    )


def _report_mapping(teacher_names: list[str], manifest: Manifest) -> None:
    label_map = map_labels(teacher_names, manifest.label_names)
    logger.info("teacher labels: %s", label_map.summary())
