"""The data of self-supervised training: each video's frames cached once as windows, and the random views and
augmentations cut from them every step.

::

    video ─► read_windows: W instants over the whole video (uniform), or K dense windows (multi)
          ─► build_window_cache: shards of uint8 [n, K, W, 3, S, S], readable by ClipCache, resumable
    windows [B, K, W, 3, S, S] ─► sample_views: ρ views per video, T frames at a drawn stride, maybe reversed
          ─► augment_clips: random resized crop, flip, colour jitter, greyscale (one draw per clip)

The window cache: ``W`` (default ``3·T``) instants spread evenly over each video (uniform sampling, as the
extract step takes ``T``; a video with fewer frames than ``W`` repeats frames rather than being skipped), or,
with ``windows > 1``, that many dense windows of ``W`` frames ``window_stride`` apart (long footage). A view at
stride ``s`` spans ``(T − 1)·s + 1`` window frames. With ``W = 3·T`` the probe clip — every third window frame
starting at the second — is exactly the clip ``tinyact extract`` reads (same instants, same frames).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tinyact.data.cache import decode_into_cache, write_shard
from tinyact.data.manifest import Manifest
from tinyact.data.video import ClipSampling, VideoDecodeError
from tinyact.errors import DatasetError

logger = logging.getLogger(__name__)


def read_windows(source: str | Path, sampling: ClipSampling) -> np.ndarray:
    """uint8 ``[K, W, 3, S, S]`` windows of one video.

    ``uniform``: the frames on screen at W instants spread over the whole video; a video with fewer than W
    frames repeats frames (``sample_clips`` would refuse it). ``multi``: :func:`sample_clips`' K dense windows.
    Raises :class:`VideoDecodeError` for a file that cannot be read.
    """
    from tinyact.data.transforms import prepare_frames
    from tinyact.data.video import decode_frames_at, frames_at, probe_video, sample_clips, uniform_timestamps

    if sampling.strategy != "uniform":
        return np.stack([c.frames.numpy() for c in sample_clips(source, sampling)])  # K x [W, 3, S, S]
    info = probe_video(source)
    indices = frames_at(info.frame_times, uniform_timestamps(info.start, info.end, sampling.num_frames))
    images = decode_frames_at(source, info, indices.tolist(), threads=sampling.threads)  # [W, H, W, 3]
    return prepare_frames(images, sampling.size).numpy()[None]  # [1, W, 3, S, S]


def _decode_window_chunk(args: tuple[list[tuple[str, str]], dict[str, Any], str]) -> tuple[str | None, list[str], list[tuple[str, str, str]]]:
    """Worker: decode ``(path, clip_id)`` pairs into one shard; returns (shard name, cached ids, skipped)."""
    items, sampling_dict, out_dir = args
    sampling = ClipSampling.model_validate(sampling_dict)
    arrays, ids, skipped = [], [], []
    for path, clip_id in items:
        try:
            arrays.append(read_windows(path, sampling))
            ids.append(clip_id)
        except VideoDecodeError as error:
            skipped.append((path, clip_id, error.reason))
    if not arrays:
        return None, [], skipped
    return write_shard(out_dir, np.stack(arrays)), ids, skipped  # [n, K, W, 3, S, S]


def build_window_cache(manifest: Manifest, out: str | Path, sampling: ClipSampling, workers: int = 0,
                       chunk_size: int = 16) -> Path:
    """Decode every video of ``manifest`` into windows at ``out`` (resuming a partial build).

    Same layout and resume rules as :func:`tinyact.data.cache.build_cache` (``cache.json``, ``index.csv``,
    ``skipped.csv``, ``shard-*.npy`` of ``[n, K, W, 3, S, S]``), so :class:`tinyact.data.cache.ClipCache` reads
    it; ``cache.json`` adds ``"windows": true`` because short videos repeat frames here instead of being skipped.
    """

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "cache.json"
    key = sampling.model_dump(exclude={"threads"})
    if meta_path.exists():
        existing = json.loads(meta_path.read_text())
        if existing.get("sampling") != key or not existing.get("windows"):
            raise DatasetError(f"{out} holds a different cache ({existing.get('sampling')}); use another cache_dir "
                               "or delete this one")
    else:
        meta_path.write_text(json.dumps({"sampling": key, "format": 1, "windows": True}, indent=2))
    decode_into_cache(manifest, out, _decode_window_chunk, key, workers, chunk_size, "ssl windows")
    return out


def cut_view(window: torch.Tensor, frames: int, stride: int, start: int, reverse: bool = False) -> torch.Tensor:
    """``frames`` frames of ``window`` (``[W, 3, S, S]``) from ``start``, ``stride`` apart, reversed in time if asked.

    Returns ``[T, 3, S, S]`` with the window's dtype.
    """
    idx = start + stride * torch.arange(frames)
    if int(idx[-1]) >= window.shape[0]:
        raise ValueError(f"a view of {frames} frames at stride {stride} from {start} runs past a {window.shape[0]}-frame window")
    view = window[idx]
    return view.flip(0) if reverse else view


def sample_views(
    windows: torch.Tensor, frames: int, strides: Sequence[int], count: int, generator: torch.Generator,
    speed_classes: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random views of each video: ``windows`` uint8 ``[B, K, W, 3, S, S]`` -> (``[count, B, T, 3, S, S]``,
    labels ``[count, B]``).

    Each view draws a window k, a stride from ``strides`` and a start uniformly among those that fit, so two views
    of one video usually cover different times. With ``speed_classes`` each view also draws a class
    ``c ∈ {0 … len(strides)}``: ``c < len(strides)`` = forward at ``strides[c]``, ``c = len(strides)`` = reversed
    at a random stride; the labels are those classes (else all zero).
    """
    b, k, w = windows.shape[:3]
    n_classes = len(strides) + 1
    views = torch.empty((count, b, frames, *windows.shape[3:]), dtype=windows.dtype)
    labels = torch.zeros((count, b), dtype=torch.long)
    for v in range(count):
        for i in range(b):
            which = int(torch.randint(0, k, (1,), generator=generator))
            reverse = False
            if speed_classes:
                label = int(torch.randint(0, n_classes, (1,), generator=generator))
                labels[v, i] = label
                reverse = label == len(strides)
                pick = int(torch.randint(0, len(strides), (1,), generator=generator)) if reverse else label
            else:
                pick = int(torch.randint(0, len(strides), (1,), generator=generator))
            stride = int(strides[pick])
            start = int(torch.randint(0, w - (frames - 1) * stride, (1,), generator=generator))
            views[v, i] = cut_view(windows[i, which], frames, stride, start, reverse)
    return views, labels


