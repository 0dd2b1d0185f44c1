"""Where the KD trainer gets its teacher's logits (and embeddings) on the dataset's classes.

::

    KDConfig.teacher_logits ─► CachedTeacher: rows of a CachedLogits file by clip id (``tinyact teacher cache``)
    KDConfig.teacher        ─► LiveTeacher:   a ``load_teacher`` spec run on every batch, its classes mapped
    neither                 ─► None:          the CE-only baseline

Both check up front that every dataset class has a teacher class, so a run never starts with a teacher that
cannot give a target for some clips.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tinyact.data.manifest import Manifest
from tinyact.errors import TinyActError
from tinyact.teachers import CachedLogits, LabelMap, load_teacher, map_labels


class KDError(TinyActError):
    """A KD run cannot start: teacher and dataset do not fit together."""


def _check_mapping(label_map: LabelMap, source: str) -> None:
    """KD needs a teacher probability for every dataset class: unmapped classes are an error naming them."""
    if label_map.unmapped:
        missing = label_map.unmapped
        raise KDError(
            f"{source} has no class for {len(missing)} dataset label(s): {', '.join(missing[:10])}"
            f"{' …' if len(missing) > 10 else ''}; KD needs teacher logits over every dataset class "
            "(give the teacher a label file or aliases)"
        )


class TeacherSource:
    """Teacher logits on the dataset's classes (and embeddings) for a batch of clips."""

    embedding_dim: int | None = None

    def has(self, clip_id: str) -> bool:
        """Whether this source has logits for ``clip_id``."""
        return True

    def __call__(self, clip_ids: list[str], clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``[B, C]`` on the dataset's classes and embeddings ``[B, D]`` (or ``None``) of a batch."""
        raise NotImplementedError


class CachedTeacher(TeacherSource):
    """Rows of a :class:`~tinyact.teachers.CachedLogits` file, looked up by clip id."""

    def __init__(self, path: Path, dataset_names: list[str], required_ids: list[str]) -> None:
        cached = CachedLogits.load(path)
        missing = [cid for cid in required_ids if cid not in cached]
        if missing:
            raise KDError(
                f"{path} has no teacher logits for {len(missing)} of {len(required_ids)} clips: "
                f"{', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}; run `tinyact teacher cache` over this manifest"
            )
        _check_mapping(cached.label_map(dataset_names), str(path))
        self.cached = cached.for_dataset(dataset_names)
        self.embedding_dim = self.cached.embedding_dim

    def has(self, clip_id: str) -> bool:
        return clip_id in self.cached

    def __call__(self, clip_ids: list[str], clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.cached.lookup(clip_ids)


class LiveTeacher(TeacherSource):
    """A teacher (``tinyact.teachers.load_teacher`` spec) run on every batch."""

    def __init__(self, spec: str, dataset_names: list[str], device: torch.device) -> None:
        self.teacher = load_teacher(spec, device=str(device))
        self.label_map = map_labels(list(self.teacher.label_names), dataset_names)
        _check_mapping(self.label_map, spec)
        self.embedding_dim = self.teacher.embedding_dim

    @torch.no_grad()
    def __call__(self, clip_ids: list[str], clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.teacher(clips)
        logits = self.label_map.apply(out.logits.float())
        return logits, None if out.embedding is None else out.embedding.float()


def make_teacher(
    teacher_logits: Path | None, teacher: str | None, manifest: Manifest, device: torch.device
) -> TeacherSource | None:
    """The teacher of a KD run: cached logits (which must cover every train and val clip), a live teacher, or
    ``None`` (no teacher: the CE-only baseline)."""
    if teacher_logits is not None:
        required = [e.clip_id for e in manifest.entries if e.split in ("train", "val")]
        return CachedTeacher(teacher_logits, manifest.label_names, required)
    if teacher is not None:
        return LiveTeacher(teacher, manifest.label_names, device)
    return None
