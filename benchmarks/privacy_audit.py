"""The privacy audit: inversion attack, attribute probes and defences over one set of clips and their latents.

Inputs are plain arrays (:class:`AuditData`: clips, labels, actor and scene per clip, split) plus one
:class:`EncodedSet` per encoder (latents of the same clips, and the autoencoder's own decoder when it has one);
``benchmarks/privacy.py`` builds them from a synthetic dataset and a trained autoencoder. It is a benchmark,
not a user command: it needs every clip's actor and scene, which only the synthetic generator knows. Splits follow the
synthetic generator, whose train/val/test splits have *disjoint actors*:

- attack: the attacker's own clips are the ``attacker_splits`` (train + val actors); the victims are the
  ``victim_split`` (test actors, never seen by the attacker);
- action: a probe fitted on the attacker splits and tested on the victim split (held-out actors);
- identity / scene: cross-validated over all clips, stratified by the attribute (see
  :mod:`tinyact.privacy.probes` for why identity needs seen actors).

``run_audit`` returns one JSON-ready dict (see ``docs/PRIVACY.md`` for the tables made from it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from tinyact.config import TinyActConfig
from tinyact.errors import DatasetError
from tinyact.models.autoencoder3d import AutoEncoder3DConfig
from tinyact.privacy.attack import (
    AttackConfig,
    mean_frame_baseline,
    nearest_neighbour_attack,
    reconstruct,
    train_attack,
)
from tinyact.privacy.defences import Defence, latent_scale, wire_roundtrip
from tinyact.privacy.grid import save_grid
from tinyact.privacy.metrics import reconstruction_scores
from tinyact.privacy.probes import conditional_baseline, pixel_features, probe_cv, probe_split
from tinyact.wire import WireDtype

logger = logging.getLogger(__name__)


class PrivacyConfig(TinyActConfig):
    """Settings of :func:`run_audit`."""

    attacker_splits: list[str] = Field(["train", "val"], title="Attacker's clips", description="splits whose actors the attacker films")
    victim_split: str = Field("test", title="Victims' clips", description="split of held-out actors the attack is scored on")
    attack_width: float = Field(0.5, gt=0, le=2, title="Attack decoder width", description="channel multiplier of the AE decoder architecture")
    attack_epochs: int = Field(30, ge=1, title="Attack training epochs")
    attack_batch_size: int = Field(16, ge=2, title="Attack batch size")
    attack_lr: float = Field(2e-3, gt=0, title="Attack learning rate")
    probe_kinds: list[str] = Field(["logreg", "rf"], title="Probe classifiers", description="logreg and/or rf")
    folds: int = Field(5, ge=2, title="Cross-validation folds of the attribute probes")
    wire_dtypes: list[WireDtype] = Field(["float16", "int8"], title="Wire formats the attack is also scored on")
    defences: list[str] = Field(
        ["noise:0.25", "noise:0.5", "noise:1", "noise:2", "quant:3", "quant:2"],
        title="Defences", description="none | noise:<sigma, in units of the latents' per-dimension std> | quant:<bits>",
    )
    grid_clips: int = Field(4, ge=1, title="Victim clips in the PNG grid")
    grid_defence: str = Field("noise:1", title="Defence shown in the grid", description="one of `defences`")
    defended_encoder: str | None = Field(
        None, title="Encoder the defences protect",
        description="name of one encoded set (e.g. KD: a defence's cost in action accuracy is only visible on latents "
        "that carry the action); default: the first")
    seed: int = Field(0, title="Seed")


@dataclass
class AuditData:
    """The clips under audit: uint8 ``clips`` ``[N, T, 3, H, W]`` and per-clip ``labels``, ``actors``, ``scenes``,
    ``splits`` (str ``[N]``)."""

    clips: np.ndarray
    labels: np.ndarray
    actors: np.ndarray
    scenes: np.ndarray
    splits: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.clips)
        for name in ("labels", "actors", "scenes", "splits"):
            value = np.asarray(getattr(self, name)).astype(str)
            if len(value) != n:
                raise DatasetError(f"audit data: {name} has {len(value)} rows, clips has {n}")
            setattr(self, name, value)


@dataclass
class EncodedSet:
    """One encoder's view of :class:`AuditData`: ``latents`` float32 ``[N, D]`` in the same row order,
    ``ae_config`` (architecture the attack decoder copies) and the model's own ``decode`` if any."""

    name: str
    latents: np.ndarray
    ae_config: AutoEncoder3DConfig
    own_decoder: Callable[[torch.Tensor], torch.Tensor] | None = None