def augment_clips(
    clips: torch.Tensor, generator: torch.Generator, *, crop_scale: tuple[float, float] = (0.35, 1.0),
    flip_p: float = 0.5, jitter: float = 0.4, jitter_p: float = 0.8, grey_p: float = 0.2,
    aspect: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Random resized crop, horizontal flip, colour jitter and greyscale, drawn once per clip (the same for every
    frame, so the augmentation adds no motion).

    uint8 ``[N, T, 3, H, W]`` in, uint8 ``[N, T, 3, H, W]`` out (same shape, values in ``[0, 255]``).
    Crop: an area share in ``crop_scale`` and an aspect ratio in ``aspect`` (times the frame's), resized back
    bilinearly.
    Jitter (with probability ``jitter_p``): brightness, contrast and saturation factors in
    ``[1 − jitter, 1 + jitter]``. Greyscale (``grey_p``): ITU-R 601 luma in all three channels.
    """
    if clips.dtype != torch.uint8 or clips.dim() != 5:
        raise ValueError(f"augment_clips takes uint8 [N, T, 3, H, W], got {clips.dtype} {tuple(clips.shape)}")
    n, t, c, h, w = clips.shape
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    out = torch.empty_like(clips)

    def uniform(lo: float, hi: float) -> float:
        return float(torch.empty(1).uniform_(lo, hi, generator=generator))

    for i in range(n):
        x = clips[i].float()  # [T, 3, H, W] in [0, 255]
        share = uniform(*crop_scale)
        ratio = math.exp(uniform(*(math.log(r) for r in aspect)))  # relative to the frame's own aspect ratio
        ch = max(1, min(h, int(round(h * math.sqrt(share / ratio)))))
        cw = max(1, min(w, int(round(w * math.sqrt(share * ratio)))))
        top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
        x = x[..., top : top + ch, left : left + cw]
        if (ch, cw) != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        if uniform(0, 1) < flip_p:
            x = x.flip(-1)
        if uniform(0, 1) < jitter_p and jitter > 0:
            brightness, contrast, saturation = (uniform(1 - jitter, 1 + jitter) for _ in range(3))
            x = x * brightness
            grey = (x * luma).sum(1, keepdim=True)  # [T, 1, H, W]
            x = (x - grey.mean()) * contrast + grey.mean()
            grey = (x * luma).sum(1, keepdim=True)
            x = grey + (x - grey) * saturation
        if uniform(0, 1) < grey_p:
            x = (x * luma).sum(1, keepdim=True).expand(t, c, h, w)
        out[i] = x.round().clamp(0, 255).to(torch.uint8)
    return out
