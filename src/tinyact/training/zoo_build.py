"""Re-creating a zoo entry from its recipe: render the corpus, pretrain, package the chosen epoch.

Training code, so it lives here: :mod:`tinyact.zoo` is the registry of shipped weights below this stage (any
stage may load a zoo encoder), and this module writes into it.

``tinyact zoo build NAME`` reads ``tinyact/zoo/recipes/NAME.yaml`` (stages of a corpus config and a
pretraining config; a later stage continues from the model the one before chose), and runs them in ``--work DIR`` (default ``$TINYACT_HOME/zoo-build/NAME``). Both stages resume:
corpus shards already rendered are kept and training continues from ``last.pt``, so a build can be spread
over several sessions of the 2-core CPU, or run on a GPU (``--device cuda``). ``--install`` writes the
result into the package's ``entries/`` folder (what ``zoo:NAME`` loads); without it the entry is written to
``DIR/entry`` for inspection.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from tinyact.errors import ConfigError
from tinyact.hashing import file_sha256
from tinyact.zoo import ENTRIES_DIR, WEIGHTS_FILE, ZOO_DIR, build_from_config, encoder_state

logger = logging.getLogger(__name__)

RECIPES_DIR = ZOO_DIR / "recipes"


def read_recipe(name: str) -> dict[str, Any]:
    """``recipes/NAME.yaml``: ``{"description", "corpus": {...}, "pretrain": {...}}``."""
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(RECIPES_DIR.glob("*.yaml"))) or "none"
        raise ConfigError(f"no recipe for zoo entry {name!r} (recipes: {known})")
    return yaml.safe_load(path.read_text())


def machine_description(device: str) -> dict[str, Any]:
    """Where a model was trained: CPU model and core count, or the GPU's name (``auto`` recorded as what it chose)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    info: dict[str, Any] = {"platform": platform.platform(), "cpus": os.cpu_count(), "device": device}
    try:
        with open("/proc/cpuinfo") as handle:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def package_entry(name: str, model_file: Path, out_dir: Path, recipe: dict[str, Any], metrics: dict[str, Any],
                  trained_on: dict[str, Any], description: str = "") -> Path:
    """Write ``out_dir/{entry.yaml, encoder.fp16.pt}`` from a pretraining ``model.pt``; returns ``out_dir``."""
    from tinyact.models.base import config_of
    from tinyact.models.checkpoint import load_model, state_dict_hash

    model, info = load_model(model_file)
    config = config_of(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    half = {k: v.half() if v.is_floating_point() else v for k, v in encoder_state(model).items()}
    weights = out_dir / WEIGHTS_FILE
    tmp = weights.with_name(weights.name + ".tmp")
    torch.save(half, tmp)
    tmp.replace(weights)
    # The hash every latent will carry is that of the model as users load it: float16 weights made float32.
    shipped = build_from_config(config.to_dict())
    shipped.load_state_dict({k: v.float() for k, v in half.items()}, strict=False)
    entry = {
        "name": name,
        "description": description,
        "kind": type(model).__name__,
        "config": config.to_dict(),
        "input": {"frames": config.num_frames, "size": list(config.input_size),
                  "normalization": config.normalization,
                  "sampling": dict(recipe.get("sampling", {"strategy": "uniform"}))},  # a copy: no YAML anchor
        "label_names": list(info.get("extra", {}).get("label_names", [])),
        "weights": {"file": WEIGHTS_FILE, "sha256": file_sha256(weights), "bytes": weights.stat().st_size,
                    "dtype": "float16"},
        "encoder_hash": state_dict_hash(shipped.state_dict()),
        # A start file made from a packaged entry carries no selection of its own: the build's record then.
        "selection": info.get("extra", {}).get("selection") or metrics.get("selection", {}),
        "metrics": metrics,
        "recipe": recipe,
        "trained_on": trained_on,
    }
    (out_dir / "entry.yaml").write_text(yaml.dump(entry, Dumper=_PlainDumper, sort_keys=False))
    return out_dir


class _PlainDumper(yaml.SafeDumper):
    """Writes a value shared by two keys (a recipe's ``*anchor``) out twice: entry.yaml reads without aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def recipe_stages(recipe: dict[str, Any]) -> list[dict[str, Any]]:
    """The recipe's stages in order: ``stages: [{corpus, pretrain}, …]``, or one stage from top-level
    ``corpus``/``pretrain``. A later stage starts from the model the stage before it chose."""
    if "stages" in recipe:
        return list(recipe["stages"])
    return [{"corpus": recipe["corpus"], "pretrain": recipe["pretrain"]}]


def build_entry(name: str, work: Path, *, device: str = "auto", install: bool = False,
                epochs: int | None = None, from_stage: int = 1, init: Path | None = None,
                init_record: dict[str, Any] | None = None, earlier_stages: dict[str, Any] | None = None) -> Path:
    """Render, pretrain (every stage resumable) and package zoo entry ``name``; returns the entry folder.

    Args:
        name: the recipe (``recipes/NAME.yaml``).
        work: folder for corpora and run folders (``corpus-N``, ``stage-N``).
        device: ``auto``, ``cpu`` or ``cuda``.
        install: write the entry into the package instead of ``work/entry``.
        epochs: override every stage's epochs (quick checks).
        from_stage: skip the stages before this one; the first stage run starts from ``init``.
        init: model file the first stage run continues from (with ``from_stage`` > 1: the earlier stages'
            result, e.g. the shipped entry made into a file by :func:`tinyact.zoo.materialize`).
        init_record: where ``init`` came from (``init_encoder_hash``, ``init_trained_on``), kept in ``trained_on``.
        earlier_stages: the per-stage metrics of the entry ``init`` was, carried into the new ``metrics.stages``.
    """
    from tinyact.data.synth.corpus import CorpusConfig
    from tinyact.data.synth.corpus_files import build_corpus
    from tinyact.training.pretrain import PretrainConfig, pretrain

    recipe = read_recipe(name)
    stages = recipe_stages(recipe)
    if not 1 <= from_stage <= len(stages):
        raise ConfigError(f"recipe {name} has stages 1-{len(stages)}; --from-stage {from_stage} is not one of them")
    if from_stage > 1 and init is None:
        raise ConfigError(f"starting at stage {from_stage} needs --init: the model the stages before it chose")
    started = time.perf_counter()
    previous: Path | None = init
    result = None
    chosen: dict[str, Any] = dict(earlier_stages or {})
    for number, stage in enumerate(stages, start=1):
        if number < from_stage:
            continue
        corpus_dir, train_dir = work / f"corpus-{number}", work / f"stage-{number}"
        build_corpus(CorpusConfig.from_dict({**stage["corpus"], "out": corpus_dir}, source=f"recipe {name}: corpus {number}"))
        train = dict(stage["pretrain"])
        wanted = train.pop("probes", [])
        probes = [p for p in wanted if Path(p["data"]).is_dir()]
        if len(probes) < len(wanted):
            logger.warning("zoo build: some recipe probes are not on this machine; selection uses the rest "
                           "(or the corpus's validation split), so the result may differ from the shipped entry")
        if train.pop("init", None) == "previous":
            train["init"] = previous
        train_cfg = PretrainConfig.from_dict(
            {**train, "probes": probes, "corpus": corpus_dir, "out": train_dir, "device": device,
             **({"epochs": epochs} if epochs else {})},
            source=f"recipe {name}: pretrain {number}",
        )
        result = pretrain(train_cfg, resume=(train_dir / "last.pt").is_file())
        if result.epoch >= 0 or previous is None:  # a stage that kept its start passes on the start itself, not
            previous = result.model               # a grown copy of it (same latents, more blocks to run)
        chosen[f"stage_{number}"] = result.metrics  # epoch -1: the stage kept the model it started from
    assert result is not None and previous is not None, "a recipe has at least one stage"
    target = ENTRIES_DIR / name if install else work / "entry"
    trained_on = {**machine_description(device), "seconds_this_session": round(time.perf_counter() - started),
                  "date": time.strftime("%Y-%m-%d")}
    if from_stage > 1:
        trained_on["from_stage"] = {"stage": from_stage, "init": str(init), **(init_record or {})}
    # The entry's selection is that of the stage whose epoch ships: a later stage that kept its start adds its
    # record under "stages" but chose nothing new.
    selection = next((m for m in reversed(chosen.values()) if m.get("epoch", -1) >= 0), result.metrics)
    return package_entry(name, previous, target, recipe, {"selection": dict(selection), "stages": chosen},
                         trained_on, recipe.get("description", ""))
