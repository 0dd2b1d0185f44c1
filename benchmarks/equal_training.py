"""Accuracy at equal training: the default encoder's architecture against X3D-XS, same corpus, recipe and budget.

    python benchmarks/equal_training.py [--clips 6000] [--epochs 8] [--seed 0] [--work tinyact-data/equal-training]
        [--json docs/results/equal_training.json] [--plot docs/img/equal-training.png] [--device auto]
        [--dataset NAME=FOLDER:SPLITCSV ...]      # default: both Weizmann sets in ../shared
    python benchmarks/equal_training.py --quick --dataset ... --work /tmp/w     # seconds (the test suite)

1. **Corpus**: the windowed stage of ``zoo:everyday-64``'s recipe (stage 3: 25 everyday actions, 240 actors,
   rgb / grey / IR-like / mask styles, each clip a window of 16 frames at 7-9.5 frames/s), ``--clips`` clips,
   rendered once into ``--work/corpus`` (resumable).
2. **Training**, the same for both networks, from random weights: the recipe's first stage (supervised
   cross-entropy, AdamW 2e-3 with a half-epoch warm-up and a cosine to 5e-5, batch 32, label smoothing 0.1,
   dropout 0.2 before a linear head, random crops >= 0.8 of the side, flips), ``--epochs`` epochs over the corpus,
   each epoch probed on the Weizmann clips outside their test split (4 windows at 8 frames/s), the epoch with the
   best mean probe kept: the recipe's selection. Networks: ``fast-motion`` (:class:`VideoAutoEncoder3D`, the
   architecture of ``zoo:everyday-64``, 1024-d latent) and X3D-XS (its trunk up to the 2048-d feature its
   classifier reads: :class:`benchmarks.peer_models.x3d.X3DEncoder`), both at 16 x 64² (``--networks`` also
   takes the variants in :data:`VARIANTS`: other stems, inputs and depths). Resumable: a rerun continues each run
   from ``OUT/last.pt``.
3. **Evaluation**, the README's real-footage protocol through ``tinyact experiment table1`` itself (the
   chosen model file as ``--encoder``; every video read as the mean latent of 4 windows at 8 frames/s, and
   also with their mirror images; SVM, random forest, XGBoost and decision tree, grid search with stratified
   k-fold on train; the classifier and the reading chosen on val, ties by train CV; top-1 on the test persons,
   reported once). Beside it, leave-one-person-out over every clip with a fixed logistic regression (less
   variance than a 30-clip test split; nothing is chosen on it). ``--reference`` runs the shipped
   ``zoo:everyday-64`` through the same code, as the check that this path reproduces the README's figures.
4. **Latency**: one 16 x 64² clip, batch 1, fp32, encoder only, both networks in the same process, taking turns in
   five rounds (median of the rounds' medians, ``--repeats`` calls in all), with X3D-XS at its native 4 x 160² beside it.

The budget is equal (clips x epochs, batch, schedule), not the wall time: X3D-XS trains ~10x slower per clip on
a CPU. It is also far below the shipped model's (7 stages, ~820,000 clip presentations): both networks are
compared young, which is what this task's 2-core CPU allows (docs/BENCHMARKS.md says at which budget).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import console, latency_ms, machine_info, median, print_table, save_results  # noqa: E402
from benchmarks.peer_models.x3d import X3DEncoder, X3DEncoderConfig, x3d_xs  # noqa: E402
from benchmarks.real_footage import leave_one_person_out, parse_dataset  # noqa: E402
from tinyact.data.synth.corpus import CorpusConfig  # noqa: E402
from tinyact.data.synth.corpus_files import build_corpus  # noqa: E402
from tinyact.experiments.table1 import Table1Config, run_table1  # noqa: E402
from tinyact.models.checkpoint import load_model, register_builder  # noqa: E402
from tinyact.training.pretrain import PretrainConfig, build_encoder, pretrain, trained_modules  # noqa: E402
from tinyact.training.zoo_build import read_recipe, recipe_stages  # noqa: E402

WEIZMANN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "weizmann"
DEFAULT_DATASETS = [f"{name}={WEIZMANN / name}:{WEIZMANN / f'{name}-split.csv'}" for name in ("silhouettes", "rgb64")]
#: --quick (the test suite): a tiny corpus and two batches per epoch, one small classifier grid, no probe.
QUICK_CORPUS = {"size": 24, "frames": 6, "actors": 30, "shard_size": 25, "min_canvas": 48, "max_canvas": 64,
                "workers": 1}
QUICK_TRAIN = {"batch_size": 8, "max_batches": 2, "threads": 1, "probes": [], "select_on": "val"}
QUICK_TABLE1 = {"classifiers": ["svm"], "folds": 2, "grids": {"svm": {"clf__C": [1.0]}}}
LATENCY_ROUNDS = 5  # latency: the models take turns, five times
WINDOWS = {"strategy": "multi", "sample_fps": 8.0, "num_clips": 4}  # how everyday-64 reads a video
#: TinyAct encoders: the recipe's preset (fast-motion, the default's architecture) and variants of it
#: (VideoAutoEncoder3D overrides; fast-motion-t1: no temporal stride in the stem; fast-motion-s2: spatial stride 2
#: in the stem, 4x the positions after it, like X3D's first layer; fast: the frames instead of their residual;
#: -rgbres: both; -deep: two bottleneck residual blocks after each strided convolution, depth like X3D's;
#: -deep3: the same but none after the last, the architecture zoo:everyday-64 grows into in its stage 5;
#: -s2-b0220: -deep3 with spatial stride 2 in the stem and no blocks after it, benchmarks/finer_stem.py's candidate).
VARIANTS: dict[str, dict[str, Any]] = {
    "fast-motion": {}, "fast-motion-t1": {"stem_stride": [1, 4, 4]}, "fast-motion-s2": {"stem_stride": [2, 2, 2]},
    "fast": {"input_mode": "rgb"}, "fast-motion-rgbres": {"input_mode": "rgb+residual"},
    "fast-motion-deep": {"stage_blocks": [2, 2, 2, 2]}, "fast-motion-deep3": {"stage_blocks": [2, 2, 2, 0]},
    "fast-motion-s2-b0220": {"stage_blocks": [0, 2, 2, 0], "stem_stride": [2, 2, 2]},
}
NETWORKS = (*VARIANTS, "x3d-xs")
SHIPPED = "zoo:everyday-64"  # the default encoder (since its stage 5: fast-motion-deep3's architecture)


def build_x3d_encoder(config: dict[str, Any]) -> nn.Module:
    """Rebuild an :class:`X3DEncoder` from the config dict ``save_model`` wrote (``load_model``'s builder)."""
    known = {f.name for f in fields(X3DEncoderConfig)}
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in known}
    return X3DEncoder(X3DEncoderConfig(**values))


