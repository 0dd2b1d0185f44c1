"""A finer stem for small persons: the shipped encoder fine-tuned with its stem's spatial stride as shipped (4),
halved (2), at 3, and at 4 with a 5-wide kernel that reads every pixel, and finer stems paid for within the latency
bound (time for space, fewer blocks at the finest grid); same corpus, recipe and budget; synthetic held-out actors
by the person's size, real footage, latency.

    python benchmarks/finer_stem.py [--clips 10000] [--epochs 2] [--seed 9] [--work tinyact-data/finer-stem]
        [--arms stride4,stride2,...] [--json docs/results/finer_stem.json]
        [--dataset NAME=FOLDER:SPLITCSV ...]   # default: both Weizmann sets

Why: on rendered actors the shipped encoder scores 53-60 % where the person covers < 1 % of the frame (a ~10 px
figure in its 64 px input) and over 90 % from 3 % up (docs/BENCHMARKS.md). Its stem strides space by 4, so such a
figure spans two or three positions after the first layer; halving that stride gives every later layer 4x the
positions (and ~2-4x the work). Its stem's kernel is also narrower (3) than that stride, so one pixel row and column
in four never reaches the network at all: a 5-wide kernel reads them, for ~11 % more work. A finer stem costs
latency at every later layer, so the last arms pay for it: a temporal stride of 4 (half the frames' positions) or
no bottleneck blocks in the first stage (which runs at the finest grid). Whether any lets it see a small person,
and what it costs on real footage and in latency, is what this measures before anyone spends a GPU's hours on it.

1. **Corpus**: the windowed stage of the recipe (as ``benchmarks/equal_training.py``) with ``--seed`` added to its
   seeds: actors (train, val and test) the shipped encoder never trained on.
2. **Fine-tuning**, every arm alike: from ``zoo:everyday-64``'s weights (a convolution's weights do not depend
   on its stride), the recipe's later-stage training (stage 7's AdamW at 5e-4 with warm-up and cosine, crops,
   flips, label smoothing) for ``--epochs`` epochs; the epoch with the best corpus val top-1 kept (val actors;
   the test actors choose nothing).
3. **Synthetic held-out actors**: ``benchmarks/zoo_heldout.py``'s protocol (frozen encoder, standardised logistic
   regression on up to 5,000 train-actor clips, C and reading chosen on the val actors, top-1 on the test actors)
   for the shipped encoder and every arm, grouped by the share of the frame the person covers; each arm and the
   control (the first) compared clip by clip (exact McNemar test on the clips only one gets right).
4. **Real footage**: the README's table1 protocol and leave-one-person-out (``equal_training.evaluate``).
5. **Latency**: one 16 x 64² clip, batch 1, fp32, the arms and X3D-XS (the issue bounds the default at half of its
   latency) taking turns in five rounds.

No ``--quick`` run: the shipped weights need the corpus at their own 16 x 64², too large for seconds; the test suite
checks the parts (the arms, the fine-tuning start, the pairing; tests/test_finer_stem_bench.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import zoo_heldout  # noqa: E402
from benchmarks.common import console, machine_info, print_table, save_results  # noqa: E402
from benchmarks.equal_training import (  # noqa: E402
    SHIPPED,
    evaluate,
    latencies_in_turns,
    real_datasets,
    render_recipe_corpus,
    train_network,
    with_best_x3d_xs,
    x3d_xs_models,
)
from benchmarks.probe_paired import discordant  # noqa: E402
from benchmarks.real_footage import parse_dataset  # noqa: E402
from tinyact.training.pretrain import PretrainConfig, build_encoder  # noqa: E402
from tinyact.zoo import load_model_spec, materialize  # noqa: E402

X3D = "x3d-xs"
FINE_TUNE_LR = 5e-4  # the recipe's later stages (7 and 8) from a trained start
#: The arms: the shipped architecture (fast-motion with two bottleneck blocks after each of its first three strided
#: convolutions) with its stem as shipped, with half its spatial stride, with a 5 x 5 spatial kernel at the
#: shipped stride (a 3-wide kernel at stride 4 never reads one pixel row and column in four; 5 reads them all, for
#: ~11 % more multiply-adds), and at stride 3 (~1.9x the positions of stride 4, where stride 2 has 4x). Then two
#: ways to pay for finer positions within the latency bound: time for space (a temporal stride of 4, half the
#: frames' positions, with spatial stride 3 or 2), and dropping the two blocks after the stem, which run at the
#: finest grid. The first arm is the control every other is paired with.
SHIPPED_BLOCKS = [2, 2, 2, 0]
NO_FIRST_STAGE_BLOCKS = [0, *SHIPPED_BLOCKS[1:]]
ARMS: dict[str, dict[str, Any]] = {
    "stride 4 (as shipped)": {"stage_blocks": SHIPPED_BLOCKS, "stem_stride": [2, 4, 4]},
    "stride 2 (finer)": {"stage_blocks": SHIPPED_BLOCKS, "stem_stride": [2, 2, 2]},
    "stride 4, kernel 5 (reads every pixel)": {"stage_blocks": SHIPPED_BLOCKS, "stem_stride": [2, 4, 4],
                                               "stem_kernel": [3, 5, 5]},
    "stride 3 (between)": {"stage_blocks": SHIPPED_BLOCKS, "stem_stride": [2, 3, 3]},
    "stride 3, time stride 4": {"stage_blocks": SHIPPED_BLOCKS, "stem_stride": [4, 3, 3]},
    "stride 3, no blocks after the stem": {"stage_blocks": NO_FIRST_STAGE_BLOCKS, "stem_stride": [2, 3, 3]},
    "stride 2, time stride 4, no blocks after the stem": {"stage_blocks": NO_FIRST_STAGE_BLOCKS, "stem_stride": [4, 2, 2]},
    "stride 2, no blocks after the stem": {"stage_blocks": NO_FIRST_STAGE_BLOCKS, "stem_stride": [2, 2, 2]},
}


def fine_tune(arm: str, corpus: Path, train: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Fine-tune the shipped encoder as ``arm`` with the recipe (resumable in ``--work``)."""
    start = materialize(SHIPPED, args.work / "init")
    settings = {**train, "init": str(start), "lr": FINE_TUNE_LR, "select_on": "val",
                "model_overrides": {**train.get("model_overrides", {}), **ARMS[arm]}}
    return train_network(folder_name(arm), corpus, settings, args)


