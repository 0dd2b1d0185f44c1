"""The ``hf:`` teacher: a Hugging Face video classifier (or X-CLIP, zero-shot) loaded from a local folder, offline.

Frames, resolution, normalisation and label names come from the folder's ``config.json`` and processor config;
nothing is downloaded. ``transformers`` is imported only when such a teacher is loaded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinyact.teachers.base import ModuleTeacher, Preprocess, TeacherError, normalisation_stats, resolve_device
from tinyact.teachers.options import parse_dtype, read_label_file

logger = logging.getLogger(__name__)

#: Default normalisation of each model type when the folder has no processor config (transformers' defaults).
_HF_DEFAULT_STATS = {"videomae": "half", "timesformer": "imagenet", "vivit": "half"}


def _processor_config(folder: Path) -> dict[str, Any]:
    for name in ("preprocessor_config.json", "video_preprocessor_config.json"):
        if (folder / name).is_file():
            return json.loads((folder / name).read_text())
    return {}


def _square(value: Any, what: str) -> int:
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            value = (value["height"], value["width"])
        elif "shortest_edge" in value:
            value = value["shortest_edge"]
    if isinstance(value, list | tuple):
        if len(set(value)) != 1:
            raise TeacherError(f"{what} {value} is not square; only square teacher inputs are supported")
        value = value[0]
    return int(value)


def load_hf_teacher(
    path: str | Path, device: str = "auto", dtype: str = "float32", labels: str | None = None, prompt: str = "{}"
) -> ModuleTeacher:
    """A Hugging Face video classifier from a local folder (``save_pretrained`` output), offline.

    Frames: ``config.num_frames``; resolution: ``config.image_size`` (what the position embeddings were built
    for); mean/std and the 0–1 rescale from ``preprocessor_config.json`` (or ``video_preprocessor_config.json``),
    else transformers' defaults for that model type; label names from ``config.id2label``. The embedding is
    the input of the classification head (pooled features).

    An X-CLIP folder (model type ``xclip``, with its tokenizer saved alongside) becomes a zero-shot teacher:
    ``labels`` (a class-name file, required) are turned into prompts with ``prompt`` (``"{}"``: the bare name)
    and the logits are X-CLIP's ``logits_per_video``; the embedding is its ``video_embeds``.
    """
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise TeacherError(f"{folder} is not a Hugging Face model folder (no config.json); save one with save_pretrained")
    from transformers import AutoConfig, AutoModelForVideoClassification  # slow import: only when used

    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    if config.model_type == "xclip":
        return _load_hf_xclip(folder, config, device, dtype, labels, prompt)
    if labels is not None:
        raise TeacherError("labels= is for X-CLIP folders; a video classifier names its classes in config.id2label")
    try:
        model = AutoModelForVideoClassification.from_pretrained(folder, local_files_only=True)
    except (ValueError, KeyError) as error:
        raise TeacherError(
            f"{folder}: model type {config.model_type!r} is not a transformers video classifier ({error})"
        ) from None
    processor = _processor_config(folder)
    default_stats = normalisation_stats(_HF_DEFAULT_STATS.get(config.model_type, "imagenet"))
    if processor.get("do_normalize", True):
        mean = processor.get("image_mean", default_stats[0])
        std = processor.get("image_std", default_stats[1])
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    rescale = processor.get("rescale_factor", 1 / 255) if processor.get("do_rescale", True) else 1.0
    size = _square(config.image_size, "image_size")
    crop = processor.get("crop_size") or processor.get("size")
    if crop is not None and _square(crop, "processor size") != size:
        logger.warning("%s: processor size %s differs from the model's image_size %d; using %d", folder, crop, size, size)
    num_frames = int(getattr(config, "num_frames", 16))
    id2label = {int(k): v for k, v in (config.id2label or {}).items()}
    label_names = [id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]
    return ModuleTeacher(
        model,
        label_names=label_names,
        preprocess=Preprocess(num_frames=num_frames, size=size, mean=tuple(mean), std=tuple(std), input_scale=255.0 * float(rescale)),
        device=resolve_device(device),
        dtype=parse_dtype(dtype),
        embedding_layer="classifier",
        call=lambda module, x: module(pixel_values=x),
        embedding_dim=int(config.hidden_size),
    )


def _load_hf_xclip(folder: Path, config: Any, device: str, dtype: str, labels: str | None, prompt: str) -> ModuleTeacher:
    from transformers import AutoTokenizer, XCLIPModel

    if labels is None:
        raise TeacherError("an X-CLIP teacher is zero-shot: give the class names, hf:FOLDER?labels=FILE")
    if "{}" not in prompt:
        raise TeacherError(f"prompt must contain {{}} where the class name goes, got {prompt!r}")
    label_names = read_label_file(labels)
    model = XCLIPModel.from_pretrained(folder, local_files_only=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise TeacherError(f"{folder}: X-CLIP needs its tokenizer saved in the folder ({error})") from None
    run_device = resolve_device(device)
    tokens = tokenizer([prompt.format(name) for name in label_names], padding=True, return_tensors="pt")
    input_ids, attention_mask = tokens["input_ids"].to(run_device), tokens["attention_mask"].to(run_device)
    vision = config.vision_config
    processor = _processor_config(folder)
    clip_mean, clip_std = normalisation_stats("clip")
    size = _square(vision.image_size, "image_size")

    def call(module: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # The text side is conditioned on each video (X-CLIP's video-specific prompts), so it runs every batch.
        out = module(input_ids=input_ids, attention_mask=attention_mask, pixel_values=x)
        return {"logits": out.logits_per_video, "embedding": out.video_embeds}

    return ModuleTeacher(
        model,
        label_names=label_names,
        preprocess=Preprocess(
            num_frames=int(vision.num_frames),
            size=size,
            mean=tuple(processor.get("image_mean", clip_mean)),
            std=tuple(processor.get("image_std", clip_std)),
            input_scale=255.0 * float(processor.get("rescale_factor", 1 / 255)),
        ),
        device=run_device,
        dtype=parse_dtype(dtype),
        call=call,
        embedding_dim=int(config.projection_dim),
    )