def _attack_config(cfg: PrivacyConfig, seed_offset: int = 0) -> AttackConfig:
    return AttackConfig(width=cfg.attack_width, epochs=cfg.attack_epochs, batch_size=cfg.attack_batch_size,
                        lr=cfg.attack_lr, seed=cfg.seed + seed_offset)


def _row(encoder: str, wire: str, method: str, scores: dict[str, float]) -> dict[str, Any]:
    return {"encoder": encoder, "wire": wire, "method": method, **scores}


def run_audit(data: AuditData, encoded: list[EncodedSet], cfg: PrivacyConfig, out_dir: Path | None = None,
              grid_path: Path | None = None) -> dict[str, Any]:
    """Run attack and probes for every :class:`EncodedSet`, and the defences on one of them
    (``cfg.defended_encoder``, default the first).

    Writes the PNG grid to ``grid_path`` (or ``out_dir/privacy-grid.png``) when either is given.
    """
    names = [enc.name for enc in encoded]
    if cfg.defended_encoder is not None and cfg.defended_encoder not in names:
        raise DatasetError(f"defended_encoder {cfg.defended_encoder!r} is not among the encoded sets {names}")
    defended = names.index(cfg.defended_encoder) if cfg.defended_encoder else 0
    attacker = np.isin(data.splits, cfg.attacker_splits)
    victim = data.splits == cfg.victim_split
    if attacker.sum() < 2 or victim.sum() < 1:
        raise DatasetError(f"privacy audit needs clips in {cfg.attacker_splits} and {cfg.victim_split!r}")
    shared = set(data.actors[attacker].tolist()) & set(data.actors[victim].tolist())
    if shared:
        logger.warning("privacy: %d victim actor(s) also appear in the attacker's clips: %s", len(shared), sorted(shared)[:5])
    target = torch.as_tensor(data.clips[victim]).float().div_(255.0)
    grid_rows = np.arange(min(cfg.grid_clips, int(victim.sum())))
    results: dict[str, Any] = {
        "config": cfg.model_dump(),
        "clips": {"total": len(data.clips), "attacker": int(attacker.sum()), "victim": int(victim.sum()),
                  "shape": list(data.clips.shape[1:])},
        "actors": {"attacker": sorted(set(data.actors[attacker].tolist())), "victim": sorted(set(data.actors[victim].tolist())),
                   "shared": sorted(shared)},
        "attack": [], "probes": [], "action": [], "defences": [],
    }

    # Reference points that do not depend on any encoder.
    baseline = mean_frame_baseline(data.clips[attacker], int(victim.sum()))
    results["attack"].append(_row("-", "-", "mean frame", reconstruction_scores(baseline, target)))
    grid: dict[str, torch.Tensor] = {"original": target[grid_rows]}

    pixels = pixel_features(data.clips)
    for kind in cfg.probe_kinds:
        for attribute, values in (("actor", data.actors), ("scene", data.scenes), ("action", data.labels)):
            results["probes"].append({"encoder": "pixels 16x16", **probe_cv(pixels, values, kind, cfg.folds, cfg.seed, attribute).to_dict()})
    results["identity_from_action_label"] = conditional_baseline(data.labels, data.actors, cfg.folds, cfg.seed)

    naive_attack = None
    for e_index, enc in enumerate(encoded):
        z = np.asarray(enc.latents, np.float32)
        decoder = train_attack(z[attacker], data.clips[attacker], enc.ae_config, _attack_config(cfg), label=f"attack on {enc.name}")
        if e_index == defended:
            naive_attack = decoder
        wire: WireDtype
        for wire in ["float32", *cfg.wire_dtypes]:
            z_wire = z if wire == "float32" else wire_roundtrip(z, wire)
            recon = reconstruct(decoder, z_wire[victim])
            results["attack"].append(_row(enc.name, wire, "attack decoder", reconstruction_scores(recon, target)))
            if enc.own_decoder is not None:
                own = reconstruct(enc.own_decoder, z_wire[victim])
                results["attack"].append(_row(enc.name, wire, "AE's own decoder", reconstruction_scores(own, target)))
            if wire == "float32":
                nearest = nearest_neighbour_attack(z[attacker], data.clips[attacker], z[victim])
                results["attack"].append(_row(enc.name, wire, "nearest neighbour", reconstruction_scores(nearest, target)))
                grid[f"attack ({enc.name})"] = recon[grid_rows]
                if enc.own_decoder is not None and e_index == 0:
                    grid[f"AE decoder ({enc.name})"] = own[grid_rows]
                if e_index == 0:
                    grid["nearest nb."] = nearest[grid_rows]
        for kind in cfg.probe_kinds:
            for attribute, values in (("actor", data.actors), ("scene", data.scenes), ("action", data.labels)):
                results["probes"].append({"encoder": enc.name, **probe_cv(z, values, kind, cfg.folds, cfg.seed, attribute).to_dict()})
            results["action"].append({
                "encoder": enc.name, "kind": kind,
                "accuracy_held_out_actors": probe_split(z[attacker], data.labels[attacker], z[victim], data.labels[victim], kind, cfg.seed),
                "uniform": 1.0 / len(set(data.labels.tolist())),
            })
    grid["mean frame"] = baseline[grid_rows]

    # Defences on one encoder: the defender perturbs every latent before it leaves the edge; the cloud
    # classifier and an adaptive attacker both train on defended latents; a naive attacker keeps its decoder.
    if encoded:
        enc = encoded[defended]
        assert naive_attack is not None  # trained above, on this encoder's latents
        z = np.asarray(enc.latents, np.float32)
        scale = latent_scale(z[data.splits == "train"] if (data.splits == "train").any() else z[attacker])
        results["defence_scale"] = scale
        for d_index, spec in enumerate(["none", *cfg.defences]):
            defence = Defence.parse(spec)
            # Separate draws for the attacker's own encodings and the victims' transmitted latents.
            z_att = defence.apply(z[attacker], scale, seed=cfg.seed * 1000 + 2 * d_index)
            z_vic = defence.apply(z[victim], scale, seed=cfg.seed * 1000 + 2 * d_index + 1)
            z_all = np.empty_like(z)
            z_all[attacker], z_all[victim] = z_att, z_vic
            rest = ~(attacker | victim)
            z_all[rest] = defence.apply(z[rest], scale, seed=cfg.seed * 1000 + 999)
            row: dict[str, Any] = {"encoder": enc.name, "defence": defence.name, "spec": spec}
            row["action_accuracy"] = probe_split(z_att, data.labels[attacker], z_vic, data.labels[victim], "logreg", cfg.seed)
            row["identity_accuracy"] = probe_cv(z_all, data.actors, "logreg", cfg.folds, cfg.seed, "actor").accuracy
            row["scene_accuracy"] = probe_cv(z_all, data.scenes, "logreg", cfg.folds, cfg.seed, "scene").accuracy
            if spec == "none":
                adaptive = naive_attack
            else:
                adaptive = train_attack(z_att, data.clips[attacker], enc.ae_config, _attack_config(cfg, d_index),
                                        label=f"attack vs {defence.name}")
            scores = reconstruction_scores(reconstruct(adaptive, z_vic), target)
            row.update({"attack_psnr": scores["psnr"], "attack_ssim": scores["ssim"]})
            naive = reconstruction_scores(reconstruct(naive_attack, z_vic), target)
            row.update({"naive_attack_psnr": naive["psnr"], "naive_attack_ssim": naive["ssim"]})
            results["defences"].append(row)
            if spec == cfg.grid_defence:
                grid[f"attack vs {defence.name}"] = reconstruct(adaptive, z_vic[grid_rows])

    if grid_path is None and out_dir is not None:
        grid_path = Path(out_dir) / "privacy-grid.png"
    if grid_path is not None:
        results["grid"] = str(save_grid(grid, grid_path))
    return results
