"""Values of teacher spec options: compute dtypes, normalisation statistics and class-name files."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch

from tinyact.teachers.base import TeacherError, normalisation_stats

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def parse_dtype(name: str) -> torch.dtype:
    """``float32``, ``float16`` or ``bfloat16`` as a torch dtype."""
    if name not in _DTYPES:
        raise TeacherError(f"dtype must be one of {sorted(_DTYPES)}, got {name!r}")
    return _DTYPES[name]


def parse_stats(value: Any, which: int, what: str) -> tuple[float, float, float]:
    """A named statistic (``imagenet`` …) or ``R,G,B`` numbers; ``which`` 0 = mean, 1 = std."""
    if isinstance(value, str):
        if "," in value:
            try:
                numbers = tuple(float(v) for v in value.split(","))
            except ValueError:
                raise TeacherError(f"{what}={value!r}: give a name or three comma-separated numbers") from None
        else:
            numbers = normalisation_stats(value)[which]
    else:
        numbers = tuple(float(v) for v in value)
    if len(numbers) != 3:
        raise TeacherError(f"{what} needs 3 values (R, G, B), got {value!r}")
    return numbers[0], numbers[1], numbers[2]


def read_label_file(path: str | Path) -> list[str]:
    """Class names from ``.txt`` (one a line), ``.json`` (a list) or ``.csv`` (a ``name`` or ``label`` column,
    rows in class-index order; a leading ``id`` column, as in ILA's ``kinetics_400_labels.csv``, is used to
    order them)."""
    path = Path(path)
    if not path.is_file():
        raise TeacherError(f"label file not found: {path}")
    if path.suffix == ".json":
        names = json.loads(path.read_text())
        if not isinstance(names, list):
            raise TeacherError(f"{path}: expected a JSON list of class names")
        return [str(n) for n in names]
    if path.suffix == ".csv":
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        column = next((c for c in ("name", "label", "class") if rows and c in rows[0]), None)
        if column is None:
            raise TeacherError(f"{path}: CSV needs a 'name' or 'label' column")
        if "id" in rows[0]:
            rows.sort(key=lambda r: int(r["id"]))
        return [r[column] for r in rows]
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
