"""The manifest: one CSV listing every clip that later stages read, with its label and split.

Every stage after ``tinyact data manifest`` reads this file and nothing else of the dataset's layout::

    path,label,split,clip_id,actor,scene
    train/abcdEFGhijk_000012_000015.mp4,clapping,train,abcdEFGhijk_000012_000015,3,stripes
    /data/k400/val/zzzzzzzzzzz_000001_000011.mp4,zumba,val,zzzzzzzzzzz_000001_000011,,

``path`` is absolute or relative to the manifest file's folder (``tinyact data manifest`` writes paths
relative to the dataset root when the manifest sits in that root). Columns after ``clip_id`` are optional
metadata and are carried through unchanged. Label indices are the positions of the label names in sorted
order, which for Kinetics-400 is the standard class order.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyact.errors import DatasetError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
REQUIRED_COLUMNS = ("path", "label", "split", "clip_id")


@dataclass(frozen=True)
class ManifestEntry:
    """One clip: where its video is, its label and split, a unique id, and optional metadata."""

    path: str
    label: str
    split: str
    clip_id: str
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class Manifest:
    """A list of :class:`ManifestEntry` plus the folder their relative paths start from."""

    entries: list[ManifestEntry]
    root: Path
    label_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.label_names:
            self.label_names = sorted({e.label for e in self.entries})
        self._label_index = {name: i for i, name in enumerate(self.label_names)}
        ids = Counter(e.clip_id for e in self.entries)
        dupes = [clip_id for clip_id, n in ids.items() if n > 1]
        if dupes:
            raise DatasetError(f"manifest has duplicate clip_id values, e.g. {dupes[:3]}")

    def __len__(self) -> int:
        return len(self.entries)

    def label_index(self, label: str) -> int:
        return self._label_index[label]

    def resolve(self, entry: ManifestEntry) -> Path:
        """Absolute path of an entry's video."""
        path = Path(entry.path)
        return path if path.is_absolute() else self.root / path

    def split(self, *names: str) -> Manifest:
        """The entries of the given split(s), keeping this manifest's label names and indices."""
        return Manifest([e for e in self.entries if e.split in names], self.root, list(self.label_names))

    def class_counts(self) -> dict[str, dict[str, int]]:
        """``{split: {label: count}}``."""
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for entry in self.entries:
            counts[entry.split][entry.label] += 1
        return {split: dict(per_label) for split, per_label in counts.items()}

    @property
    def extra_columns(self) -> list[str]:
        columns: dict[str, None] = {}
        for entry in self.entries:
            columns.update(dict.fromkeys(entry.extra))
        return list(columns)

    def write(self, out: str | Path) -> Path:
        """Write as CSV; paths under the output folder are stored relative to it."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        base = out.parent.resolve()
        extra = self.extra_columns
        with open(out, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*REQUIRED_COLUMNS, *extra])
            for entry in self.entries:
                path = self.resolve(entry).resolve()
                try:
                    shown = str(path.relative_to(base))
                except ValueError:
                    shown = str(path)
                writer.writerow([shown, entry.label, entry.split, entry.clip_id, *(entry.extra.get(c, "") for c in extra)])
        return out

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        """Read a manifest CSV; relative paths resolve against the CSV's folder."""
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"manifest not found: {path} (make one with `tinyact data manifest`)")
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"{path} is not a manifest: missing column(s) {', '.join(missing)}")
            entries = []
            for line, row in enumerate(reader, start=2):
                if row["split"] not in SPLITS:
                    raise DatasetError(f"{path}:{line}: split must be one of {SPLITS}, got {row['split']!r}")
                extra = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS and k is not None}
                entries.append(ManifestEntry(row["path"], row["label"], row["split"], row["clip_id"], extra))
        if not entries:
            raise DatasetError(f"manifest {path} lists no clips")
        return cls(entries, path.parent.resolve())


def balance(entries: Sequence[ManifestEntry], per_class: int | None = None, seed: int = 0) -> list[ManifestEntry]:
    """Balanced sampling as in the paper: in each split, the same number of distinct clips for every class.

    The number per class is the smallest class count of that split, or ``per_class`` if that is smaller.
    Sampling is without repetition and seeded; the result keeps the input order.
    """
    by_split: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, entry in enumerate(entries):
        by_split[entry.split][entry.label].append(i)
    rng = np.random.default_rng(seed)
    keep: set[int] = set()
    for split in sorted(by_split):
        per_label = by_split[split]
        n = min(len(idx) for idx in per_label.values())
        if per_class is not None:
            n = min(n, per_class)
        smallest = min(per_label, key=lambda label: len(per_label[label]))
        logger.info("balance %s: %d per class x %d classes (smallest: %r)", split, n, len(per_label), smallest)
        for label in sorted(per_label):
            chosen = rng.choice(per_label[label], size=n, replace=False)
            keep.update(int(i) for i in chosen)
    return [entries[i] for i in sorted(keep)]


def stratified_split(
    entries: Sequence[ManifestEntry], fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0
) -> list[ManifestEntry]:
    """Assign train/val/test per class in the given proportions (seeded), for datasets with no split of their
    own. Every class with at least 3 clips gets at least one clip in each split."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, entry in enumerate(entries):
        by_label[entry.label].append(i)
    rng = np.random.default_rng(seed)
    split_of: dict[int, str] = {}
    for label in sorted(by_label):
        idx = list(rng.permutation(by_label[label]))
        n = len(idx)
        n_val = max(1, round(n * fractions[1])) if n >= 3 else 0
        n_test = max(1, round(n * fractions[2])) if n >= 3 else 0
        for k, i in enumerate(idx):
            split_of[int(i)] = "val" if k < n_val else "test" if k < n_val + n_test else "train"
    return [
        ManifestEntry(e.path, e.label, split_of[i], e.clip_id, e.extra) for i, e in enumerate(entries)
    ]


def format_counts(manifest: Manifest) -> list[tuple[str, ...]]:
    """Rows ``(label, train, val, test)`` for a per-class count table."""
    counts = manifest.class_counts()
    return [
        (label, *(str(counts.get(split, {}).get(label, 0)) for split in SPLITS)) for label in manifest.label_names
    ]
