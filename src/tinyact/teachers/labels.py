"""Mapping a teacher's classes onto the dataset's by name.

A Kinetics-400 teacher says ``"riding a bike"`` where a folder dataset says ``riding_a_bike`` or
``Riding-A-Bike``; names are compared after :func:`normalize_label` (case-folded, ``_``/``-``/runs of spaces
turned into one space). The KD loss then uses the teacher's logits restricted to the dataset's classes, in the
dataset's order: a softmax over that subset is the teacher's distribution conditioned on "one of our classes".
Dataset classes the teacher does not know get the lowest logit of their row (the teacher considers them as
unlikely as its least likely class) and are reported, as are teacher classes the dataset does not use.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tinyact.errors import TinyActError

logger = logging.getLogger(__name__)

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalize_label(name: str) -> str:
    """``"Riding_a-Bike "`` -> ``"riding a bike"``."""
    return _SEPARATORS.sub(" ", name.strip().strip("\"'")).strip().casefold()


@dataclass
class LabelMap:
    """Where each dataset class sits among the teacher's logits.

    Attributes:
        teacher_index: int64 ``[C_dataset]``: teacher logit index of each dataset class, ``-1`` if unmapped.
        dataset_names / teacher_names: the two name lists as given.
        unmapped: dataset classes the teacher does not know.
        unused: teacher classes not in the dataset.
    """

    teacher_index: np.ndarray
    dataset_names: list[str]
    teacher_names: list[str]
    unmapped: list[str]
    unused: list[str]

    @property
    def mapped(self) -> int:
        return int((self.teacher_index >= 0).sum())

    @property
    def is_identity(self) -> bool:
        return len(self.teacher_names) == len(self.dataset_names) and bool(
            np.array_equal(self.teacher_index, np.arange(len(self.dataset_names)))
        )

    def apply(self, logits: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Teacher logits ``[B, C_teacher]`` -> logits over the dataset classes ``[B, C_dataset]`` (float32).

        Unmapped dataset classes get the row's minimum logit.
        """
        logits = torch.as_tensor(logits).float()
        if logits.dim() != 2 or logits.shape[1] != len(self.teacher_names):
            raise TinyActError(
                f"expected teacher logits [B, {len(self.teacher_names)}], got shape {tuple(logits.shape)}"
            )
        if self.is_identity:
            return logits
        index = torch.as_tensor(self.teacher_index, device=logits.device)
        out = logits[:, index.clamp(min=0)]
        missing = index < 0
        if bool(missing.any()):
            out[:, missing] = logits.min(dim=1, keepdim=True).values
        return out

    def summary(self) -> str:
        text = f"{self.mapped}/{len(self.dataset_names)} dataset classes found among {len(self.teacher_names)} teacher classes"
        if self.unmapped:
            text += f"; not in the teacher: {', '.join(self.unmapped[:10])}" + (" …" if len(self.unmapped) > 10 else "")
        return text


def map_labels(
    teacher_names: Sequence[str],
    dataset_names: Sequence[str],
    aliases: Mapping[str, str] | None = None,
    min_mapped: int = 1,
) -> LabelMap:
    """Match ``dataset_names`` to ``teacher_names`` by normalised name.

    Args:
        teacher_names: the teacher's classes in logit order. Empty means "the dataset's classes in the
            dataset's order" (a teacher trained on this dataset).
        dataset_names: the dataset's classes in label-index order.
        aliases: optional ``{dataset name: teacher name}`` for classes whose names differ beyond case and
            separators (e.g. ``{"bike": "riding a bike"}``).
        min_mapped: fewer mapped classes than this raises :class:`TinyActError` (a teacher for another
            dataset, or a wrong label file).

    Unmapped classes are logged as a warning and listed in the result.
    """
    dataset_names = list(dataset_names)
    if not teacher_names:
        teacher_names = dataset_names
    teacher_names = list(teacher_names)
    lookup: dict[str, int] = {}
    for i, name in enumerate(teacher_names):
        key = normalize_label(name)
        if key in lookup:
            raise TinyActError(f"teacher has two classes that normalise to {key!r}: {teacher_names[lookup[key]]!r}, {name!r}")
        lookup[key] = i
    alias_keys = {normalize_label(k): normalize_label(v) for k, v in (aliases or {}).items()}
    index = np.full(len(dataset_names), -1, dtype=np.int64)
    for j, name in enumerate(dataset_names):
        key = normalize_label(name)
        key = alias_keys.get(key, key)
        index[j] = lookup.get(key, -1)
    unmapped = [name for name, i in zip(dataset_names, index, strict=True) if i < 0]
    used = set(index[index >= 0].tolist())
    unused = [name for i, name in enumerate(teacher_names) if i not in used]
    result = LabelMap(index, dataset_names, teacher_names, unmapped, unused)
    if result.mapped < min_mapped:
        raise TinyActError(
            f"none of the dataset's classes ({', '.join(dataset_names[:5])} …) match the teacher's "
            f"({', '.join(teacher_names[:5])} …); is this a teacher for another dataset?"
            if result.mapped == 0
            else f"only {result.mapped} dataset classes match the teacher's (need {min_mapped})"
        )
    if unmapped:
        logger.warning("teacher labels: %s", result.summary())
    return result
