"""Tensor transforms on clips: resize/crop (torch, no torchvision) and normalisation.

Clips travel through the data path as uint8 ``[T, 3, H, W]`` (or batched ``[B, T, 3, H, W]``); models take
float input. Normalisation is a separate step so the same cached uint8 clip serves an encoder that wants
ImageNet statistics, a teacher that wants CLIP statistics, and a reconstruction target in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

NormStats = Literal["imagenet", "clip", "none"]


Size = int | tuple[int, int]  # a square side, or (height, width)


def _hw(size: Size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def center_crop_box(height: int, width: int, size: Size) -> tuple[int, int, int, int]:
    """``(top, left, crop_h, crop_w)``: the largest centred region of a ``height × width`` frame with the
    aspect ratio of ``size`` (for a square ``size``: the centre square of side ``min(height, width)``)."""
    out_h, out_w = _hw(size)
    if width * out_h >= height * out_w:  # the frame is wider than the output: full height
        crop_h, crop_w = height, min(width, max(1, round(height * out_w / out_h)))
    else:
        crop_h, crop_w = min(height, max(1, round(width * out_h / out_w))), width
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def _resize(region: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """``[N, 3, h, w]`` -> ``[N, 3, out_h, out_w]``, same dtype: bilinear, antialiased when shrinking. uint8 on
    the CPU is resized as uint8 (torch's fixed-point kernel on channels-last memory: ~10x faster than through
    float32, within 1 grey level of it)."""
    antialias = region.shape[-2] > out_h or region.shape[-1] > out_w
    if region.dtype == torch.uint8 and region.device.type == "cpu":
        region = region.contiguous(memory_format=torch.channels_last)  # [N, h, w, 3] in memory; a no-op when so
        return F.interpolate(region, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=antialias)
    resized = F.interpolate(region.float(), size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=antialias)
    return resized.round_().clamp_(0, 255).to(torch.uint8) if region.dtype == torch.uint8 else resized


def resize_short_side_center_crop(frames: torch.Tensor, size: Size) -> torch.Tensor:
    """Scale so the frame covers ``size`` and centre-crop it: ``size`` is a side (square) or ``(h, w)``.

    Takes uint8 or float ``[..., 3, H, W]``; returns the same dtype ``[..., 3, h, w]`` (float32 for float
    input). Cropping the centre region first and resizing it is the same picture as resize-then-crop, at a
    fraction of the cost. Decoded frames go through :func:`prepare_frames`, which does the same.
    """
    out_h, out_w = _hw(size)
    height, width = frames.shape[-2:]
    top, left, crop_h, crop_w = center_crop_box(height, width, (out_h, out_w))
    region = frames[..., top : top + crop_h, left : left + crop_w]
    if (crop_h, crop_w) == (out_h, out_w):
        return region
    lead = region.shape[:-3]
    flat = region.reshape(-1, *region.shape[-3:])  # [..., 3, h, w] -> [N, 3, h, w]
    return _resize(flat, out_h, out_w).reshape(*lead, 3, out_h, out_w)


def prepare_frames(frames: np.ndarray | torch.Tensor | Sequence[np.ndarray], size: Size | None) -> torch.Tensor:
    """Decoded RGB frames -> the clip a model sees: THE preprocessing of TinyAct, for training and edge alike.

    ``frames``: uint8 ``[T, H, W, 3]`` (numpy or torch), or a list of ``T`` uint8 ``[H, W, 3]`` arrays, as
    ``frame.to_ndarray(format="rgb24")`` gives them at the video's native size. Returns a contiguous uint8
    tensor ``[T, 3, h, w]``: the centre region with the aspect of ``size`` (a side, or ``(h, w)``) resized to
    it, bilinear and antialiased (:func:`resize_short_side_center_crop` is the same for ``[..., 3, H, W]``
    tensors); ``size=None`` keeps the native size. Normalisation (:func:`normalize`) is the model's first
    step, not done here.

        read_clip / the cache  ─┐
                                ├─► rgb24 [T, H, W, 3] native ─► prepare_frames ─► uint8 [T, 3, h, w]
        edge cameras (grab)    ─┘

    Only the centre regions are copied (into one ``[T, h', w', 3]`` block: the channels-last memory the
    uint8 kernel reads), never the full frames. The copies are numpy's: torch's multi-threaded copies of small
    strided tensors cost 10-30x more on a loaded machine (measured on 2 busy cores).
    """
    images = [np.asarray(image) for image in frames]  # T x [H, W, 3], views of the decoded arrays
    if not images or any(im.dtype != np.uint8 or im.ndim != 3 or im.shape[-1] != 3 or im.shape != images[0].shape
                         for im in images):
        found = sorted({f"{im.dtype} {im.shape}" for im in images}) or ["no frames"]
        raise ValueError(f"prepare_frames takes uint8 [T, H, W, 3] frames of one size, got frames of {', '.join(found)}")
    if size is None:
        return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)))  # -> [T, 3, H, W]
    out_h, out_w = _hw(size)
    height, width = images[0].shape[:2]
    top, left, crop_h, crop_w = center_crop_box(height, width, (out_h, out_w))
    regions = np.stack([im[top : top + crop_h, left : left + crop_w] for im in images])  # [T, h', w', 3]
    clip = torch.from_numpy(regions).permute(0, 3, 1, 2)  # -> [T, 3, h', w'] (a channels-last view, no copy)
    if (crop_h, crop_w) != (out_h, out_w):
        clip = _resize(clip, out_h, out_w)  # channels-last in, channels-last out
    hwc = clip.permute(0, 2, 3, 1).numpy()  # [T, 3, h, w] -> [T, h, w, 3], the memory order it has
    return torch.from_numpy(np.ascontiguousarray(hwc.transpose(0, 3, 1, 2)))  # contiguous [T, 3, h, w]


def to_unit(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` -> float32 ``[0, 1]`` (the autoencoder's reconstruction target)."""
    return frames.float().div_(255.0)


