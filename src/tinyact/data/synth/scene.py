"""Scene variation for synthetic clips: backgrounds, clutter, lighting, camera jitter and sensor noise.

Everything here is per clip and drawn from the clip's own random generator, so a dataset is reproducible
for a seed whatever the number of worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from tinyact.data.synth.figure import _hsv_to_rgb

BACKGROUND_KINDS = ["plain", "gradient", "blotches", "stripes", "checker", "tiles"]


def _random_colour(rng: np.random.Generator, sat: tuple[float, float] = (0.1, 0.7), val: tuple[float, float] = (0.3, 0.95)):
    return np.array(_hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val)), dtype=np.float32)


def make_background(rng: np.random.Generator, height: int, width: int, clutter_max: int) -> tuple[Image.Image, str]:
    """A textured, cluttered background image ``height × width`` and the name of its texture kind."""
    kind = BACKGROUND_KINDS[rng.integers(len(BACKGROUND_KINDS))]
    a, b = _random_colour(rng), _random_colour(rng)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "plain":
        weight = np.zeros((height, width), np.float32)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        proj = xx * np.cos(angle) + yy * np.sin(angle)
        weight = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
    elif kind == "blotches":
        small = rng.random((rng.integers(3, 7), rng.integers(3, 7))).astype(np.float32)
        weight = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC),
                            np.float32) / 255.0
    elif kind == "stripes":
        period = rng.uniform(0.06, 0.2) * height
        angle = rng.uniform(0, np.pi)
        weight = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    elif kind == "checker":
        cell = max(2, int(rng.uniform(0.06, 0.18) * height))
        weight = (((xx // cell) + (yy // cell)) % 2).astype(np.float32)
    else:  # tiles: a grid of lines on a plain wall
        cell = max(3, int(rng.uniform(0.08, 0.2) * height))
        weight = (((xx % cell) < 1) | ((yy % cell) < 1)).astype(np.float32)
    contrast = rng.uniform(0.2, 0.8)
    image = a[None, None, :] * (1 - contrast * weight[..., None]) + b[None, None, :] * contrast * weight[..., None]
    # A floor: the lower part of the frame in its own colour.
    floor_y = int(height * rng.uniform(0.7, 0.9))
    image[floor_y:] = image[floor_y:] * 0.4 + _random_colour(rng, val=(0.2, 0.7)) * 0.6
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, clutter_max + 1))):  # furniture, plants, posters
        w, h = rng.uniform(0.05, 0.3) * width, rng.uniform(0.05, 0.45) * height
        x0, y0 = rng.uniform(-0.1, 1.0) * width, rng.uniform(0.0, 0.9) * height
        fill = tuple(int(c) for c in _random_colour(rng))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=fill)
        else:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=fill)
    return canvas, kind


@dataclass
class Camera:
    """Lighting, shake and noise of one clip, applied to each rendered frame."""

    gain: float
    tint: np.ndarray  # [3]
    light_map: np.ndarray  # [H, W, 1], spatial falloff of the light
    flicker: float
    flicker_rate: float
    shake: np.ndarray  # [num_frames, 2] integer pixel offsets
    margin: int
    noise_bank: np.ndarray  # [K, H, W, 3] int16
    rng: np.random.Generator

    @classmethod
    def sample(
        cls, rng: np.random.Generator, height: int, width: int, num_frames: int, jitter_px: float, noise_max: float
    ) -> Camera:
        margin = int(np.ceil(jitter_px)) + 1
        # Camera shake: a smoothed random walk, pulled back towards the centre.
        steps = rng.normal(0, jitter_px * 0.35, size=(num_frames, 2))
        shake = np.zeros((num_frames, 2))
        for i in range(1, num_frames):
            shake[i] = 0.85 * shake[i - 1] + steps[i]
        shake = np.clip(np.round(shake), -margin, margin).astype(int)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        cx, cy = rng.uniform(0, width), rng.uniform(-0.3, 0.7) * height
        dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / max(height, width)
        light_map = (1.0 - rng.uniform(0.0, 0.45) * np.clip(dist, 0, 1))[..., None]
        sigma = rng.uniform(0, noise_max)
        noise_bank = np.round(rng.normal(0, sigma, size=(4, height, width, 3))).astype(np.int16)
        return cls(
            gain=float(rng.uniform(0.65, 1.25)),
            tint=rng.uniform(0.88, 1.12, size=3).astype(np.float32),
            light_map=light_map.astype(np.float32),
            flicker=float(rng.uniform(0, 0.06)),
            flicker_rate=float(rng.uniform(0.2, 2.0)),
            shake=shake,
            margin=margin,
            noise_bank=noise_bank,
            rng=rng,
        )

    def expose(self, canvas: Image.Image, index: int, t: float, height: int, width: int) -> np.ndarray:
        """Crop the shaken view out of the rendered ``canvas`` and apply light and noise -> uint8 ``[H, W, 3]``."""
        dx, dy = self.shake[index]
        x0, y0 = self.margin + dx, self.margin + dy
        view = np.asarray(canvas)[y0 : y0 + height, x0 : x0 + width].astype(np.float32)  # the margin is never seen
        gain = self.gain * (1.0 + self.flicker * np.sin(2 * np.pi * self.flicker_rate * t))
        lit = view * (self.light_map * (self.tint * gain))
        noise = self.noise_bank[self.rng.integers(len(self.noise_bank))]
        shift = int(self.rng.integers(0, width))
        return np.clip(lit + np.roll(noise, shift, axis=1), 0, 255).astype(np.uint8)
