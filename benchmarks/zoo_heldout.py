"""A zoo encoder on the pretraining corpus's held-out actors: how well its frozen latents separate the 25 classes.

    python benchmarks/zoo_heldout.py --corpus tinyact-data/zoo-build/everyday-64/corpus-3 \\
        [--encoder zoo:everyday-64] [--train-clips 5000] [--json docs/results/zoo_synthetic_heldout.json]

Protocol: the encoder is frozen. Each classifier of ``--classifiers`` is fitted on the latents of up to
``--train-clips`` clips of the corpus's *train* actors (a class-balanced, seeded subset) at each point of its grid:
``logistic`` a standardised logistic regression (``C`` in 0.05, 0.5, 5), ``svm`` TinyAct's RBF SVM with its
default table1 grid (``tinyact.classifiers.estimators.GRIDS``). Each clip is read as recorded and, as ``tinyact
experiment table1 --mirror auto`` does, mirrored too (the mean latent of the clip and its mirror image; no corpus
class depends on direction). Classifier, grid point and reading are chosen together on the *val* actors' clips
(ties: the reading as recorded, then the earlier candidate), and top-1 reported once on the *test* actors' clips —
actors never seen in pretraining; each classifier's own val-chosen point is scored on test too. The default is
``logistic`` alone: ``--classifiers logistic,svm`` on stage 9's corpus chose an SVM on val that scored no better on
test than the logistic regression (docs/BENCHMARKS.md), and costs 12 more fits. ``--motion-crop [VARIANT]`` adds the
readings of a crop around the motion (:data:`CROP_READINGS`; a measured candidate that does not ship,
benchmarks/reading_at_test_time.py) to those val chooses among.
Also reported: test top-1 per rendering style (rgb, grey, ir, mask; inverted masks apart), view, camera motion,
the share of the frame the person visibly covers, and class. The corpus must be one the encoder was not selected
on for its test split (every corpus keeps 10 % of its actors out of training).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import console, print_table, save_results  # noqa: E402
from benchmarks.reading_at_test_time import CROPS, motion_crop, recorded_and_mirrored  # noqa: E402
from tinyact.data.synth.corpus_files import CorpusDataset  # noqa: E402
from tinyact.zoo import load_model_spec  # noqa: E402

C_GRID = (0.05, 0.5, 5.0)
READINGS = ("recorded", "mirrored")
CROP_READINGS = ("motion crop", "motion crop mirrored", "full + motion crop mirrored")  # with --motion-crop
CLASSIFIERS = ("logistic", "svm")
DEFAULT_CLASSIFIERS = "logistic"  # the SVM did no better on stage 9's corpus (docs/BENCHMARKS.md)


def candidates(kinds: list[str], seed: int) -> list[tuple[str, Any]]:
    """``(name, unfitted estimator)`` of every grid point of the classifiers ``kinds``, in the order ties are
    broken (fit clones of them)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import ParameterGrid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tinyact.classifiers.estimators import GRIDS, make_estimator

    found: list[tuple[str, Any]] = []
    for kind in kinds:
        if kind == "logistic":
            found += [(f"logistic C={c}", make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)))
                      for c in C_GRID]
        elif kind == "svm":
            found += [("svm " + " ".join(f"{k.removeprefix('clf__')}={v}" for k, v in point.items()),
                       make_estimator("svm", seed, **point)) for point in ParameterGrid(GRIDS["svm"])]
        else:
            raise SystemExit(f"unknown classifier {kind!r}: use {', '.join(CLASSIFIERS)}")
    return found


def balanced_subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Indices of at most ``limit`` clips, the same number per class (seeded)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = max(1, limit // len(classes))
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]
    return np.sort(np.concatenate(picks))


def encode_split(model: torch.nn.Module, data: CorpusDataset, indices: np.ndarray, batch: int = 256,
                 crop: str | None = None) -> dict[str, np.ndarray]:
    """Latents ``[N, D]`` of the chosen clips of one corpus split, by reading: as recorded and mirrored too (with
    ``crop``, a variant of benchmarks/reading_at_test_time.py's ``CROPS``, also :data:`CROP_READINGS`)."""
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(indices), batch):
        clips = torch.stack([data[int(i)][0] for i in indices[start : start + batch]])
        found = dict(zip(READINGS, recorded_and_mirrored(model, clips), strict=True))
        if crop:
            cropped, _ = motion_crop(clips, **CROPS[crop])
            found["motion crop"], found["motion crop mirrored"] = recorded_and_mirrored(model, cropped)
            found["full + motion crop mirrored"] = (found["mirrored"] + found["motion crop mirrored"]) / 2
        for reading, z in found.items():
            parts.setdefault(reading, []).append(z)
    return {reading: np.concatenate(z) for reading, z in parts.items()}


