"""Readers for the dataset layouts TinyAct accepts; each returns manifest entries plus a report.

**Kinetics-400, CVDF copy** (``layout="kinetics"``)::

    ROOT/train/-3B32lodo2M_000059_000069.mp4          (or ROOT/train/<label>/<file>.mp4)
    ROOT/annotations/train.csv
        label,youtube_id,time_start,time_end,split[,is_cc,…]
        abseiling,-3B32lodo2M,59,69,train

  Unknown columns are kept as metadata; videos listed but absent are counted and reported, not fatal.

**Annotation list** (``layout="list"``, mmaction2/pytorchvideo style), one ``path label`` per line, the label
a name or an index into ``label_names``::

    abseiling/-3B32lodo2M_000059_000069.mp4 0
    some folder/clip 2.mkv zumba

**Folder** (``layout="folder"``): ``ROOT/<class>/<video>`` (any container PyAV reads), with an optional split
file ``path,split`` (paths relative to ROOT); without one, a seeded stratified split is made.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tinyact.data.manifest import SPLITS, ManifestEntry, stratified_split
from tinyact.errors import DatasetError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".ogv"}


@dataclass
class LayoutReport:
    """What a layout reader found: clips listed, and those missing or unusable with the reason."""

    listed: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (what, why)

    @property
    def missing(self) -> int:
        return len(self.problems)

    def write(self, out: str | Path) -> Path:
        out = Path(out)
        with open(out, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["item", "reason"])
            writer.writerows(self.problems)
        return out


def kinetics_file_name(youtube_id: str, time_start: float | str, time_end: float | str) -> str:
    """``<youtube_id>_<start:06d>_<end:06d>.mp4``, the CVDF naming."""
    return f"{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}.mp4"


def _index_videos(folder: Path) -> dict[str, Path]:
    """File name -> path for every video under ``folder`` (flat or per-class sub-folders)."""
    index: dict[str, Path] = {}
    if folder.is_dir():
        for path in folder.rglob("*"):
            if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
                index.setdefault(path.name, path)
    return index


def read_kinetics(root: str | Path, splits: tuple[str, ...] = SPLITS) -> tuple[list[ManifestEntry], LayoutReport]:
    """Entries for the Kinetics CVDF layout under ``root`` (see module docstring)."""
    root = Path(root)
    annotations = root / "annotations"
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    if not annotations.is_dir():
        # The layout defaults to kinetics, so a user's folder of class sub-folders most often lands here.
        folders = any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir())
        hint = "; it holds sub-folders: for ROOT/<class>/<video> use the folder layout (--layout folder)" if folders else ""
        raise DatasetError(f"{root} is not a Kinetics CVDF copy: no annotations/ folder (expected "
                           f"annotations/train.csv …){hint}")
    report = LayoutReport()
    entries: list[ManifestEntry] = []
    found_any = False
    for split in splits:
        csv_path = annotations / f"{split}.csv"
        if not csv_path.is_file():
            logger.warning("kinetics: %s missing, skipping split %r", csv_path, split)
            continue
        found_any = True
        videos = _index_videos(root / split)
        with open(csv_path, newline="") as handle:
            reader = csv.DictReader(handle)
            needed = {"youtube_id", "time_start", "time_end"}
            if not needed <= set(reader.fieldnames or []):
                raise DatasetError(f"{csv_path}: needs columns label,youtube_id,time_start,time_end (got {reader.fieldnames})")
            for line, row in enumerate(reader, start=2):
                report.listed += 1
                label = (row.get("label") or "").strip()
                try:
                    name = kinetics_file_name(row["youtube_id"], row["time_start"], row["time_end"])
                except (TypeError, ValueError):
                    report.problems.append((f"{csv_path.name}:{line}", "bad time_start/time_end"))
                    continue
                if not label:
                    report.problems.append((f"{split}/{name}", "no label in annotations"))
                    continue
                path = videos.get(name)
                if path is None:
                    report.problems.append((f"{split}/{name}", "listed in annotations but not on disk"))
                    continue
                extra = {k: v for k, v in row.items() if k not in {"label", "youtube_id", "time_start", "time_end", "split"} and k}
                entries.append(ManifestEntry(str(path.relative_to(root)), label, split, Path(name).stem, extra))
    if not found_any:
        raise DatasetError(f"{annotations} has none of {', '.join(s + '.csv' for s in splits)}")
    return entries, report


def read_annotation_list(
    list_file: str | Path, root: str | Path, split: str, label_names: list[str] | None = None
) -> tuple[list[ManifestEntry], LayoutReport]:
    """Entries from a ``path label`` text file; paths relative to ``root``."""
    list_file, root = Path(list_file), Path(root)
    if not list_file.is_file():
        raise DatasetError(f"annotation list not found: {list_file}")
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
    report = LayoutReport()
    entries = []
    for line_no, line in enumerate(list_file.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        report.listed += 1
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise DatasetError(f"{list_file}:{line_no}: expected 'path label', got {line!r}")
        rel, label = parts
        if label.isdigit():
            if label_names is None:
                raise DatasetError(f"{list_file}:{line_no}: label {label} is an index; pass the label names file")
            if int(label) >= len(label_names):
                raise DatasetError(f"{list_file}:{line_no}: label index {label} out of range ({len(label_names)} names)")
            label = label_names[int(label)]
        path = root / rel
        if not path.is_file():
            report.problems.append((rel, "listed but not on disk"))
            continue
        entries.append(ManifestEntry(rel, label, split, _clip_id(rel)))
    return entries, report


def _clip_id(rel_path: str) -> str:
    """A unique, filesystem- and CSV-friendly id from a path relative to the root."""
    return str(Path(rel_path).with_suffix("")).replace("/", "__").replace("\\", "__").replace(" ", "_")


def read_folder(
    root: str | Path,
    split_file: str | Path | None = None,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> tuple[list[ManifestEntry], LayoutReport]:
    """Entries for ``ROOT/<class>/<video>``; split from ``split_file`` or a seeded stratified split."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    report = LayoutReport()
    entries = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
                rel = str(path.relative_to(root))
                report.listed += 1
                entries.append(ManifestEntry(rel, class_dir.name, "train", _clip_id(rel)))
    if not entries:
        raise DatasetError(f"no videos under {root}/<class>/ (looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
    if split_file is None:
        return stratified_split(entries, fractions, seed), report
    split_of = _read_split_file(Path(split_file))
    assigned = []
    for entry in entries:
        split = split_of.get(entry.path)
        if split is None:
            report.problems.append((entry.path, f"not in split file {Path(split_file).name}"))
            continue
        assigned.append(ManifestEntry(entry.path, entry.label, split, entry.clip_id))
    listed = {e.path for e in entries}
    for rel in split_of:
        if rel not in listed:
            report.problems.append((rel, "in split file but not on disk"))
    return assigned, report


def _read_split_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise DatasetError(f"split file not found: {path}")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"path", "split"} <= set(reader.fieldnames or []):
            raise DatasetError(f"{path}: split file needs columns path,split")
        result = {}
        for line, row in enumerate(reader, start=2):
            if row["split"] not in SPLITS:
                raise DatasetError(f"{path}:{line}: split must be one of {SPLITS}, got {row['split']!r}")
            result[row["path"]] = row["split"]
    return result


