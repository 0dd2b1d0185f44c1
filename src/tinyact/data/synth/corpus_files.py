"""The pretraining corpus on disk: rendering it into shards in parallel (resumable), its ``clips.csv`` index, the
``CorpusDataset`` training reads, and a contact sheet. What a clip looks like is :mod:`tinyact.data.synth.corpus`.

Layout::

    OUT/corpus.yaml        the resolved CorpusConfig
    OUT/clips.csv          index,label,label_name,split,actor,style,view,camera,person_area,shard,row
    OUT/shard-00000.npy    uint8 [n, T, 3, S, S]
    OUT/shard-00000.csv    what each clip of the shard shows (index, style, view, camera, person_area)
    OUT/preview.png        one row per class
"""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from tinyact.console import progress_bar
from tinyact.data.synth.corpus import (
    CLIP_FIELDS,
    DRAWN_FIELDS,
    ClipInfo,
    CorpusConfig,
    clip_split,
    render_corpus_clip,
)
from tinyact.data.synth.motions import MOTION_NAMES, MOTIONS
from tinyact.errors import DatasetError
from tinyact.parallel import run_bounded, worker_count

logger = logging.getLogger(__name__)


def _render_shard(args: tuple[dict[str, Any], int, int]) -> tuple[int, list[ClipInfo]]:
    """Worker: render clips ``[start, stop)`` into ``shard-<n>.npy`` (written atomically)."""
    cfg_dict, shard, start = args
    cfg = CorpusConfig.model_validate(cfg_dict)
    stop = min(cfg.clips, start + cfg.shard_size)
    clips, infos = [], []
    for index in range(start, stop):
        clip, info = render_corpus_clip(cfg, index)
        clips.append(clip)
        infos.append(info)
    path = Path(cfg.out) / f"shard-{shard:05d}.npy"
    drawn = path.with_suffix(".csv")  # what was drawn (DRAWN_FIELDS), merged into clips.csv
    tmp = drawn.with_suffix(".tmp")
    with open(tmp, "w", newline="") as handle:
        csv.writer(handle).writerows([[i.index, *(getattr(i, f) for f in DRAWN_FIELDS)] for i in infos])
    os.replace(tmp, drawn)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, np.stack(clips))
    os.replace(tmp, path)  # the shard last: a shard file present means its clips and their record are complete
    return shard, infos


def build_corpus(cfg: CorpusConfig) -> Path:
    """Render the corpus into ``cfg.out`` (resuming: shards already written are kept); returns ``clips.csv``."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    previous = out / "corpus.yaml"
    if previous.is_file():
        old = CorpusConfig.from_yaml(previous)
        if old.model_dump(exclude={"out", "workers"}) != cfg.model_dump(exclude={"out", "workers"}):
            raise DatasetError(f"{out} holds a corpus made with other settings; use a new --out or delete it")
    cfg.save(out, "corpus.yaml")
    n_shards = math.ceil(cfg.clips / cfg.shard_size)
    todo = [s for s in range(n_shards) if not (out / f"shard-{s:05d}.npy").is_file()]
    if len(todo) < n_shards:
        logger.info("corpus: %d of %d shards already rendered, resuming", n_shards - len(todo), n_shards)
    cfg_dict = cfg.model_dump(mode="json")
    workers = min(worker_count(cfg.workers), max(1, len(todo)))
    with progress_bar("corpus: render", total=len(todo) * cfg.shard_size, unit="clip") as bar:
        jobs = [(cfg_dict, s, s * cfg.shard_size) for s in todo]
        run_bounded(_render_shard, jobs, workers, lambda _: bar.advance(cfg.shard_size))
    return write_index(cfg)


def write_index(cfg: CorpusConfig) -> Path:
    """``clips.csv`` for the whole corpus (cheap: the plan is re-derived from the seed, no pixels drawn)."""
    path = Path(cfg.out) / "clips.csv"
    drawn: dict[int, list[str]] = {}
    for record in sorted(Path(cfg.out).glob("shard-*.csv")):  # absent for shards rendered before records existed
        with open(record, newline="") as handle:  # older records lack the later fields: left empty
            drawn.update({int(row[0]): (row[1:] + [""] * len(DRAWN_FIELDS))[: len(DRAWN_FIELDS)]
                          for row in csv.reader(handle)})
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CLIP_FIELDS)
        for index in range(cfg.clips):
            label, split, actor = clip_split(cfg, index)
            writer.writerow([index, label, MOTION_NAMES[label], split, actor, *drawn.get(index, [""] * len(DRAWN_FIELDS)),
                             index // cfg.shard_size, index % cfg.shard_size])
    os.replace(tmp, path)
    return path


class CorpusDataset(torch.utils.data.Dataset):
    """Clips of one split of a rendered corpus: ``(uint8 [T, 3, S, S], label)``, memory-mapped."""

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        self.cfg = CorpusConfig.from_yaml(self.root / "corpus.yaml")
        self.label_names = list(MOTION_NAMES)
        with open(self.root / "clips.csv", newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["split"] == split]
        if not rows:
            raise DatasetError(f"{self.root}: no {split} clips")
        self.shards = np.array([int(r["shard"]) for r in rows])
        self.rows = np.array([int(r["row"]) for r in rows])
        self.labels = np.array([int(r["label"]) for r in rows])
        self._arrays: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.labels)

    def _shard(self, shard: int) -> np.ndarray:
        if shard not in self._arrays:
            self._arrays[shard] = np.load(self.root / f"shard-{shard:05d}.npy", mmap_mode="r")
        return self._arrays[shard]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        clip = np.array(self._shard(int(self.shards[i]))[int(self.rows[i])])
        return torch.from_numpy(clip), int(self.labels[i])

    def __getstate__(self) -> dict[str, Any]:  # memory maps are reopened in each worker
        state = dict(self.__dict__)
        state["_arrays"] = {}
        return state


def write_corpus_preview(cfg: CorpusConfig, out: Path, per_class: int = 4, frames: int = 6) -> Path:
    """A contact sheet: ``per_class`` clips of every class (rows), ``frames`` frames each, as rendered."""
    tile = cfg.size
    n = len(MOTIONS)
    sheet = Image.new("RGB", (110 + tile * frames * per_class, tile * n), "white")
    draw = ImageDraw.Draw(sheet)
    for label in range(n):
        for k in range(per_class):
            clip, _ = render_corpus_clip(cfg, label + k * n * 3)
            picks = np.linspace(0, cfg.frames - 1, frames).astype(int)
            for c, f in enumerate(picks):
                sheet.paste(Image.fromarray(clip[f].transpose(1, 2, 0)), (110 + (k * frames + c) * tile, label * tile))
        draw.text((4, label * tile + tile // 2 - 6), MOTION_NAMES[label], fill="black")
    sheet.save(out)
    return out


__all__ = ["CorpusConfig", "CorpusDataset", "build_corpus", "render_corpus_clip", "write_corpus_preview"]
