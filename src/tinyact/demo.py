"""``tinyact demo``: run the whole TinyAct path on this machine with embedded defaults.

Each step reuses what an earlier run left in the data directory (generated videos, manifest, cache), so a
second run is quick. Steps so far::

    synthetic videos (Kinetics layout) -> balanced manifest -> clip cache -> summary table + summary.json
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pydantic import Field

from tinyact.config import TinyActConfig
from tinyact.data.cache import ClipCache, build_cache
from tinyact.data.datasets import ClipDataset
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import SPLITS, Manifest, balance
from tinyact.data.synth import SynthConfig, generate
from tinyact.data.video import ClipSampling
from tinyact.paths import data_home

logger = logging.getLogger(__name__)


class DemoConfig(TinyActConfig):
    """Settings of ``tinyact demo``."""

    data: Path = Field(default_factory=lambda: data_home() / "synth", title="Synthetic dataset folder")
    out: Path = Field(default_factory=lambda: data_home() / "demo", title="Run folder (summary.json)")
    classes: int = Field(10, ge=2, le=12)
    clips_per_class: int = Field(20, ge=3)
    video_size: int = Field(128, ge=32, title="Height of generated videos (px)")
    clip_size: int = Field(112, ge=16, title="Clip crop size fed to the encoder (px)")
    seed: int = 0


def ensure_dataset(cfg: DemoConfig) -> Manifest:
    """Generate the synthetic set if it is missing (or was made with other settings) and return its
    balanced manifest."""
    synth_cfg = SynthConfig(
        out=cfg.data, classes=cfg.classes, clips_per_class=cfg.clips_per_class, size=cfg.video_size, seed=cfg.seed
    )
    saved = cfg.data / "synth_config.yaml"
    if not saved.exists() or saved.read_text() != synth_cfg.to_yaml():
        logger.info("demo: generating %d classes x %d clips in %s", cfg.classes, cfg.clips_per_class, cfg.data)
        generate(synth_cfg)
    manifest_path = cfg.data / "manifest.csv"
    entries, _ = read_kinetics(cfg.data)
    manifest = Manifest(balance(entries, seed=cfg.seed), cfg.data.resolve())
    manifest.write(manifest_path)
    return Manifest.read(manifest_path)


def run_demo(cfg: DemoConfig) -> dict:
    """Run the demo steps and return the summary (also written to ``cfg.out/summary.json``)."""
    cfg.save(cfg.out)
    started = time.perf_counter()
    manifest = ensure_dataset(cfg)
    sampling = ClipSampling(size=cfg.clip_size, num_frames=16)
    cache_dir = cfg.data / f"cache-{cfg.clip_size}"
    t0 = time.perf_counter()
    build = build_cache(manifest, cache_dir, sampling)
    decode_s = time.perf_counter() - t0
    cache = ClipCache(cache_dir)
    dataset = ClipDataset(manifest, sampling, cache=cache)
    t0 = time.perf_counter()
    shapes = {tuple(dataset[i][0].shape) for i in range(len(dataset)) if dataset[i] is not None}
    read_s = time.perf_counter() - t0
    counts = manifest.class_counts()
    summary = {
        "classes": manifest.label_names,
        "clips_per_split": {split: sum(counts.get(split, {}).values()) for split in SPLITS},
        "clip_shape": [list(s) for s in sorted(shapes)],
        "cache_clips": len(cache),
        "skipped": len(cache.skipped),
        "decode_clips_per_s": round(build.cached / decode_s, 1) if build.cached else None,
        "cache_read_clips_per_s": round(len(dataset) / read_s, 1),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
