"""The latents file: the contract between the encoder (``tinyact extract``) and every classifier.

One ``.npz`` (no pickle) with::

    latents      float32 [N, D]      one row per clip
    labels       str     [N]         label name of each clip
    label_names  str     [C]         all class names, in label-index order
    clip_ids     str     [N]
    splits       str     [N]         train / val / test
    encoder_hash str     []          hash of the encoder weights that produced the rows
    meta_json    str     []          JSON: per-clip metadata columns from the manifest (e.g. actor) and anything else

Example::

    lf = LatentsFile.load("runs/x/latents.npz")
    train = lf.split("train")
    clf.fit(train.latents, train.y)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyact.errors import DatasetError
from tinyact.paths import atomic_path


@dataclass
class LatentsFile:
    """Latent vectors of clips with their labels, ids, splits and the encoder that made them."""

    latents: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    clip_ids: np.ndarray
    splits: np.ndarray
    encoder_hash: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.latents = np.asarray(self.latents, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=str)
        self.clip_ids = np.asarray(self.clip_ids, dtype=str)
        self.splits = np.asarray(self.splits, dtype=str)
        n = len(self.latents)
        if self.latents.ndim != 2 or not (len(self.labels) == len(self.clip_ids) == len(self.splits) == n):
            raise DatasetError(
                f"latents file is inconsistent: latents {self.latents.shape}, labels {len(self.labels)}, "
                f"clip_ids {len(self.clip_ids)}, splits {len(self.splits)}"
            )
        unknown = set(self.labels.tolist()) - set(self.label_names)
        if unknown:
            raise DatasetError(f"labels not in label_names: {sorted(unknown)[:5]}")

    def __len__(self) -> int:
        return len(self.latents)

    @property
    def dim(self) -> int:
        return int(self.latents.shape[1])

    @property
    def y(self) -> np.ndarray:
        """Label indices (int64 ``[N]``) into ``label_names``."""
        index = {name: i for i, name in enumerate(self.label_names)}
        return np.array([index[label] for label in self.labels.tolist()], dtype=np.int64)

    def split(self, *names: str) -> LatentsFile:
        """Rows of the given split(s), same label names."""
        mask = np.isin(self.splits, names)
        meta = dict(self.meta)
        columns = meta.get("columns", {})
        if columns:
            meta["columns"] = {k: np.asarray(v)[mask].tolist() for k, v in columns.items()}
        return LatentsFile(
            self.latents[mask], self.labels[mask], list(self.label_names), self.clip_ids[mask], self.splits[mask],
            self.encoder_hash, meta,
        )

    def column(self, name: str) -> np.ndarray:
        """A per-clip metadata column carried from the manifest (e.g. ``actor``)."""
        columns = self.meta.get("columns", {})
        if name not in columns:
            raise KeyError(f"no column {name!r} in latents metadata (have {sorted(columns)})")
        return np.asarray(columns[name])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_path(path, keep_suffix=True) as tmp:
            np.savez(
                tmp,
                latents=self.latents,
                labels=self.labels,
                label_names=np.asarray(self.label_names, dtype=str),
                clip_ids=self.clip_ids,
                splits=self.splits,
                encoder_hash=np.asarray(self.encoder_hash),
                meta_json=np.asarray(json.dumps(self.meta)),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> LatentsFile:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"latents file not found: {path} (make one with `tinyact extract`)")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = {"latents", "labels", "label_names", "clip_ids", "splits", "encoder_hash"} - set(data.files)
                if missing:
                    raise DatasetError(f"{path} is not a TinyAct latents file: missing {sorted(missing)}")
                return cls(
                    latents=data["latents"],
                    labels=data["labels"],
                    label_names=data["label_names"].tolist(),
                    clip_ids=data["clip_ids"],
                    splits=data["splits"],
                    encoder_hash=str(data["encoder_hash"]),
                    meta=json.loads(str(data["meta_json"])) if "meta_json" in data.files else {},
                )
        except (OSError, ValueError) as error:
            # numpy takes any bytes that are not an archive for pickled data and suggests allow_pickle: not for users
            detail = "not an .npz archive" if "pickle" in str(error) else str(error)
            raise DatasetError(f"cannot read latents file {path}: {detail} (write one with `tinyact extract`)") from None