register_builder("X3DEncoder", build_x3d_encoder)  # so table1 loads the chosen X3D-XS file like any model file


def recipe_settings(clips: int, quick: bool = False, seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(corpus, pretrain)`` settings: the windowed stage's corpus with ``clips`` clips, the first stage's
    training from random weights with the windowed stage's probe reading (``quick``: tiny sizes, no probe).
    ``seed`` is added to the recipe's corpus and training seeds (0: the recipe's own, as in the recorded runs)."""
    stages = recipe_stages(read_recipe("everyday-64"))
    windowed = next(s for s in stages if s["corpus"].get("sample_fps"))
    train = {**stages[0]["pretrain"], "probe_sampling": windowed["pretrain"]["probe_sampling"]}
    train.pop("init", None)
    train["seed"] = int(train.get("seed", 0)) + seed
    train["probes"] = [p for p in train.get("probes", []) if Path(p["data"]).is_dir()]  # where the footage is
    corpus = {**windowed["corpus"], "clips": clips, "seed": int(windowed["corpus"].get("seed", 0)) + seed}
    return ({**corpus, **QUICK_CORPUS}, {**train, **QUICK_TRAIN}) if quick else (corpus, train)


def train_network(network: str, corpus: Path, train: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Pretrain ``network`` with the recipe (resuming a run in ``--work``); the selected epoch and every epoch's
    metrics."""
    out = args.work / network
    overrides = {**train.get("model_overrides", {}), **VARIANTS.get(network, {})}
    cfg = PretrainConfig.from_dict({**train, "corpus": corpus, "out": out, "epochs": args.epochs, "device": args.device,
                                    "model_overrides": overrides}, source=f"equal training: {network}")
    frames, size = args.input
    if args.seed:  # the recorded runs (seed 0) drew X3D-XS's initial weights from torch's default seed
        torch.manual_seed(cfg.seed)
    model = X3DEncoder(X3DEncoderConfig(frames, (size, size))) if network == "x3d-xs" else None  # None: cfg's preset
    result = pretrain(cfg, resume=(out / "last.pt").is_file(), model=model)  # a finished run only reloads
    with open(out / "metrics.csv") as handle:
        epochs = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    chosen, _ = load_model(result.model)
    return {"model": str(result.model), "epochs": epochs, "params_m": sum(p.numel() for m in trained_modules(chosen) for p in m.parameters()) / 1e6,
            "selected_epoch": result.epoch, "selection": result.metrics,
            "train_clips_per_s": median([r["clips_per_s"] for r in epochs])}


