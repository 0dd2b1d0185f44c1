"""The pretraining corpus (``tinyact data synth --profile pretrain``): tens of thousands of short clips of 25
everyday actions, rendered in the styles real cameras give, stored as ready-to-train uint8 shards.

Where the 12-class benchmark set (:mod:`tinyact.data.synth.generator`) writes H.264 files for the whole data
path to read, this corpus exists to teach an encoder what human motion looks like before it meets a user's
cameras, so it aims at *variety*:

* bodies: proportions, limb thickness, clothes; side, three-quarter and front views; the person at 15–90 % of
  the frame height anywhere in the frame, entering and leaving; occluders; sometimes a second person;
* rendering styles: textured RGB, greyscale, low-contrast infrared-like, binary foreground masks (what
  background-subtracting and privacy cameras give), inverted masks; blur, sensor noise, JPEG compression;
  64–224 px canvases of several aspect ratios; 10–30 fps; static, panning and zooming cameras; light changes.

Only the ``frames`` instants a clip is sampled at are drawn — segment centres, as ``ClipSampling("uniform")``
picks them from a video, or with ``sample_fps`` a window of frames at a real rate, as an edge camera grabs
them at its ``capture_fps`` and ``ClipSampling("multi", sample_fps=...)`` reads files — then resized by the
same function the cache and the cameras use (:func:`tinyact.data.transforms.resize_short_side_center_crop`).
Writing the corpus to disk and reading it back for training: :mod:`tinyact.data.synth.corpus_files`.

Every clip draws its random generator from ``(seed, clip index)``, so the corpus is the same for any number of
workers, and a build that stops resumes at the first missing shard.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from pydantic import Field, model_validator

from tinyact.config import TinyActConfig
from tinyact.data.synth.actions import Style
from tinyact.data.synth.figure import Actor, Pose, draw_figure
from tinyact.data.synth.motions import MOTION_NAMES, MOTIONS, Motion, apply_view, grounded, pose_of
from tinyact.data.synth.scene import make_background
from tinyact.data.transforms import resize_short_side_center_crop

logger = logging.getLogger(__name__)

RenderStyle = Literal["rgb", "grey", "ir", "mask"]
STYLES: tuple[RenderStyle, ...] = ("rgb", "grey", "ir", "mask")
VIEWS = {"side": 1.0, "three-quarter": 0.5, "front": 0.0}
BYSTANDER = MOTIONS[MOTION_NAMES.index("standing")]  # what a second person in the scene does
CLIP_FIELDS = ["index", "label", "label_name", "split", "actor", "style", "view", "camera", "person_area", "shard",
               "row"]
DRAWN_FIELDS = ["style", "view", "camera", "person_area"]  # what a shard's record holds after each clip's index


class CorpusConfig(TinyActConfig):
    """What ``tinyact data synth --profile pretrain`` renders."""

    out: Path = Field(..., title="Output folder")
    clips: int = Field(20000, ge=1, title="Clips in all (classes are balanced)")
    seed: int = Field(0, title="Random seed")
    size: int = Field(64, ge=16, le=256, title="Stored frame size (px, square)")
    frames: int = Field(16, ge=2, le=64, title="Frames per clip")
    actors: int = Field(240, ge=3, title="Distinct actors")
    val_actors: float = Field(0.1, gt=0, lt=0.5, title="Share of actors kept for validation")
    test_actors: float = Field(0.1, gt=0, lt=0.5, title="Share of actors kept for test")
    min_canvas: int = Field(64, ge=32, title="Smallest rendered frame height (px)")
    max_canvas: int = Field(224, ge=32, title="Largest rendered frame height (px)")
    style_weights: dict[str, float] = Field({"rgb": 0.35, "grey": 0.15, "ir": 0.15, "mask": 0.35},
                                            title="How often each rendering style is drawn")
    motion_variants: float = Field(0.5, ge=0, le=1, title="Share of clips of a class with two ways of doing it "
                                   "(a kick to the side or forward) drawn the other way")
    sample_fps: tuple[float, float] | None = Field(
        None, title="Rate range of a clip's frames (Hz)",
        description="None: the frames are spread over the whole clip (uniform sampling, as the first two stages of "
        "everyday-64 were rendered); (lo, hi): a window of consecutive frames at a rate drawn from the range "
        "(dense sampling, what an edge camera grabs at its capture_fps), so a clip's apparent speed is real")
    shard_size: int = Field(500, ge=1, title="Clips per shard file")
    workers: int = Field(0, ge=0, title="Worker processes (0 = one per core)")

    @model_validator(mode="after")
    def _check_rates(self) -> CorpusConfig:
        if self.sample_fps is not None and not 0 < self.sample_fps[0] <= self.sample_fps[1]:
            raise ValueError(f"sample_fps must be (lo, hi) with 0 < lo <= hi, got {self.sample_fps}")
        return self

    def split_of_actor(self, actor: int) -> str:
        n_test = max(1, round(self.actors * self.test_actors))
        n_val = max(1, round(self.actors * self.val_actors))
        if actor >= self.actors - n_test:
            return "test"
        return "val" if actor >= self.actors - n_test - n_val else "train"


@dataclass(frozen=True)
class ClipInfo:
    """What was drawn for one clip (a row of ``clips.csv``)."""

    index: int
    label: int
    split: str
    actor: int
    style: str
    view: str
    camera: str
    person_area: float = float("nan")  # % of the clip's frames the person's unoccluded body covers, mean over time


def clip_split(cfg: CorpusConfig, index: int) -> tuple[int, str, int]:
    """``(label, split, actor)`` of clip ``index``: labels cycle so every block of classes is balanced, and
    actors are drawn from the pool of the clip's split (test actors never appear in train)."""
    n_classes = len(MOTIONS)
    label = index % n_classes
    rng = np.random.default_rng([cfg.seed, 1, index])
    block = index // n_classes
    # Whole blocks of one clip per class go to a split, so every split stays balanced over classes.
    slot = block % 20
    n_test = max(1, round(20 * cfg.test_actors))
    n_val = max(1, round(20 * cfg.val_actors))
    split = "test" if slot < n_test else "val" if slot < n_test + n_val else "train"
    pool = [a for a in range(cfg.actors) if cfg.split_of_actor(a) == split]
    return label, split, int(rng.choice(pool))