def folder_name(arm: str) -> str:
    """The arm's run folder in ``--work`` and its name for ``--arms``: stride4, stride2, stride4-kernel5, stride3-t4,
    stride3-blocks0220 (the shipped temporal stride, kernel and blocks left out)."""
    overrides = ARMS[arm]
    stride = overrides["stem_stride"]
    time_stride = f"-t{stride[0]}" if stride[0] != 2 else ""
    kernel = f"-kernel{overrides['stem_kernel'][1]}" if "stem_kernel" in overrides else ""
    blocks = f"-blocks{''.join(map(str, overrides['stage_blocks']))}" if overrides["stage_blocks"] != SHIPPED_BLOCKS else ""
    return f"stride{stride[1]}{time_stride}{kernel}{blocks}"


def latencies(args: argparse.Namespace, train: dict[str, Any]) -> dict[str, float]:
    """Batch-1 CPU latency (ms) of each arm and of X3D-XS (the issue's latency bound is half of it; the faster of
    its two memory formats) at the corpus's input, all taking turns."""
    t, s = args.input
    models: dict[str, tuple[Any, tuple[int, ...]]] = {
        arm: (build_encoder(PretrainConfig.from_dict({**train, "corpus": ".", "out": ".", "model_overrides": ARMS[arm]}),
                            t, s).eval(), (t, 3, s, s)) for arm in args.arms}
    return with_best_x3d_xs(latencies_in_turns(models | x3d_xs_models(t, s), args.repeats))


