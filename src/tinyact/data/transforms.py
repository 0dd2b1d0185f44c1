"""Tensor transforms on clips: resize/crop (torch, no torchvision) and normalisation.

Clips travel through the data path as uint8 ``[T, 3, H, W]`` (or batched ``[B, T, 3, H, W]``); models take
float input. Normalisation is a separate step so the same cached uint8 clip serves an encoder that wants
ImageNet statistics, a teacher that wants CLIP statistics, and a reconstruction target in ``[0, 1]``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

NormStats = Literal["imagenet", "clip", "none"]


def resize_short_side_center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` and centre-crop ``size × size``.

    Takes uint8 or float ``[..., 3, H, W]``; returns the same dtype ``[..., 3, size, size]``. Cropping the
    centre square first and resizing it is the same picture as resize-then-crop, at a fraction of the cost.
    """
    h, w = frames.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = frames[..., top : top + side, left : left + side]
    if side == size:
        return square
    lead = square.shape[:-3]
    flat = square.reshape(-1, *square.shape[-3:])  # [..., 3, s, s] -> [N, 3, s, s]
    resized = F.interpolate(
        flat.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=side > size
    )
    if frames.dtype == torch.uint8:
        resized = resized.round_().clamp_(0, 255).to(torch.uint8)
    return resized.reshape(*lead, 3, size, size)


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