def evaluate(name: str, encoder: str, datasets: dict[str, tuple[Path, Path]], work: Path,
             quick: bool = False) -> dict[str, Any]:
    """Table 1 on each of ``datasets`` (name -> folder, split file) with ``encoder``, run in ``work/name``: the
    val-chosen classifier's test top-1, every row's val and test, and leave-one-person-out, per dataset
    (``quick``: table1's smallest grids, for the test suite)."""
    results = {}
    for dataset, (folder, split) in datasets.items():
        cfg = Table1Config(data=folder, layout="folder", split_file=split, encoder=encoder, sampling=WINDOWS,
                           baselines=[], out=work / name / f"table1-{dataset}", seed=0,
                           **(QUICK_TABLE1 if quick else {}))
        metrics = run_table1(cfg)
        best = metrics["best"]["classifier"]
        results[dataset] = {"classifier": best, "test_top1": metrics["best"]["top1"],
                            "val_top1": metrics["classifiers"][best]["val_top1"], "n_test": metrics["n_test"],
                            "by_classifier": {k: {"val": v["val_top1"], "test": v["top1"]}
                                              for k, v in metrics["classifiers"].items()},
                            **leave_one_person_out(Path(cfg.out), folder, split)}
    return results


def latencies(args: argparse.Namespace, train: dict[str, Any]) -> dict[str, float]:
    """Batch-1 CPU latency of the TinyAct encoders at the corpus's input, X3D-XS in both memory formats (``x3d-xs``
    is the faster: the peer gets its best) and X3D-XS at its native 4 x 160². The models take turns in
    ``LATENCY_ROUNDS`` rounds of ``--repeats / LATENCY_ROUNDS`` calls each, so that a drift of a shared CPU's
    speed (tens of percent between runs here) falls on every model alike; each figure is the median of the
    rounds' medians."""
    from tinyact.zoo import load_model_spec

    t, s = args.input
    clip = (t, 3, s, s)
    models: dict[str, tuple[Any, tuple[int, ...]]] = {}
    for name in [n for n in VARIANTS if n == "fast-motion" or n in args.networks]:
        config = PretrainConfig.from_dict({**train, "corpus": ".", "out": ".", "model_overrides": VARIANTS[name]})
        models[name] = (build_encoder(config, t, s).eval(), clip)
    models[SHIPPED] = (load_model_spec(SHIPPED)[0].eval(), clip)
    models |= x3d_xs_models(t, s)
    models["x3d-xs native 4x160"] = (models["x3d-xs contiguous"][0], (3, 4, 160, 160))
    return with_best_x3d_xs(latencies_in_turns(models, args.repeats))


def x3d_xs_models(frames: int, size: int) -> dict[str, tuple[Any, tuple[int, ...]]]:
    """X3D-XS at ``frames x size²`` in both memory formats, as :func:`latencies_in_turns` takes models."""
    return {"x3d-xs channels-last": (X3DEncoder(X3DEncoderConfig(frames, (size, size))).eval(), (frames, 3, size, size)),
            "x3d-xs contiguous": (x3d_xs().eval(), (3, frames, size, size))}  # [B, 3, T, H, W]