def held_out(encoder: str, corpus: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``benchmarks/zoo_heldout.py`` on ``corpus``'s held-out actors with ``encoder``.

    Kept in ``--work`` by the encoder's hash and the probe's train clips, and reloaded for the same corpus: a second
    run that only adds a ``--dataset`` does not embed the corpus again (~25 min for three encoders on 2 cores)."""
    record = args.work / "held-out" / f"{load_model_spec(encoder)[1]['hash']}-{args.train_clips}.json"
    if record.is_file() and (kept := json.loads(record.read_text()))["corpus"] == str(corpus):
        return kept
    result = zoo_heldout.main(["--corpus", str(corpus), "--encoder", encoder, "--train-clips", str(args.train_clips)])
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(result))
    return result


def paired(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Clip-by-clip comparison of two held-out runs on the same test clips."""
    only_a, only_b, p = discordant(a["test_correct"], b["test_correct"])
    return {"only_a": only_a, "only_b": only_b, "mcnemar_p": p}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10000, help="corpus clips (10 %% of the actors each for val "
                        "and test)")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs of each arm")
    parser.add_argument("--seed", type=int, default=9, help="added to the recipe's seeds (9: corpus seed 11, actors "
                        "no stage of the shipped encoder trained on; its corpora used seeds 0-7)")
    parser.add_argument("--train-clips", type=int, default=5000, help="train clips the held-out probe is fitted on")
    parser.add_argument("--work", type=Path, default=Path("tinyact-data/finer-stem"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dataset", action="append", type=parse_dataset, metavar="NAME=FOLDER:SPLITCSV",
                        help="real footage to evaluate on (repeatable; default: both Weizmann sets)")
    parser.add_argument("--repeats", type=int, default=100, help="latency calls per arm, over all rounds")
    parser.add_argument("--arms", default=",".join(map(folder_name, ARMS)),
                        help="comma-separated arms to run (default: all); the control, stride4, always runs")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    names = [folder_name(arm) for arm in ARMS]
    chosen = set(args.arms.split(","))
    if unknown := sorted(chosen - set(names)):
        parser.error(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    args.arms = [arm for i, (arm, name) in enumerate(zip(ARMS, names, strict=True)) if i == 0 or name in chosen]
    args.datasets = real_datasets(parser, args.dataset)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    corpus, train = render_recipe_corpus(args, "finer stem: corpus")
    rows: dict[str, dict[str, Any]] = {SHIPPED: {"held_out": held_out(SHIPPED, corpus, args)}}
    for arm in args.arms:
        trained = fine_tune(arm, corpus, train, args)
        rows[arm] = {**trained, "held_out": held_out(trained["model"], corpus, args),
                     "real": evaluate(folder_name(arm), trained["model"], args.datasets, args.work)}
    lat = latencies(args, train)
    for arm in args.arms:
        rows[arm]["latency_ms"] = lat[arm]
        rows[arm]["latency_over_x3d_xs"] = lat[arm] / lat[X3D]
    control = args.arms[0]
    comparisons = [{"a": control, "b": arm, **paired(rows[control]["held_out"], rows[arm]["held_out"])}
                   for arm in args.arms[1:]]
    report(args, rows, comparisons)
    result = {"command": " ".join(sys.argv), "machine": machine_info(), "protocol": __doc__, "clips": args.clips,
              "epochs": args.epochs, "seed": args.seed, "input": {"frames": args.input[0], "size": args.input[1]},
              "rows": rows, "paired_held_out": comparisons,
              "x3d_xs_latency_ms": lat[X3D],
              "seconds": round(time.perf_counter() - started, 1)}
    if args.json:
        save_results(args.json, result)
    return result


def report(args: argparse.Namespace, rows: dict[str, dict[str, Any]], comparisons: list[dict[str, Any]]) -> None:
    """The result tables on the console."""
    areas = list(rows[SHIPPED]["held_out"]["test_top1_by_person_area"])
    print_table(f"Synthetic held-out actors ({rows[SHIPPED]['held_out']['n_test']} test clips), top-1 %: all and by "
                "the share of the frame the person covers",
                ["encoder", "epoch kept (corpus val %)", "test", *areas],
                [[name, f"{r['selected_epoch'] + 1} ({100 * r['selection']['val_top1']:.1f})" if "selection" in r
                  else "", f"{100 * r['held_out']['test_top1']:.1f}",
                  *(f"{100 * r['held_out']['test_top1_by_person_area'].get(a, float('nan')):.1f}" for a in areas)]
                 for name, r in rows.items()])
    for c in comparisons:
        console.print(f"clip by clip: right only with {c['a']} {c['only_a']}, only with {c['b']} {c['only_b']}, "
                      f"exact McNemar p = {c['mcnemar_p']:.4f}")
    names = list(args.datasets)
    print_table("Real footage: test top-1 % (classifier and reading chosen on val) | leave-one-person-out, all "
                "persons (as recorded / mirrored) | batch-1 ms and its ratio to X3D-XS's (target <= 0.5)",
                ["arm", *names, *(f"LOPO {d}" for d in names), "ms", "x X3D-XS"],
                [[arm, *(f"{100 * r['real'][d]['test_top1']:.1f}" for d in names),
                  *("{:.1f} / {:.1f}".format(*(100 * v for v in r["real"][d]["leave_one_person_out"].values()))
                    for d in names), f"{r['latency_ms']:.1f}", f"{r['latency_over_x3d_xs']:.2f}"]
                 for arm, r in rows.items() if "real" in r])


if __name__ == "__main__":
    main()
