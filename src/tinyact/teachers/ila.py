"""The paper's teacher, ILA (Tu et al., ICCV 2023), as a ``python:`` teacher factory.

ILA's code is not a package and its weights are not on a model hub, so this module only glues a user's
checkout of the public code (github.com/Francis-Rings/ILA, the Kinetics-400 ``master`` branch) and a
downloaded checkpoint into a :class:`~tinyact.teachers.base.Teacher`::

    tinyact teacher cache \\
        --teacher "python:tinyact.teachers.ila:build?repo=/src/ILA&checkpoint=/w/ila_b16_16x224.pth" \\
        --manifest data/k400/manifest.csv --out runs/kd/ila_logits.npz --batch-size 4

What the glue takes care of (each one silently wrong if done naively):

- **Logits are not a linear head.** ``XCLIP.forward(video, text)`` returns ``logit_scale ·`` cosine
  similarities between the video embedding and the text embeddings of the class names (tokenised with the
  repo's own ``clip.tokenize``, the bare class name as the prompt, as ILA's ``generate_text`` does). The
  class names come from ``labels/kinetics_400_labels.csv`` in the repo unless ``labels=FILE`` is given.
- **Normalisation** is ImageNet mean/std on a 0–255 scale (``mean=[123.675, 116.28, 103.53]``,
  ``std=[58.395, 57.12, 57.375]``, mmaction2's ``Normalize``), input ``[B, T, 3, H, W]``.
- **Checkpoints** are training states ``{"model": state_dict, "optimizer": …, "config": …}``; ILA loads them
  with ``strict=False``, which would hide a mismatch (wrong ``frames``, wrong ``mit_layers``). We load the
  ``model`` entry again and *fail* on missing keys, and warn on unexpected ones.
- **Eval mode.** ``XCLIP.cache_text`` calls ``self.train()`` inside every forward; we compute the text
  features once and replace ``cache_text`` on the instance so the model stays in eval mode, and set each
  block's ``message_attn.is_training = False`` as ILA's ``validate`` does.
- **Frames and resolution** come from the checkpoint's ``config`` (``DATA.NUM_FRAMES``, ``DATA.INPUT_SIZE``)
  when present, else from ``frames=``/``size=``; our clips are resampled/resized to them.

ILA's own test protocol averages 4 clips × 3 crops; one centre clip, as here, scores a little lower.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinyact.teachers.base import ModuleTeacher, Preprocess, TeacherError, resolve_device
from tinyact.teachers.options import parse_dtype, read_label_file

logger = logging.getLogger(__name__)

#: mmaction2 / ILA ``img_norm_cfg``: ImageNet statistics on the 0–255 scale.
ILA_MEAN = (123.675, 116.28, 103.53)
ILA_STD = (58.395, 57.12, 57.375)


def _config_value(config: Any, *keys: str) -> Any:
    """``config.DATA.NUM_FRAMES`` from a yacs CfgNode or a plain dict, or ``None``."""
    for key in keys:
        if config is None:
            return None
        config = config.get(key) if isinstance(config, dict) else getattr(config, key, None)
    return config


def _import_ila(repo: Path) -> tuple[Any, Any]:
    """ILA's ``models.xclip`` and its ``clip`` package, imported from the checkout (generic top-level names,
    so the checkout goes first on ``sys.path`` and modules of the same name imported earlier are dropped)."""
    if not (repo / "models" / "xclip.py").is_file() or not (repo / "clip").is_dir():
        raise TeacherError(f"{repo} is not a checkout of Francis-Rings/ILA (needs models/xclip.py and clip/)")
    for name in [m for m in sys.modules if m in ("models", "clip") or m.startswith(("models.", "clip."))]:
        del sys.modules[name]
    sys.path.insert(0, str(repo))
    try:
        # Order matters: ILA's clip/clip.py imports models.xclip, which imports clip.model; importing
        # models.xclip first fails on that cycle (ILA's own main.py imports clip first, via utils.helper).
        clip = importlib.import_module("clip")
        xclip = importlib.import_module("models.xclip")
    except ImportError as error:
        raise TeacherError(f"cannot import ILA from {repo}: {error} (install its requirements: timm, einops, ftfy, regex, mmcv)") from None
    return xclip, clip


def _state_dict(checkpoint: Path) -> tuple[dict[str, torch.Tensor], Any]:
    if not checkpoint.is_file():
        raise TeacherError(f"ILA checkpoint not found: {checkpoint}")
    # ILA checkpoints pickle a yacs config next to the weights, so weights_only loading cannot read them:
    # only load checkpoints you trust.
    payload = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = payload.get("model", payload) if isinstance(payload, dict) else payload
    if not isinstance(state, dict) or "visual.conv1.weight" not in {k.removeprefix("module.") for k in state}:
        raise TeacherError(f"{checkpoint} holds no ILA/X-CLIP weights (expected a dict with a 'model' state dict)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, payload.get("config") if isinstance(payload, dict) else None


def build(
    repo: str,
    checkpoint: str,
    frames: str | None = None,
    size: str | None = None,
    labels: str | None = None,
    mit_layers: str = "1",
    prompts_layers: str = "2",
    device: str = "auto",
    dtype: str = "float32",
) -> ModuleTeacher:
    """Build the ILA teacher (kwargs arrive as strings from the ``python:`` spec).

    Args:
        repo: a checkout of github.com/Francis-Rings/ILA (``master``: the Kinetics-400 code).
        checkpoint: an ILA checkpoint (``.pth`` with a ``model`` entry), e.g. ILA-B/16 16×224.
        frames, size: frames per clip and input resolution if the checkpoint has no ``config``.
        labels: class-name file (default ``REPO/labels/kinetics_400_labels.csv``).
        mit_layers, prompts_layers: architecture arguments ILA's ``xclip.load`` uses (1 and 2).
        device, dtype: where and in which precision to run (``float16`` halves memory on a GPU).
    """
    repo_path = Path(repo).expanduser().resolve()
    xclip, clip = _import_ila(repo_path)
    state, config = _state_dict(Path(checkpoint).expanduser())
    num_frames = int(_config_value(config, "DATA", "NUM_FRAMES") or frames or 8)
    if frames is not None and int(frames) != num_frames:
        raise TeacherError(f"frames={frames} but the checkpoint was trained with {num_frames} frames")

    model = xclip.build_model(
        dict(state), T=num_frames, logger=logger, mit_layers=int(mit_layers), prompts_layers=int(prompts_layers)
    )
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise TeacherError(
            f"{checkpoint} does not fit the ILA model built with frames={num_frames}, mit_layers={mit_layers}: "
            f"{len(result.missing_keys)} missing weights, e.g. {result.missing_keys[:5]}"
        )
    if result.unexpected_keys:
        logger.warning("ILA: %d checkpoint weights unused, e.g. %s", len(result.unexpected_keys), result.unexpected_keys[:5])

    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    resolution = int(state["visual.conv1.weight"].shape[-1]) * grid
    input_size = int(_config_value(config, "DATA", "INPUT_SIZE") or size or resolution)
    if input_size != resolution:
        raise TeacherError(f"input size {input_size} does not match the checkpoint's {resolution} px position grid")

    label_file = Path(labels) if labels else repo_path / "labels" / "kinetics_400_labels.csv"
    label_names = read_label_file(label_file)
    run_device = resolve_device(device)
    text = torch.cat([clip.tokenize(name, context_length=77) for name in label_names])  # ILA's generate_text

    model = model.to(run_device, parse_dtype(dtype)).eval()
    for block in getattr(getattr(model.visual, "transformer", None), "resblocks", []):
        if hasattr(block, "message_attn"):
            block.message_attn.is_training = False
    with torch.no_grad():
        text_features = model.encode_text(text.to(run_device))
    model.cache_text_features = text_features
    model.cache_text = lambda _text: text_features  # the original flips the model to train mode every call

    captured: dict[str, torch.Tensor] = {}
    model.mit.register_forward_hook(lambda _m, _i, output: captured.__setitem__("video", output))
    device_text = text.to(run_device)

    def call(module: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, _cos_losses = module(x, device_text)
        return {"logits": logits, "embedding": captured.pop("video")}

    return ModuleTeacher(
        model,
        label_names=label_names,
        preprocess=Preprocess(num_frames=num_frames, size=input_size, mean=ILA_MEAN, std=ILA_STD, input_scale=255.0),
        device=run_device,
        dtype=parse_dtype(dtype),
        call=call,
        embedding_dim=int(state["text_projection"].shape[1]),
    )
