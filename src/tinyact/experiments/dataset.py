"""Where an experiment's clips come from: the dataset fields every table's config shares."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tinyact.config import TinyActConfig


class DatasetSource(TinyActConfig):
    """A dataset in one of the layouts of :mod:`tinyact.data.layouts`, and the run folder an experiment writes."""

    data: Path = Field(..., title="Dataset root")
    out: Path = Field(..., title="Run folder")
    layout: Literal["kinetics", "folder", "list"] = Field("kinetics", title="Dataset layout")
    annotations: dict[str, Path] = Field(default_factory=dict, title="list layout: split -> 'path label' file")
    labels: Path | None = Field(None, title="list layout: class names, one per line, for numeric labels")
    split_file: Path | None = Field(None, title="folder layout: CSV path,split (else a seeded stratified split)")
