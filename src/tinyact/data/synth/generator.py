"""Generate a synthetic human-action dataset as real H.264 files in the Kinetics-400 CVDF layout.

Output (read back by :mod:`tinyact.data.layouts` exactly like a Kinetics copy)::

    OUT/
      train/<youtube_id>_<start:06d>_<end:06d>.mp4
      val/…  test/…
      annotations/train.csv    label,youtube_id,time_start,time_end,split,actor,scene,fps,frames
      annotations/val.csv  annotations/test.csv
      preview.png              one row of frames per class, decoded back from the files
      synth_config.yaml        the resolved SynthConfig

Actors are split like people in a real benchmark: the actors of ``test`` never appear in ``train`` or ``val``.
Every clip draws its own random generator from ``(seed, clip index)``, so the output does not depend on the
number of worker processes.
"""

from __future__ import annotations

import csv
import logging
import math
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field, model_validator

from tinyact.config import TinyActConfig
from tinyact.console import progress_bar
from tinyact.data.encode import encode_video
from tinyact.data.synth.actions import ACTION_NAMES, Style, pose_at
from tinyact.data.synth.figure import Actor, draw_figure
from tinyact.data.synth.scene import Camera, make_background
from tinyact.parallel import process_pool, worker_count

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
ANNOTATION_FIELDS = ["label", "youtube_id", "time_start", "time_end", "split", "actor", "scene", "fps", "frames"]
_YT_ALPHABET = string.ascii_letters + string.digits + "-_"


class SynthConfig(TinyActConfig):
    """What ``tinyact data synth`` generates."""

    out: Path = Field(..., title="Output folder")
    classes: int = Field(10, ge=2, le=len(ACTION_NAMES), title="Number of action classes")
    clips_per_class: int = Field(20, ge=3, title="Clips per class (all splits)")
    seed: int = Field(0, title="Random seed")
    size: int = Field(128, ge=32, le=1080, title="Frame height (px)", description="frames are 4:3, width rounded to even")
    min_seconds: float = Field(2.0, gt=0, title="Shortest clip (s)")
    max_seconds: float = Field(4.0, gt=0, title="Longest clip (s)")
    fps_choices: list[int] = Field([15, 24, 25, 30], min_length=1, title="Frame rates to draw from")
    actors: int = Field(20, ge=3, title="Distinct actors", description="split between train/val/test like the clips")
    split_fractions: tuple[float, float, float] = Field((0.6, 0.2, 0.2), title="train/val/test fractions")
    noise_max: float = Field(5.0, ge=0, title="Max sensor noise sigma (grey levels)")
    jitter_px: float = Field(1.5, ge=0, title="Camera shake (px at 128 px height)")
    clutter_max: int = Field(5, ge=0, title="Max clutter objects per background")
    workers: int = Field(0, ge=0, title="Worker processes", description="0 = one per CPU core")

    @model_validator(mode="after")
    def _check(self) -> SynthConfig:
        if self.max_seconds < self.min_seconds:
            raise ValueError("max_seconds must be >= min_seconds")
        if abs(sum(self.split_fractions) - 1.0) > 1e-6:
            raise ValueError("split_fractions must sum to 1")
        return self


@dataclass(frozen=True)
class ClipPlan:
    """Everything needed to render one clip (picklable, sent to a worker)."""

    index: int
    label_index: int
    split: str
    actor_id: int
    youtube_id: str
    time_start: int


