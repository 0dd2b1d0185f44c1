"""Evaluation of the supervised trainers' models over every clip of a loader, summed across ``torchrun`` ranks.

Both take uint8 clips ``[B, T, 3, H, W]`` from the loader and normalise them with the model's own statistics
(``config.normalization``), as extraction, the edge and a teacher's ``predict_uint8`` do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from tinyact.data.transforms import NormStats, normalize, to_unit
from tinyact.models.kd_student import KDStudent
from tinyact.training.distributed import DistInfo, all_reduce_sum, unwrap
from tinyact.training.kd_teachers import TeacherSource
from tinyact.training.runtime import Precision, autocast, psnr

_NORM_STATS: dict[str, NormStats] = {"imagenet": "imagenet", "clip": "clip", "none": "none"}


@torch.no_grad()
def evaluate_classifier(
    model: torch.nn.Module, loader: Iterable[Any], info: DistInfo, precision: Precision = "fp32"
) -> tuple[float, float]:
    """``(mean CE loss, top-1)`` of a clip classifier over every clip of ``loader`` (all ranks together)."""
    model.eval()
    stats = input_normalization(model)
    loss_sum = correct = seen = 0.0
    for clips, labels, _ in loader:
        if len(labels) == 0:
            continue
        x = normalize(clips.to(info.device), stats)
        labels = labels.to(info.device)
        with autocast(info.device, precision):
            logits = model(x)
        loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
        correct += float((logits.argmax(1) == labels).sum())
        seen += len(labels)
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], info)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def input_normalization(model: torch.nn.Module) -> NormStats:
    """The statistics a model's input is normalised with: its ``config.normalization`` (ImageNet without one)."""
    value = getattr(getattr(unwrap(model), "config", None), "normalization", "imagenet")
    if value not in _NORM_STATS:
        raise ValueError(f"{type(unwrap(model)).__name__} has unknown input normalisation {value!r}")
    return _NORM_STATS[value]


@torch.no_grad()
def evaluate_student(
    student: KDStudent, loader: Iterable[Any], teacher: TeacherSource | None, info: DistInfo, precision: Precision = "fp32"
) -> dict[str, float]:
    """CE, top-1, reconstruction MSE/PSNR of the student and top-1 of the teacher over every clip of ``loader``."""
    student.eval()
    ce = correct = mse = seen = t_correct = t_seen = 0.0
    for clips, labels, clip_ids in loader:
        if len(labels) == 0:
            continue
        clips, labels = clips.to(info.device), labels.to(info.device)
        with autocast(info.device, precision):
            out = student(normalize(clips, student.normalization))
        logits = out["logits"].float()
        ce += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += float((logits.argmax(1) == labels).sum())
        target = student.autoencoder.reconstruction_target(to_unit(clips))
        mse += float(((out["recon"].float() - target) ** 2).flatten(1).mean(1).sum())
        seen += len(labels)
        if teacher is not None:
            keep = [i for i, c in enumerate(clip_ids) if teacher.has(c)]
            if keep:
                t_logits, _ = teacher([clip_ids[i] for i in keep], clips[keep])
                t_correct += float((t_logits.to(info.device).argmax(1) == labels[keep]).sum())
                t_seen += len(keep)
    ce, correct, mse, seen, t_correct, t_seen = all_reduce_sum([ce, correct, mse, seen, t_correct, t_seen], info)
    n = max(seen, 1)
    return {
        "ce": ce / n,
        "top1": correct / n,
        "mse": mse / n,
        "psnr": psnr(mse / n),
        "teacher_top1": t_correct / t_seen if t_seen else float("nan"),
    }