def normalize(frames: torch.Tensor, stats: NormStats = "imagenet") -> torch.Tensor:
    """uint8 ``[..., 3, H, W]`` -> float32 ``(x/255 - mean) / std`` with ImageNet or CLIP statistics.

    ``stats="none"`` returns ``x/255`` unchanged.
    """
    unit = to_unit(frames)
    if stats == "none":
        return unit
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if stats == "imagenet" else (CLIP_MEAN, CLIP_STD)
    shape = (3, 1, 1)
    mean_t = torch.tensor(mean, dtype=unit.dtype, device=unit.device).view(shape)
    std_t = torch.tensor(std, dtype=unit.dtype, device=unit.device).view(shape)
    return unit.sub_(mean_t).div_(std_t)


def denormalize(frames: torch.Tensor, stats: NormStats = "imagenet") -> torch.Tensor:
    """Inverse of :func:`normalize`: float normalised -> float ``[0, 1]`` (not clamped)."""
    if stats == "none":
        return frames
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if stats == "imagenet" else (CLIP_MEAN, CLIP_STD)
    shape = (3, 1, 1)
    mean_t = torch.tensor(mean, dtype=frames.dtype, device=frames.device).view(shape)
    std_t = torch.tensor(std, dtype=frames.dtype, device=frames.device).view(shape)
    return frames * std_t + mean_t


def with_mirror_windows(frames: torch.Tensor) -> torch.Tensor:
    """A clip ``[T, 3, H, W]`` or its windows ``[K, T, 3, H, W]`` -> ``[2K, T, 3, H, W]``: the windows, then the
    same windows mirrored left-right (``ClipSampling(mirror=True)``; encoders average a clip's windows)."""
    windows = frames.unsqueeze(0) if frames.dim() == 4 else frames
    return torch.cat([windows, windows.flip(-1)])
