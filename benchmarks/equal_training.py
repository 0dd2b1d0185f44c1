"""Accuracy at equal training: the default encoder's architecture against X3D-XS, same corpus, recipe and budget.

    python benchmarks/equal_training.py [--clips 6000] [--epochs 4] [--work tinyact-data/equal-training]
        [--json docs/results/equal_training.json] [--plot docs/img/equal-training.png] [--device auto]

1. **Corpus**: the windowed stage of ``zoo:everyday-64``'s recipe (stage 3: 25 everyday actions, 240 actors,
   rgb / grey / IR-like / mask styles, each clip a window of 16 frames at 7-9.5 frames/s), ``--clips`` clips,
   rendered once into ``--work/corpus`` (resumable).
2. **Training**, the same for both networks, from random weights: the recipe's first stage (supervised
   cross-entropy, AdamW 2e-3 with a half-epoch warm-up and a cosine to 5e-5, batch 32, label smoothing 0.1,
   dropout 0.2 before a linear head, random crops >= 0.8 of the side, flips), ``--epochs`` epochs over the corpus,
   each epoch probed on the Weizmann clips outside their test split (4 windows at 8 frames/s), the epoch with the
   best mean probe kept: the recipe's selection. Networks: ``fast-motion`` (:class:`VideoAutoEncoder3D`, the
   architecture of ``zoo:everyday-64``, 1024-d latent) and X3D-XS (its trunk up to the 2048-d feature its
   classifier reads: :class:`benchmarks.peer_models.x3d.X3DEncoder`), both at 16 x 64². Resumable: a rerun
   continues each run from ``OUT/last.pt``.
3. **Evaluation**, the README's real-footage protocol through ``tinyact experiment table1`` itself (the
   chosen model file as ``--encoder``; every video read as the mean latent of 4 windows at 8 frames/s, and
   also with their mirror images; SVM, random forest, XGBoost and decision tree, grid search with stratified
   k-fold on train; the classifier and the reading chosen on val, ties by train CV; top-1 on the test persons,
   reported once). ``--reference`` runs the shipped ``zoo:everyday-64`` through the same code, as the check that
   this path reproduces the README's figures.
4. **Latency**: one 16 x 64² clip, batch 1, fp32, encoder only, both networks in the same process (median of
   ``--repeats`` after a warm-up), with X3D-XS at its native 4 x 160² beside it.

The budget is equal (clips x epochs, batch, schedule), not the wall time: X3D-XS trains ~10x slower per clip on
a CPU. It is also far below the shipped model's (4 stages, ~440,000 clip presentations): both networks are
compared young, which is what this task's 2-core CPU allows (docs/BENCHMARKS.md says at which budget).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import console, machine_info, median, print_table, save_results, time_repeats  # noqa: E402
from benchmarks.peer_models.x3d import X3DEncoder, X3DEncoderConfig, x3d_xs  # noqa: E402
from tinyact.data.synth.corpus import CorpusConfig  # noqa: E402
from tinyact.data.synth.corpus_files import build_corpus  # noqa: E402
from tinyact.experiments.table1 import Table1Config, run_table1  # noqa: E402
from tinyact.models.checkpoint import load_model, register_builder  # noqa: E402
from tinyact.training.pretrain import PretrainConfig, build_encoder, pretrain  # noqa: E402
from tinyact.training.zoo_build import read_recipe, recipe_stages  # noqa: E402

logger = logging.getLogger("equal_training")
WEIZMANN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "weizmann"
DATASETS = {"silhouettes": WEIZMANN / "silhouettes", "rgb64": WEIZMANN / "rgb64"}
WINDOWS = {"strategy": "multi", "sample_fps": 8.0, "num_clips": 4}  # how everyday-64 reads a video
NETWORKS = ("fast-motion", "x3d-xs")


def build_x3d_encoder(config: dict[str, Any]) -> nn.Module:
    """Rebuild an :class:`X3DEncoder` from the config dict ``save_model`` wrote (``load_model``'s builder)."""
    known = {f.name for f in fields(X3DEncoderConfig)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in known}
    return X3DEncoder(X3DEncoderConfig(**values))


register_builder("X3DEncoder", build_x3d_encoder)  # so table1 loads the chosen X3D-XS file like any model file


def recipe_settings(clips: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(corpus, pretrain)`` settings: the windowed stage's corpus with ``clips`` clips, the first stage's
    training from random weights with the windowed stage's probe reading."""
    stages = recipe_stages(read_recipe("everyday-64"))
    windowed = next(s for s in stages if s["corpus"].get("sample_fps"))
    train = {**stages[0]["pretrain"], "probe_sampling": windowed["pretrain"]["probe_sampling"]}
    train.pop("init", None)
    return {**windowed["corpus"], "clips": clips}, train


def train_network(network: str, corpus: Path, train: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Pretrain ``network`` with the recipe (resuming a run in ``--work``); the selected epoch and every epoch's
    metrics."""
    out = args.work / network
    probes = [p for p in train["probes"] if Path(p["data"]).is_dir()]
    cfg = PretrainConfig.from_dict({**train, "probes": probes, "corpus": corpus, "out": out, "epochs": args.epochs,
                                    "device": args.device}, source=f"equal training: {network}")
    model = X3DEncoder() if network == "x3d-xs" else None  # None: cfg.preset (fast-motion)
    result = pretrain(cfg, resume=(out / "last.pt").is_file(), model=model)  # a finished run only reloads
    with open(out / "metrics.csv") as handle:
        epochs = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    chosen, _ = load_model(result.model)
    return {"model": str(result.model), "epochs": epochs, "params_m": _params(chosen) / 1e6,
            "selected_epoch": result.epoch, "selection": result.metrics,
            "train_clips_per_s": median([r["clips_per_s"] for r in epochs])}


def _params(model: nn.Module) -> int:
    modules = getattr(model, "encoder_modules", lambda: [model])()
    return sum(p.numel() for m in modules for p in m.parameters())


def evaluate(name: str, encoder: str, args: argparse.Namespace) -> dict[str, Any]:
    """Table 1 on each Weizmann set with ``encoder``: the val-chosen classifier's test top-1 per set."""
    results = {}
    for dataset, folder in DATASETS.items():
        cfg = Table1Config(data=folder, layout="folder", split_file=folder.parent / f"{dataset}-split.csv",
                           encoder=encoder, sampling=WINDOWS, baselines=[], out=args.work / name / f"table1-{dataset}",
                           seed=0)
        metrics = run_table1(cfg)
        best = metrics["best"]["classifier"]
        results[dataset] = {"classifier": best, "test_top1": metrics["best"]["top1"],
                            "val_top1": metrics["classifiers"][best]["val_top1"], "n_test": metrics["n_test"],
                            "by_classifier": {k: {"val": v["val_top1"], "test": v["top1"]}
                                              for k, v in metrics["classifiers"].items()},
                            "leave_one_person_out": leave_one_person_out(Path(cfg.out), dataset)}
    return results


def persons(dataset: str) -> dict[str, str]:
    """Clip id (``class__stem``, as Table 1 names clips) -> person, from the set's ``*-clips.csv``."""
    with open(DATASETS[dataset].parent / f"{dataset}-clips.csv", newline="") as handle:
        return {row["path"].rsplit(".", 1)[0].replace("/", "__"): row["person"] for row in csv.DictReader(handle)}


def leave_one_person_out(run: Path, dataset: str) -> dict[str, float]:
    """Top-1 of a standardised logistic regression (C = 0.5, the probe's) over all clips, each person's clips
    predicted by a fit on the other persons', for each reading of Table 1's latents (``run/latents``).

    A second view with less variance than the 30-clip test split: every clip of the 9 persons is scored once,
    nothing is chosen on it (the same fixed classifier for every encoder), and it is the protocol of the
    published Weizmann numbers."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tinyact.latents import LatentsFile

    person = persons(dataset)
    out = {}
    for reading, name in (("as recorded", "trained.npz"), ("mirrored too", "trained+mirror.npz")):
        latents = LatentsFile.load(run / "latents" / name)
        groups = [person[str(i)] for i in latents.clip_ids]
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
        predicted = cross_val_predict(model, latents.latents, latents.labels, groups=groups, cv=LeaveOneGroupOut())
        out[reading] = float((predicted == latents.labels).mean())
    return out


def latency_ms(model: nn.Module, shape: tuple[int, ...], repeats: int) -> float:
    """Median batch-1 encode time (ms) of ``model`` on a random clip of ``shape`` (fp32, no grad)."""
    x = torch.randn(1, *shape)
    encode = getattr(model, "encode", model)
    with torch.inference_mode():
        return median(time_repeats(lambda: encode(x), repeats, warmup=3)) * 1000


def latencies(args: argparse.Namespace, train: dict[str, Any]) -> dict[str, float]:
    """Batch-1 CPU latency of both encoders at 16 x 64² (X3D-XS in both memory formats; ``x3d-xs 16x64`` is the
    faster: the peer gets its best), and X3D-XS at its native 4 x 160²."""
    fast = build_encoder(PretrainConfig.from_dict({**train, "probes": [], "corpus": ".", "out": "."}), 16, 64).eval()
    plain = x3d_xs().eval()  # [B, 3, T, H, W], contiguous
    times = {
        "fast-motion 16x64": latency_ms(fast, (16, 3, 64, 64), args.repeats),
        "x3d-xs 16x64 channels-last": latency_ms(X3DEncoder().eval(), (16, 3, 64, 64), args.repeats),
        "x3d-xs 16x64 contiguous": latency_ms(plain, (3, 16, 64, 64), args.repeats),
        "x3d-xs native 4x160": latency_ms(plain, (3, 4, 160, 160), args.repeats),
    }
    times["x3d-xs 16x64"] = min(times["x3d-xs 16x64 channels-last"], times["x3d-xs 16x64 contiguous"])
    return times


def plot(rows: list[dict[str, Any]], x3d_ms: float, path: Path) -> None:
    """Real-footage test top-1 against batch-1 latency: a colour per network, a marker per dataset, and the
    target's latency bound (half of X3D-XS's) as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for row, colour in zip(rows, ("tab:blue", "tab:orange", "tab:grey"), strict=False):
        hollow = "params_m" not in row  # the shipped model: drawn open, so a point under it stays visible
        for dataset, marker in (("silhouettes", "o"), ("rgb64", "s")):
            top1 = 100 * row["real"][dataset]["test_top1"]
            ax.scatter(row["latency_ms"], top1, marker=marker, s=110 if hollow else 60, edgecolors=colour,
                       facecolors="none" if hollow else colour, label=f"{row['name']}: {dataset}")
    ax.axvline(0.5 * x3d_ms, color="black", linestyle="--", linewidth=1)
    ax.text(0.5 * x3d_ms, 2, " 0.5x X3D-XS latency", fontsize=8, rotation=90, va="bottom")
    ax.set_xscale("log")
    ax.set_ylim(0, 105)
    ax.set_xlabel("batch-1 CPU latency, one 16x64² clip, fp32 (ms, log)")
    ax.set_ylabel("Weizmann test top-1 (%)")
    ax.set_title("Same corpus, recipe and budget (o silhouettes, □ rgb64)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6000, help="corpus clips (the recipe's stages have 20-24k)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("tinyact-data/equal-training"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                        help="also evaluate the shipped zoo:everyday-64 the same way")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    missing = [str(f) for f in DATASETS.values() if not f.is_dir()]
    if missing:
        raise SystemExit(f"real footage not found: {', '.join(missing)} (see ../shared/README.md)")
    corpus_settings, train = recipe_settings(args.clips)
    corpus = args.work / "corpus"
    build_corpus(CorpusConfig.from_dict({**corpus_settings, "out": corpus}, source="equal training: corpus"))
    lat = latencies(args, train)
    rows: list[dict[str, Any]] = []
    for network in args.networks:
        trained = train_network(network, corpus, train, args)
        key = "fast-motion 16x64" if network == "fast-motion" else "x3d-xs 16x64"
        rows.append({"name": network, **trained, "latency_ms": lat[key], "real": evaluate(network, trained["model"], args)})
        console.print({k: v for k, v in rows[-1].items() if k != "epochs"})
    if args.reference:
        rows.append({"name": "zoo:everyday-64 (shipped, full budget)", "latency_ms": lat["fast-motion 16x64"],
                     "real": evaluate("reference", "zoo:everyday-64", args)})
    def real(row: dict[str, Any], dataset: str) -> str:
        result = row["real"][dataset]
        best = max(v["test"] for v in result["by_classifier"].values())
        return f"{100 * result['test_top1']:.1f} ({result['classifier']}; best row {100 * best:.1f})"

    table = [[r["name"], f"{r['params_m']:.2f}" if "params_m" in r else "",
              f"{r['selected_epoch'] + 1} ({100 * r['selection']['val_top1']:.1f})" if "selection" in r else "",
              *(real(r, d) for d in DATASETS), f"{r['latency_ms']:.1f}"] for r in rows]
    print_table(f"Equal training: {args.clips} clips x {args.epochs} epochs; Weizmann test top-1 %, classifier and "
                "reading chosen on val",
                ["network", "params (M)", "epoch kept (corpus val %)", "silhouettes", "rgb64", "batch-1 ms (16x64²)"],
                table)
    print_table("Leave-one-person-out over all 9 persons, logistic regression (as recorded / mirrored too), %",
                ["network", *DATASETS],
                [[r["name"], *("{:.1f} / {:.1f}".format(*(100 * v for v in r["real"][d]["leave_one_person_out"].values()))
                               for d in DATASETS)] for r in rows])
    print_table("Batch-1 CPU latency (ms)", ["model", "ms"], [[k, f"{v:.1f}"] for k, v in lat.items()])
    ratios = {"at 16x64": lat["fast-motion 16x64"] / lat["x3d-xs 16x64"],
              "against X3D-XS native 4x160": lat["fast-motion 16x64"] / lat["x3d-xs native 4x160"]}
    console.print("latency of fast-motion / X3D-XS (target <= 0.5): "
                  + ", ".join(f"{v:.2f} {k}" for k, v in ratios.items()))
    if args.plot:
        plot(rows, lat["x3d-xs 16x64"], args.plot)
    if args.json:
        save_results(args.json, {"command": " ".join(sys.argv), "machine": machine_info(), "protocol": __doc__,
                                 "clips": args.clips, "epochs": args.epochs, "latency_ms": lat,
                                 "latency_ratio": ratios, "rows": rows,
                                 "seconds": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    main()
