"""Files the agent writes beside its database: snapshots for the local page, ``status.json``, and their retention.

Readers (the page, ``tinyact edge status``) may open these files at any moment, so every one is written to a
temporary name and renamed over the old one: a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np

from tinyact.paths import atomic_write_bytes


def write_jpeg(path: Path, rgb: np.ndarray, quality: int = 80) -> int:
    """Write an RGB ``[h, w, 3]`` image atomically (readers never see half a file); returns its size."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    atomic_write_bytes(path, buffer.getvalue())
    return path.stat().st_size


def enforce_retention(folder: Path, max_age_s: float, max_bytes: float, now: float | None = None) -> tuple[int, int]:
    """Delete files under ``folder`` older than ``max_age_s``, then the oldest until the rest take at most
    ``max_bytes``. Returns ``(files deleted, bytes kept)``."""
    now = time.time() if now is None else now
    files = []
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            files.append((st.st_mtime, st.st_size, path))
    files.sort()
    deleted = 0
    total = sum(size for _, size, _ in files)
    for mtime, size, path in files:
        if now - mtime <= max_age_s and total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        deleted += 1
    return deleted, total
