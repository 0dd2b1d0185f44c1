"""PNG contact sheet comparing reconstructions: one row per clip, one column per method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


def save_grid(columns: dict[str, torch.Tensor], out: str | Path, frame_index: int | None = None, scale: int = 2) -> Path:
    """Write a grid of frames: ``columns`` maps a title to clips ``[K, T, 3, H, W]`` in ``[0, 1]`` (same K, T, H, W
    for all); each cell is frame ``frame_index`` (default: the middle one) enlarged ``scale``× (nearest)."""
    if not columns:
        raise ValueError("no columns to draw")
    first = next(iter(columns.values()))
    rows, frames, _, h, w = first.shape
    t = frames // 2 if frame_index is None else frame_index
    cell_w, cell_h = w * scale, h * scale
    header = 18
    pad = 4
    sheet = Image.new("RGB", (len(columns) * (cell_w + pad) + pad, header + rows * (cell_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (title, clips) in enumerate(columns.items()):
        x0 = pad + c * (cell_w + pad)
        # PIL's default bitmap font is ASCII-only: spell out the Greek letters of defence names.
        label = title.replace("σ", "s")[: max(4, cell_w // 6)]
        draw.text((x0, 3), label, fill="black")
        for r in range(rows):
            frame = clips[r, t].clamp(0, 1).permute(1, 2, 0).mul(255).round().to(torch.uint8).numpy()  # [3,H,W]->[H,W,3]
            image = Image.fromarray(np.ascontiguousarray(frame)).resize((cell_w, cell_h), Image.Resampling.NEAREST)
            sheet.paste(image, (x0, header + pad + r * (cell_h + pad)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