def read_layout(
    layout: str,
    root: str | Path,
    *,
    split_file: str | Path | None = None,
    annotations: Mapping[str, str | Path] | None = None,
    labels: str | Path | None = None,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> tuple[list[ManifestEntry], LayoutReport]:
    """Entries of a dataset in any supported layout: ``kinetics`` (CVDF copy), ``folder``
    (``ROOT/<class>/<video>`` with an optional split file, else a seeded stratified split) or ``list``
    (``annotations``: split -> a ``path label`` file, ``labels``: class names for numeric labels)."""
    if layout == "kinetics":
        return read_kinetics(root)
    if layout == "folder":
        return read_folder(root, split_file=split_file, fractions=fractions, seed=seed)
    if layout != "list":
        raise DatasetError(f"unknown layout {layout!r}: use kinetics, folder or list")
    if not annotations:
        raise DatasetError("the list layout needs annotation files, one per split (SPLIT=FILE)")
    names = Path(labels).read_text().splitlines() if labels else None
    entries: list[ManifestEntry] = []
    report = LayoutReport()
    for split, file in annotations.items():
        part, part_report = read_annotation_list(file, root, split, names)
        entries += part
        report.listed += part_report.listed
        report.problems += part_report.problems
    return entries, report


def parse_annotations(items: list[str] | None) -> dict[str, str]:
    """``["train=a.txt", "val=b.txt"]`` (the command line's form) -> ``{"train": "a.txt", "val": "b.txt"}``."""
    parsed: dict[str, str] = {}
    for item in items or []:
        split, _, file = item.partition("=")
        if not file:
            raise DatasetError(f"annotations take SPLIT=FILE, got {item!r}")
        parsed[split] = file
    return parsed