def split_counts(total: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Split ``total`` items into train/val/test counts, each at least 1."""
    val = max(1, round(total * fractions[1]))
    test = max(1, round(total * fractions[2]))
    return total - val - test, val, test


def actor_pools(num_actors: int, fractions: tuple[float, float, float]) -> dict[str, list[int]]:
    """Disjoint actor ids per split."""
    n_train, n_val, _ = split_counts(num_actors, fractions)
    ids = list(range(num_actors))
    return {"train": ids[:n_train], "val": ids[n_train : n_train + n_val], "test": ids[n_train + n_val :]}


def plan_dataset(cfg: SynthConfig) -> list[ClipPlan]:
    """Decide label, split, actor and file name of every clip (deterministic for ``cfg.seed``)."""
    rng = np.random.default_rng([cfg.seed, 1])
    pools = actor_pools(cfg.actors, cfg.split_fractions)
    counts = dict(zip(SPLITS, split_counts(cfg.clips_per_class, cfg.split_fractions), strict=True))
    plans: list[ClipPlan] = []
    used_ids: set[str] = set()
    for label_index in range(cfg.classes):
        for split in SPLITS:
            for k in range(counts[split]):
                pool = pools[split]
                actor = pool[(k + label_index) % len(pool)] if k < len(pool) else int(rng.choice(pool))
                youtube_id = "".join(rng.choice(list(_YT_ALPHABET), size=11))
                while youtube_id in used_ids:
                    youtube_id = "".join(rng.choice(list(_YT_ALPHABET), size=11))
                used_ids.add(youtube_id)
                plans.append(ClipPlan(len(plans), label_index, split, actor, youtube_id, int(rng.integers(0, 600))))
    return plans


def render_clip(cfg: SynthConfig, plan: ClipPlan, min_seconds: float = 0.0) -> tuple[list[np.ndarray], float, str]:
    """Render one clip: ``(frames [H, W, 3] uint8, fps, scene kind)``.

    ``min_seconds`` asks for a longer take of the same plan (actor, action, frame rate): what a camera watching
    that person would see (the demo's cameras); its scene and camera draws then differ from the clip's.
    """
    rng = np.random.default_rng([cfg.seed, 2, plan.index])
    height = cfg.size
    width = int(round(height * 4 / 3 / 2)) * 2
    fps = float(rng.choice(cfg.fps_choices))
    seconds = max(float(rng.uniform(cfg.min_seconds, cfg.max_seconds)), min_seconds)
    num_frames = max(2, int(round(seconds * fps)))
    jitter = cfg.jitter_px * height / 128
    camera = Camera.sample(rng, height, width, num_frames, jitter, cfg.noise_max)
    margin = camera.margin
    background, scene = make_background(rng, height + 2 * margin, width + 2 * margin, cfg.clutter_max)
    actor = Actor.sample(plan.actor_id, cfg.seed)
    style = Style.sample(rng)
    speed = float(rng.uniform(0.75, 1.3))
    phase0 = float(rng.uniform(0, 2 * math.pi))
    figure_height = float(rng.uniform(0.5, 0.72)) * height
    ground = float(rng.uniform(0.88, 0.96)) * height + margin
    name = ACTION_NAMES[plan.label_index]
    if name.startswith("walking"):
        # Start on the side the figure walks away from, and keep the whole walk inside the frame.
        travel_px = style.walk_speed * seconds * speed * figure_height
        if travel_px > 0.6 * width:
            style = Style(style.amplitude, style.side, style.walk_speed * 0.6 * width / travel_px)
            travel_px = 0.6 * width
        direction = 1 if name == "walking right" else -1
        centre = width / 2 - direction * travel_px / 2 + rng.uniform(-0.05, 0.05) * width
    else:
        centre = float(rng.uniform(0.3, 0.7)) * width
    frames = []
    for i in range(num_frames):
        t = i / fps
        canvas = background.copy()
        pose = pose_at(plan.label_index, t, speed, phase0, style)
        draw_figure(ImageDraw.Draw(canvas), actor, pose, (centre + margin, ground), figure_height, shade=1.0)
        frames.append(camera.expose(canvas, i, t, height, width))
    return frames, fps, scene


def clip_path(root: Path, plan: ClipPlan, seconds: int) -> Path:
    """``root/<split>/<youtube_id>_<start:06d>_<end:06d>.mp4`` (CVDF naming)."""
    return root / plan.split / f"{plan.youtube_id}_{plan.time_start:06d}_{plan.time_start + seconds:06d}.mp4"


def _write_clip(args: tuple[SynthConfig, ClipPlan]) -> dict[str, str | int]:
    cfg, plan = args
    frames, fps, scene = render_clip(cfg, plan)
    seconds = max(1, int(math.ceil(len(frames) / fps)))
    path = clip_path(cfg.out, plan, seconds)
    encode_video(path, frames, fps)
    return {
        "label": ACTION_NAMES[plan.label_index],
        "youtube_id": plan.youtube_id,
        "time_start": plan.time_start,
        "time_end": plan.time_start + seconds,
        "split": plan.split,
        "actor": plan.actor_id,
        "scene": scene,
        "fps": int(fps),
        "frames": len(frames),
    }


def generate(cfg: SynthConfig) -> dict[str, int]:
    """Write the dataset described by ``cfg``; returns clips per split. Existing clips are overwritten."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "synth_config.yaml").unlink(missing_ok=True)  # written last: it marks a complete dataset
    plans = plan_dataset(cfg)
    workers = worker_count(cfg.workers)
    rows: list[dict[str, str | int]] = []
    with progress_bar("synth: render + encode", total=len(plans), unit="clip") as bar:
        if workers == 1:
            for plan in plans:
                rows.append(_write_clip((cfg, plan)))
                bar.advance()
        else:
            with process_pool(workers) as pool:
                for row in pool.map(_write_clip, [(cfg, p) for p in plans], chunksize=4):
                    rows.append(row)
                    bar.advance()
    annotations = cfg.out / "annotations"
    annotations.mkdir(exist_ok=True)
    counts = {}
    for split in SPLITS:
        split_rows = [r for r in rows if r["split"] == split]
        counts[split] = len(split_rows)
        with open(annotations / f"{split}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=ANNOTATION_FIELDS)
            writer.writeheader()
            writer.writerows(split_rows)
    write_preview(cfg.out, rows, cfg.out / "preview.png")
    cfg.save(cfg.out, "synth_config.yaml")  # last, so an interrupted run is never taken for a finished one
    logger.info("synth: wrote %d clips (%s) to %s", len(rows), counts, cfg.out)
    return counts


def write_preview(root: Path, rows: list[dict[str, str | int]], out: Path, frames_per_row: int = 6) -> Path:
    """Contact sheet: for each class, ``frames_per_row`` frames of its first train clip, decoded back through
    the real reading path (so the sheet also proves the files decode)."""
    from tinyact.data.video import ClipSampling, read_clip

    first: dict[str, dict[str, str | int]] = {}
    for row in rows:
        if row["split"] == "train":
            first.setdefault(str(row["label"]), row)
    labels = [name for name in ACTION_NAMES if name in first]
    tile = 96
    label_w = 130
    sheet = Image.new("RGB", (label_w + tile * frames_per_row, tile * len(labels)), "white")
    draw = ImageDraw.Draw(sheet)
    sampling = ClipSampling(num_frames=frames_per_row, size=tile)
    for r, label in enumerate(labels):
        row = first[label]
        path = root / "train" / f"{row['youtube_id']}_{int(row['time_start']):06d}_{int(row['time_end']):06d}.mp4"
        clip = read_clip(path, sampling)  # [T, 3, S, S]
        for c in range(frames_per_row):
            image = Image.fromarray(clip[c].permute(1, 2, 0).numpy())  # [3, S, S] -> [S, S, 3]
            sheet.paste(image, (label_w + c * tile, r * tile))
        draw.text((6, r * tile + tile // 2 - 6), label, fill="black")
    sheet.save(out)
    return out