def sample_actor(actor_id: int, seed: int) -> Actor:
    """A corpus actor: wider proportions and limb thickness than the benchmark set's people."""
    rng = np.random.default_rng([seed, 11, actor_id])
    base = Actor.sample(actor_id, seed)
    scale = rng.uniform(0.85, 1.15, size=5)
    return replace(
        base,
        upper_arm=0.16 * scale[0], forearm=0.15 * scale[1], thigh=0.23 * scale[2], shin=0.22 * scale[3],
        torso=0.30 * scale[4],
        shoulder_width=float(rng.uniform(0.14, 0.28)), hip_width=float(rng.uniform(0.10, 0.20)),
        head_radius=float(rng.uniform(0.05, 0.085)), limb_thickness=float(rng.uniform(0.035, 0.09)),
    )


def _viewed_actor(actor: Actor, sideness: float) -> Actor:
    """Seen from the side a body is narrower: shoulders and hips shrink towards the side view."""
    narrow = 1.0 - 0.6 * sideness
    return replace(actor, shoulder_width=actor.shoulder_width * narrow, hip_width=actor.hip_width * narrow)


def _hot_actor(actor: Actor, rng: np.random.Generator) -> Actor:
    """Infrared-like: the body is brighter than the scene, in grey levels with little contrast between parts."""
    def hot() -> tuple[int, int, int]:
        v = int(rng.uniform(150, 250))
        return (v, v, v)

    return replace(actor, skin=hot(), shirt=hot(), pants=hot(), shoes=hot())


def _mask_actor(actor: Actor) -> Actor:
    white = (255, 255, 255)
    return replace(actor, skin=white, shirt=white, pants=white, shoes=white)


def _sample_times(
    rng: np.random.Generator, cfg: CorpusConfig, motion: Motion, index: int
) -> tuple[np.ndarray, float, float]:
    """The ``cfg.frames`` instants (seconds) drawn from a clip, its duration and frame rate."""
    fps = float(rng.uniform(10, 30))
    duration = float(rng.uniform(1.5, 4.0) if motion.rate == 0 else rng.uniform(1.5, 5.0))
    if cfg.sample_fps is None:
        times = (np.arange(cfg.frames) + 0.5) * duration / cfg.frames  # segment centres
    else:
        # Own random stream, so corpora rendered without sample_fps stay bit for bit what they were.
        window_rng = np.random.default_rng([cfg.seed, 5, index])
        rate = float(window_rng.uniform(*cfg.sample_fps))
        window = (cfg.frames - 1) / rate
        duration = max(duration, window + 1.0 / fps)
        start = float(window_rng.uniform(0.0, max(0.0, duration - window - 1.0 / fps)))
        times = start + np.arange(cfg.frames) / rate
    return np.floor(times * fps) / fps, duration, fps  # the frame on screen at each instant