RECORDED_FACTORS = ("style", "view", "camera", "person_area")
AREA_BINS = (1.0, 3.0, 10.0)  # % of the frame the person's unoccluded body covers (a 64 px frame: 41, 123, 410 px)


def area_bin(value: str) -> str:
    """The bin of a recorded ``person_area`` ('' where the corpus has none)."""
    if not value:
        return ""
    area = float(value)
    edges = ("0", *(f"{e:g}" for e in AREA_BINS))
    index = sum(area >= e for e in AREA_BINS)
    return f"{edges[index]}-{edges[index + 1]} %" if index < len(AREA_BINS) else f">= {edges[-1]} %"


def recorded_factors(corpus: Path, split: str) -> dict[str, np.ndarray]:
    """Each :data:`RECORDED_FACTORS` column for every clip of ``split``, in CorpusDataset's order ('' where the
    corpus did not record it)."""
    with open(corpus / "clips.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == split]
    return {factor: np.array([row.get(factor) or "" for row in rows]) for factor in RECORDED_FACTORS}


def draw_failures(path: Path, clips: list[torch.Tensor], titles: list[str], frames: int = 6) -> None:
    """One row per clip (``uint8 [T, 3, S, S]``): ``frames`` frames spread over it, titled true -> predicted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(clips), frames, figsize=(frames * 1.1, len(clips) * 1.25), squeeze=False)
    for row, (clip, title) in enumerate(zip(clips, titles, strict=True)):
        for k, t in enumerate(np.linspace(0, len(clip) - 1, frames).round().astype(int)):
            axes[row, k].imshow(clip[t].permute(1, 2, 0).numpy())
            axes[row, k].axis("off")
        axes[row, 0].set_title(title, fontsize=6, loc="left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="a rendered corpus (tinyact data synth --profile pretrain)")
    parser.add_argument("--encoder", default="zoo:everyday-64", help="zoo:NAME or a model file")
    parser.add_argument("--train-clips", type=int, default=5000, help="train clips the probe is fitted on")
    parser.add_argument("--classifiers", default=DEFAULT_CLASSIFIERS,
                        help=f"comma-separated, chosen among on val: {', '.join(CLASSIFIERS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--failures", type=Path, help="draw some misclassified test clips into this PNG")
    parser.add_argument("--motion-crop", nargs="?", const="extent", default=None, choices=list(CROPS),
                        metavar="VARIANT", help="also the motion-crop readings of benchmarks/reading_at_test_time.py "
                        f"(a candidate, not what the encoder ships with); VARIANT one of {', '.join(CROPS)} [extent]")
    args = parser.parse_args(argv)

    from sklearn.base import clone

    probes = candidates([k.strip() for k in args.classifiers.split(",") if k.strip()], args.seed)
    model, info = load_model_spec(args.encoder)
    started = time.perf_counter()
    splits = {name: CorpusDataset(args.corpus, name) for name in ("train", "val", "test")}
    chosen = {"train": balanced_subset(splits["train"].labels, args.train_clips, args.seed),
              "val": np.arange(len(splits["val"])), "test": np.arange(len(splits["test"]))}
    latents = {name: encode_split(model, splits[name], idx, crop=args.motion_crop) for name, idx in chosen.items()}
    readings = READINGS + (CROP_READINGS if args.motion_crop else ())
    labels = {name: splits[name].labels[idx] for name, idx in chosen.items()}
    encode_s = time.perf_counter() - started

    scores = {}
    for reading in readings:
        for name, template in probes:
            probe = clone(template).fit(latents["train"][reading], labels["train"])
            scores[reading, name] = (float(probe.score(latents["val"][reading], labels["val"])), probe)
    order = [name for name, _ in probes]

    def val_best(keys: list[tuple[str, str]]) -> tuple[str, str]:
        return max(keys, key=lambda key: (scores[key][0], -readings.index(key[0]), -order.index(key[1])))

    best = val_best(list(scores))
    probe = scores[best][1]
    predicted = probe.predict(latents["test"][best[0]])
    correct = predicted == labels["test"]
    by_kind: dict[str, dict[str, Any]] = {}  # each classifier's own val-chosen point and its test top-1, beside the overall choice
    for kind in dict.fromkeys(name.split()[0] for name in order):
        key = val_best([k for k in scores if k[1].split()[0] == kind])
        by_kind[kind] = {"chosen": f"{key[0]} {key[1]}", "val_top1": scores[key][0],
                         "test_top1": float(scores[key][1].score(latents["test"][key[0]], labels["test"]))}
    factors = {f: values[chosen["test"]] for f, values in recorded_factors(args.corpus, "test").items()}
    factors["person_area"] = np.array([area_bin(v) for v in factors["person_area"]])
    # The same probe on the clips it was fitted on: what of a group is hard even for actors it has seen.
    fitted = probe.predict(latents["train"][best[0]]) == labels["train"]
    fitted_area = np.array([area_bin(v) for v in recorded_factors(args.corpus, "train")["person_area"][chosen["train"]]])
    names = splits["test"].label_names
    result = {
        "protocol": f"frozen encoder; {', '.join(by_kind)} fitted on train actors' clips at each grid point, "
                    "classifier, grid point and reading chosen on val actors, top-1 on test actors (never in "
                    "pretraining)",
        "encoder": args.encoder, "encoder_hash": str(info["hash"]), "corpus": str(args.corpus),
        "classes": len(names), "n_train": len(chosen["train"]), "n_val": len(chosen["val"]), "n_test": len(chosen["test"]),
        "val_top1": {f"{r} {name}": scores[r, name][0] for r, name in scores}, "chosen_reading": best[0],
        "chosen_classifier": best[1], "test_top1": float(correct.mean()), "by_classifier": by_kind,
        # Corpora rendered before clips.csv recorded these factors have none: no breakdown then.
        **{f"test_top1_by_{f}": {v: float(correct[values == v].mean()) for v in sorted(set(values)) if v}
           for f, values in factors.items()},
        "train_top1_by_person_area": {v: float(fitted[fitted_area == v].mean()) for v in sorted(set(fitted_area)) if v},
        "test_clips_by_person_area": {v: int((factors["person_area"] == v).sum())
                                      for v in sorted(set(factors["person_area"])) if v},
        "test_top1_by_class": {names[c]: float(correct[labels["test"] == c].mean()) for c in np.unique(labels["test"])},
        "test_correct": "".join("1" if c else "0" for c in correct),  # per test clip, for paired comparisons
        "encode_s": round(encode_s, 1),
    }
    chosen_of_kind = {v["chosen"]: v["test_top1"] for v in by_kind.values()}
    rows = [[r, name, f"{scores[r, name][0] * 100:.1f}",
             f"{chosen_of_kind[f'{r} {name}'] * 100:.1f}" if f"{r} {name}" in chosen_of_kind else "",
             "chosen" if (r, name) == best else ""] for r, name in scores]
    print_table(f"{args.encoder} on held-out actors of {args.corpus.name} ({len(names)} classes)",
                ["reading", "classifier", "val %", "test % (each classifier's val-chosen row)", ""], rows)
    for factor in RECORDED_FACTORS:
        if result[f"test_top1_by_{factor}"]:
            console.print(f"test by {factor}: "
                          + ", ".join(f"{k} {v * 100:.1f}" for k, v in result[f"test_top1_by_{factor}"].items()))
    if result["train_top1_by_person_area"]:
        console.print("the probe on its own (train-actor) clips, by person_area: "
                      + ", ".join(f"{k} {v * 100:.1f}" for k, v in result["train_top1_by_person_area"].items()))
    worst = sorted(result["test_top1_by_class"].items(), key=lambda kv: kv[1])[:6]
    console.print("hardest classes: " + ", ".join(f"{k} {v * 100:.0f}" for k, v in worst))
    if args.json:
        save_results(args.json, result)
    wrong = np.flatnonzero(~correct)
    if args.failures and len(wrong):
        picks = np.random.default_rng(args.seed).permutation(wrong)[:10]
        draw_failures(args.failures, [splits["test"][int(chosen["test"][i])][0] for i in picks],
                      [f"{names[labels['test'][i]]} -> {names[predicted[i]]} ({factors['style'][i]}, "
                       f"{factors['camera'][i]}, area {factors['person_area'][i] or '?'})" for i in picks])
    return result


if __name__ == "__main__":
    main()
