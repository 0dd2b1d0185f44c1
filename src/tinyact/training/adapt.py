"""Label-free adaptation of a pretrained encoder to a user's footage (``tinyact train adapt``).

::

    start ─► probe on val (before) ─► self-supervised training on the user's videos (labels unused)
          ─► probe on val after every epoch ─► best epoch (after) ─► after > before ? adapted : original

The original is kept unless the adapted encoder probes strictly better, so adaptation never makes things
worse silently.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import nn

from tinyact.data.manifest import Manifest
from tinyact.errors import ConfigError
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.checkpoint import load_model, save_model, state_dict_hash
from tinyact.training import ssl
from tinyact.training.ssl_objectives import resolve_objective

logger = logging.getLogger(__name__)


@dataclass
class AdaptResult:
    """What :func:`adapt_encoder` kept and why."""

    model: Path  # OUT/model.pt: the kept encoder (adapted or the original, whichever probed better)
    kept: Literal["adapted", "original"]
    before: float  # linear probe of the starting encoder on the val split
    after: float  # best linear probe of the adapted encoder (epoch ``after_epoch``)
    after_epoch: int
    encoder_hash: str  # hash of the kept model's weights
    report: Path  # OUT/adapt.json


def adapt_encoder(
    start: str | Path | nn.Module,
    manifest: str | Path,
    out: str | Path,
    objective: str = "ssl",
    epochs: int = 5,
    *,
    lr: float = 3e-4,
    batch_size: int = 16,
    train_splits: Sequence[str] = ("train", "val"),
    val_split: str = "val",
    seed: int = 0,
    device: str = "auto",
    precision: str = "fp32",
    cache_dir: str | Path | None = None,
    workers: int = 0,
    overrides: dict[str, Any] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> AdaptResult:
    """Adapt a pretrained encoder to a user's clips without their labels, and keep it only if it got better.

    ::

        start ─► probe on val (before) ─► SSL on the clips of ``train_splits`` (labels unused) for ``epochs``
              ─► probe on val after every epoch ─► best epoch (after) ─► after > before ? adapted : original

    Args:
        start: ``zoo:NAME``, a model file, or a ``VideoAutoEncoder3D`` (its frames and size fix the clips').
        manifest: the user's manifest; its labels are read only by the probe (fitted on ``train``, scored on
            ``val_split``).
        out: folder for the run (``OUT/ssl/``), ``OUT/model.pt`` (the kept encoder) and ``OUT/adapt.json``.
        objective: a self-supervised objective (``ssl`` = the recommended one).
        epochs, lr, batch_size, seed, device, precision, cache_dir, workers: training settings (a lower ``lr``
            than training from scratch: the start already knows motion); `precision` is checked by `SSLTrainConfig`.
        train_splits: the splits whose videos adapt the encoder (default train and val: footage, not labels).
        overrides: further :class:`SSLTrainConfig` fields.

    Returns :class:`AdaptResult`; ``OUT/adapt.json`` records both probe numbers and the decision. The original
    is kept unless the adapted encoder's probe is strictly higher, so adaptation never makes things worse
    silently. Interrupted runs resume where they stopped when called again with the same arguments.
    Raises :class:`ConfigError` when the val split has no labelled clips (nothing to decide on).
    """
    out = Path(out)
    labelled = Manifest.read(manifest)
    train_labels = {e.label for e in labelled.split("train").entries}
    if len(train_labels) < 2 or not labelled.split(val_split).entries:
        raise ConfigError(f"{manifest}: adaptation is kept only if a probe on the {val_split} split improves, which "
                          f"needs labelled clips of at least 2 classes in train and some in {val_split} "
                          f"(found {len(train_labels)} class(es) in train, {len(labelled.split(val_split))} {val_split} clips)")
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(start, nn.Module):
        if not isinstance(start, VideoAutoEncoder3D):
            raise ConfigError(f"adaptation starts from a VideoAutoEncoder3D, not a {type(start).__name__}")
        save_model(out / "start.pt", start, extra={"adapt_start": True})
        spec = str(out / "start.pt")
        start_model = start
    else:
        spec = str(start)
        start_model = ssl.load_start_encoder(spec)
    config = start_model.config
    cfg = ssl.SSLTrainConfig.from_dict({
        "manifest": manifest, "out": out / "ssl", "objective": objective, "init": spec,
        "frames": config.num_frames, "size": int(config.input_size[0]), "epochs": epochs, "lr": lr,
        "batch_size": batch_size, "train_splits": list(train_splits), "probe_val_split": val_split, "seed": seed,
        "device": device, "precision": precision, "cache_dir": cache_dir, "workers": workers, "probe": True,
        **(overrides or {}),
    }, source="adapt settings")
    result = ssl.train_ssl(cfg, resume=(out / "ssl" / "last.pt").is_file(), on_epoch_end=on_epoch_end)
    before = result.initial.get("probe_linear", float("nan"))
    if not np.isfinite(before) or result.best_model is None:
        raise ConfigError(f"{manifest}: no labelled clips in the train and {val_split} splits to probe with, so "
                          "adaptation cannot show it helps; label a few clips of each class in both splits")
    after, after_epoch = float(result.best["probe_linear"]), int(result.best["epoch"])
    kept: Literal["adapted", "original"] = "adapted" if after > before else "original"
    source = result.best_model if kept == "adapted" else Path(spec) if not spec.startswith("zoo:") else None
    if source is not None:
        shutil.copyfile(source, out / "model.pt")
        _, info = load_model(out / "model.pt")
        kept_hash = str(info["hash"])
    else:  # a zoo encoder kept as it is: write it as a model file so every consumer reads the same format
        kept_hash = save_model(out / "model.pt", start_model, extra={"source": spec})
    report = {
        "start": spec, "start_hash": state_dict_hash(start_model.state_dict()), "objective": resolve_objective(objective),
        "epochs": epochs, "lr": lr, "train_splits": list(train_splits), "probe": "linear (logistic regression on "
        f"train latents, top-1 on {val_split})", "before": before, "after": after, "after_epoch": after_epoch,
        "before_knn": result.initial.get("probe_knn"), "after_knn": result.best.get("probe_knn"),
        "kept": kept, "model": str(out / "model.pt"), "encoder_hash": kept_hash,
    }
    (out / "adapt.json").write_text(json.dumps(report, indent=2))
    (logger.info if kept == "adapted" else logger.warning)(
        "adapt: probe on %s %.1f %% before, %.1f %% after (epoch %d); kept the %s encoder in %s",
        val_split, 100 * before, 100 * after, after_epoch, kept, out / "model.pt")
    return AdaptResult(model=out / "model.pt", kept=kept, before=before, after=after, after_epoch=after_epoch,
                       encoder_hash=kept_hash, report=out / "adapt.json")