def with_best_x3d_xs(times: dict[str, float]) -> dict[str, float]:
    """``times`` with ``x3d-xs``: the faster of :func:`x3d_xs_models`' two formats (the peer gets its best)."""
    return {**times, "x3d-xs": min(times["x3d-xs channels-last"], times["x3d-xs contiguous"])}


def latencies_in_turns(models: Mapping[str, tuple[Any, tuple[int, ...]]], repeats: int) -> dict[str, float]:
    """Batch-1 latency (ms) of each ``name: (model, clip shape)``: the models take turns in ``LATENCY_ROUNDS``
    rounds of ``repeats / LATENCY_ROUNDS`` calls each; each figure is the median of the rounds' medians."""
    calls: dict[str, list[float]] = {name: [] for name in models}
    per_round = max(1, repeats // LATENCY_ROUNDS)
    for _ in range(LATENCY_ROUNDS):
        for name, (model, shape) in models.items():
            calls[name].append(latency_ms(model, shape, per_round))  # the median of this round's calls
    return {name: median(values) for name, values in calls.items()}


def plot(rows: list[dict[str, Any]], x3d_ms: float, path: Path) -> None:
    """Real-footage test top-1 against batch-1 latency: a colour per network, a marker per dataset, and the
    target's latency bound (half of X3D-XS's) as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    fig, ax = plt.subplots(figsize=(8.4, 4.2))
    tab10 = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]  # a ListedColormap
    colours = iter(tab10[:7] + tab10[8:])  # grey is the shipped row's
    for row in rows:
        hollow = "params_m" not in row  # the shipped model: drawn open, so a point under it stays visible
        colour = "tab:grey" if hollow else next(colours)
        for dataset, marker in zip(row["real"], "osD^v", strict=False):
            top1 = 100 * row["real"][dataset]["test_top1"]
            ax.scatter(row["latency_ms"], top1, marker=marker, s=110 if hollow else 60, edgecolors=colour,
                       facecolors="none" if hollow else colour, label=f"{row['name']}: {dataset}")
    ax.axvline(0.5 * x3d_ms, color="black", linestyle="--", linewidth=1)
    ax.text(0.5 * x3d_ms, 2, " 0.5x X3D-XS latency", fontsize=8, rotation=90, va="bottom")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())  # "15", not "1.5 x 10^1"
    ax.xaxis.set_minor_formatter(ScalarFormatter())
    ax.set_ylim(0, 105)
    ax.set_xlabel("batch-1 CPU latency of one clip, fp32 (ms, log)")
    ax.set_ylabel("real footage, test top-1 (%)")
    ax.set_title("Same corpus, recipe and budget: test top-1 against latency", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the axes: no point hidden
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6000, help="corpus clips (the recipe's stages have 20-24k)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("tinyact-data/equal-training"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--networks", nargs="+", default=["fast-motion", "x3d-xs"], choices=NETWORKS)
    parser.add_argument("--dataset", action="append", type=parse_dataset, metavar="NAME=FOLDER:SPLITCSV",
                        help="real footage to evaluate on (repeatable; default: both Weizmann sets)")
    parser.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                        help="also evaluate the shipped zoo:everyday-64 the same way")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0,
                        help="added to the recipe's corpus and training seeds: another draw of actors, clips and "
                             "initial weights (0: the recorded runs)")
    parser.add_argument("--quick", action="store_true", help="tiny corpus and training (the test suite)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    args.datasets = real_datasets(parser, args.dataset)
    return args


def real_datasets(parser: argparse.ArgumentParser, given: list[tuple[str, Path, Path]] | None
                  ) -> dict[str, tuple[Path, Path]]:
    """``{name: (folder, split file)}`` of ``--dataset`` (default: both Weizmann sets); a parser error (exit 2)
    names the folders that are not there."""
    datasets = {name: (folder, split) for name, folder, split in
                (given or [parse_dataset(text) for text in DEFAULT_DATASETS])}
    missing = [str(f) for f, _ in datasets.values() if not f.is_dir()]
    if missing:
        parser.error(f"real footage not found: {', '.join(missing)} (see ../shared/README.md)")
    return datasets


def render_recipe_corpus(args: argparse.Namespace, source: str, quick: bool = False) -> tuple[Path, dict[str, Any]]:
    """Render (or resume) the windowed corpus of ``args.clips`` clips (``quick``: tiny) into ``args.work /
    "corpus"``; sets ``args.input`` to its ``(frames, size)`` and returns the corpus folder and the recipe's
    training settings."""
    corpus_settings, train = recipe_settings(args.clips, quick, args.seed)
    args.input = (int(corpus_settings["frames"]), int(corpus_settings["size"]))
    corpus = args.work / "corpus"
    build_corpus(CorpusConfig.from_dict({**corpus_settings, "out": corpus}, source=source))
    return corpus, train


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    corpus, train = render_recipe_corpus(args, "equal training: corpus", args.quick)
    lat = latencies(args, train)
    rows: list[dict[str, Any]] = []
    for network in args.networks:
        trained = train_network(network, corpus, train, args)
        rows.append({"name": network, **trained, "latency_ms": lat[network],
                     "real": evaluate(network, trained["model"], args.datasets, args.work, args.quick)})
        console.print({k: v for k, v in rows[-1].items() if k != "epochs"})
    if args.reference:
        rows.append({"name": f"{SHIPPED} (shipped, full budget)", "latency_ms": lat[SHIPPED],
                     "real": evaluate("reference", SHIPPED, args.datasets, args.work, args.quick)})
    ratios = {"default encoder, same input": lat[SHIPPED] / lat["x3d-xs"],
              "default encoder against X3D-XS native 4x160": lat[SHIPPED] / lat["x3d-xs native 4x160"],
              "fast-motion, same input": lat["fast-motion"] / lat["x3d-xs"]}
    report(args, rows, lat, ratios)
    if args.plot:
        plot(rows, lat["x3d-xs"], args.plot)
    result = {"command": " ".join(sys.argv), "machine": machine_info(), "protocol": __doc__, "clips": args.clips,
              "seed": args.seed, "epochs": args.epochs, "input": {"frames": args.input[0], "size": args.input[1]},
              "latency_ms": lat, "latency_ratio": ratios, "rows": rows,
              "seconds": round(time.perf_counter() - started, 1)}
    if args.json:
        save_results(args.json, result)
    return result


def report(args: argparse.Namespace, rows: list[dict[str, Any]], lat: dict[str, float],
           ratios: dict[str, float]) -> None:
    """The result tables on the console."""
    def real(row: dict[str, Any], dataset: str) -> str:
        result = row["real"][dataset]
        best = max(v["test"] for v in result["by_classifier"].values())
        return f"{100 * result['test_top1']:.1f} ({result['classifier']}; best row {100 * best:.1f})"

    names = list(args.datasets)
    table = [[r["name"], f"{r['params_m']:.2f}" if "params_m" in r else "",
              f"{r['selected_epoch'] + 1} ({100 * r['selection']['val_top1']:.1f})" if "selection" in r else "",
              *(real(r, d) for d in names), f"{r['latency_ms']:.1f}"] for r in rows]
    print_table(f"Equal training: {args.clips} clips x {args.epochs} epochs; test top-1 %, classifier and reading "
                "chosen on val", ["network", "params (M)", "epoch kept (corpus val %)", *names, "batch-1 ms"], table)
    for key, which in (("leave_one_person_out", "all persons"), ("leave_one_person_out_non_test", "non-test persons")):
        print_table(f"Leave-one-person-out over {which}, logistic regression (as recorded / mirrored too), %",
                    ["network", *names],
                    [[r["name"], *("{:.1f} / {:.1f}".format(*(100 * v for v in r["real"][d][key].values()))
                                   for d in names)] for r in rows])
    print_table(f"Batch-1 CPU latency (ms), {args.input[0]}x{args.input[1]}² clips", ["model", "ms"],
                [[k, f"{v:.1f}"] for k, v in lat.items()])
    console.print("latency / X3D-XS's (target <= 0.5): "
                  + ", ".join(f"{v:.2f} {k}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