def render_corpus_clip(cfg: CorpusConfig, index: int) -> tuple[np.ndarray, ClipInfo]:
    """Render clip ``index`` -> uint8 ``[T, 3, S, S]`` and what was drawn."""
    label, split, actor_id = clip_split(cfg, index)
    motion = MOTIONS[label]
    if np.random.default_rng([cfg.seed, 4, index]).random() < cfg.motion_variants:  # own stream: 0 keeps old corpora
        motion = motion.as_variant()
    rng = np.random.default_rng([cfg.seed, 2, index])
    weights = np.array([cfg.style_weights.get(s, 0.0) for s in STYLES], dtype=float)
    style_kind: RenderStyle = STYLES[int(rng.choice(len(STYLES), p=weights / weights.sum()))]

    # Canvas: any height in range, one of the usual aspect ratios.
    height = int(rng.integers(cfg.min_canvas, cfg.max_canvas + 1)) // 2 * 2
    aspect = float(rng.choice([1.0, 4 / 3, 5 / 4, 16 / 9]))
    width = max(2, int(round(height * aspect / 2)) * 2)
    times, duration, fps = _sample_times(rng, cfg, motion, index)

    view_name = str(rng.choice(list(VIEWS), p=[0.6, 0.25, 0.15] if motion.travel and not motion.frontal_travel
                               else [0.34, 0.33, 0.33]))
    sideness = float(np.clip(VIEWS[view_name] + rng.uniform(-0.15, 0.15), 0.0, 1.0))
    if motion.frontal_travel:
        sideness = min(sideness, 0.3)  # gallop sideways is done facing the camera
    actor = _viewed_actor(sample_actor(actor_id, cfg.seed), sideness)
    style = Style(amplitude=float(rng.uniform(0.8, 1.2)), side=int(rng.integers(2)), walk_speed=0.3)
    speed = float(rng.uniform(0.75, 1.3))
    phase0 = float(rng.uniform(0, 2 * math.pi))

    # Where the person is: 15-90 % of the frame height, anywhere; walkers cross (and may enter or leave).
    fig = float(rng.uniform(0.15, 0.9)) * height
    ground = float(rng.uniform(min(fig + 0.03 * height, 0.98 * height), 0.99 * height))
    travel_speed = motion.travel * speed * fig * (sideness if not motion.frontal_travel else 1.0)
    travel = travel_speed * duration
    centre = float(rng.uniform(0.2, 0.8)) * width
    start_x = centre - travel / 2
    drift = rng.normal(0, 0.02 * width) if not motion.travel else 0.0
    depth_rate = motion.travel * speed * (1.0 - sideness) * 0.08 * (1 if rng.random() < 0.5 else -1)

    # Camera: static, panning or zooming, drawn as a moving crop of a larger canvas.
    camera = str(rng.choice(["static", "pan", "zoom"], p=[0.6, 0.25, 0.15]))
    margin = 1.25
    big_h, big_w = int(height * margin) // 2 * 2, int(width * margin) // 2 * 2
    off_x, off_y = (big_w - width) / 2, (big_h - height) / 2

    if style_kind == "mask":
        background = Image.new("RGB", (big_w, big_h), (0, 0, 0))
        person = _mask_actor(actor)
    else:
        background, _ = make_background(rng, big_h, big_w, clutter_max=6)
        person = _hot_actor(actor, rng) if style_kind == "ir" else actor
        if style_kind == "ir":  # a dim, low-contrast scene
            grey = np.asarray(background.convert("L"), np.float32)
            lo = rng.uniform(20, 80)
            grey = lo + (grey - grey.min()) / max(1.0, float(np.ptp(grey))) * rng.uniform(20, 60)
            background = Image.fromarray(grey.astype(np.uint8)).convert("RGB")

    second: tuple[Actor, float, float, float] | None = None
    if rng.random() < 0.2:  # a bystander, standing
        other = sample_actor(int(rng.integers(cfg.actors)), cfg.seed + 1)
        other = _mask_actor(other) if style_kind == "mask" else _hot_actor(other, rng) if style_kind == "ir" else other
        second = (other, float(rng.uniform(0.05, 0.95)) * width, float(rng.uniform(0.15, 0.7)) * height,
                  float(rng.uniform(0.0, 2 * math.pi)))
    occluder = None
    if rng.random() < 0.2:  # a pole or a piece of furniture in front of the person
        ow = float(rng.uniform(0.03, 0.15)) * width
        ox = float(rng.uniform(0.1, 0.9)) * width
        oy = float(rng.uniform(0.0, 0.6)) * height
        fill = (0, 0, 0) if style_kind == "mask" else tuple(int(c) for c in rng.integers(0, 256, 3))
        occluder = (ox, oy, ox + ow, height * 1.1, fill)

    gain0 = float(rng.uniform(0.7, 1.2))
    ramp = float(rng.uniform(-0.4, 0.4)) if rng.random() < 0.3 else 0.0
    tint = rng.uniform(0.88, 1.12, size=3).astype(np.float32)
    noise_sigma = float(rng.uniform(0, 6)) if style_kind != "ir" else float(rng.uniform(4, 12))
    blur = float(rng.uniform(0.4, 1.4)) * height / 128 if rng.random() < (0.3 if style_kind != "ir" else 0.8) else 0.0
    jpeg = int(rng.integers(15, 80)) if rng.random() < 0.4 else 0
    invert = style_kind == "mask" and rng.random() < 0.2
    mask_filter = (ImageFilter.MaxFilter(3) if rng.random() < 0.5 else ImageFilter.MinFilter(3)) \
        if style_kind == "mask" and rng.random() < 0.4 and fig > 40 else None
    flip = rng.random() < 0.5

    out, seen = [], []
    silhouette = _mask_actor(actor)
    for t in times:
        canvas = background.copy()
        draw = ImageDraw.Draw(canvas)
        if second is not None:
            other, sx, sh, sp = second
            idle = grounded(other, apply_view(BYSTANDER.fn(sp + t, 0.0, style), BYSTANDER, 0.0))
            draw_figure(draw, other, idle, (sx + off_x, min(height, 0.6 * height + sh) + off_y), sh)
        scale = 1.0 + depth_rate * t
        pose: Pose = apply_view(pose_of(motion, t, duration, speed, phase0, style), motion, sideness)
        pose = grounded(actor, pose)
        x = start_x + travel_speed * t if motion.travel else centre + drift * t / duration
        draw_figure(draw, person, pose, (x + off_x, ground + off_y), fig * scale)
        # What of the person a viewer can see: the body alone, white on black, under the same occluder and camera.
        body = Image.new("RGB", canvas.size, (0, 0, 0))
        body_draw = ImageDraw.Draw(body)
        draw_figure(body_draw, silhouette, pose, (x + off_x, ground + off_y), fig * scale)
        if occluder is not None:
            x0, y0, x1, y1, fill = occluder
            draw.rectangle([x0 + off_x, y0 + off_y, x1 + off_x, y1 + off_y], fill=fill)
            body_draw.rectangle([x0 + off_x, y0 + off_y, x1 + off_x, y1 + off_y], fill=(0, 0, 0))
        u = t / duration
        if camera == "pan":
            box = (off_x * (2 * u), off_y, off_x * (2 * u) + width, off_y + height)
        elif camera == "zoom":
            z = 1.0 - 0.35 * u  # from the whole wide canvas towards a closer view
            cw, ch = max(big_w * z, width * 0.8), max(big_h * z, height * 0.8)
            box = ((big_w - cw) / 2, (big_h - ch) / 2, (big_w + cw) / 2, (big_h + ch) / 2)
        else:
            box = (off_x, off_y, off_x + width, off_y + height)
        frame = canvas.resize((width, height), Image.Resampling.BILINEAR, box=box)
        seen.append(np.asarray(body.resize((width, height), Image.Resampling.BILINEAR, box=box)))
        if mask_filter is not None:
            frame = frame.filter(mask_filter)
        if blur:
            frame = frame.filter(ImageFilter.GaussianBlur(blur))
        pixels = np.asarray(frame, dtype=np.float32)
        if style_kind != "mask":
            pixels = pixels * (gain0 * (1.0 + ramp * u)) * (tint if style_kind == "rgb" else 1.0)
            if style_kind != "rgb":
                pixels = pixels.mean(axis=2, keepdims=True).repeat(3, axis=2)
            pixels = pixels + rng.normal(0, noise_sigma, size=pixels.shape[:2] + (1,))  # sensor noise, grey
        elif invert:
            pixels = 255.0 - pixels
        frame_u8 = np.clip(pixels, 0, 255).astype(np.uint8)
        if jpeg:
            buffer = io.BytesIO()
            Image.fromarray(frame_u8).save(buffer, format="JPEG", quality=jpeg)
            frame_u8 = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        out.append(frame_u8)
    clip = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)  # [T, H, W, 3] -> [T, 3, H, W]
    clip = resize_short_side_center_crop(clip, cfg.size)
    if flip:
        clip = clip.flip(-1)
    body_seen = resize_short_side_center_crop(torch.from_numpy(np.stack(seen)).permute(0, 3, 1, 2), cfg.size)
    person_area = round(float((body_seen[:, 0] > 127).float().mean()) * 100, 2)
    info = ClipInfo(index, label, split, actor_id, style_kind + ("-inverted" if invert else ""), view_name, camera,
                    person_area)
    return clip.contiguous().numpy(), info
