"""Two encoders on a zoo recipe's person-disjoint probe, clip by clip: is their difference more than the probe's noise?

    python benchmarks/probe_paired.py --a zoo:everyday-64 --b tinyact-data/zoo-build/everyday-64/stage-8/model.pt \\
        [--recipe everyday-64] [--stage 8] [--json docs/results/probe_paired.json]

A stage of ``tinyact zoo build`` keeps the epoch whose probe score is highest: the mean over the recipe's probes of a
leave-one-person-out logistic regression on the non-test clips (63 Weizmann silhouettes of 6 persons, 24 rgb64
clips). Over so few clips a score moves by a few clips between epochs. This benchmark reads the same clips the
same way (the stage's ``probe_sampling``, never a test split), predicts every clip with both encoders, and counts
the clips only one of them gets right. With ``b`` such clips for the first and ``c`` for the second, the exact
McNemar test (a two-sided binomial test of ``b`` out of ``b + c`` at 1/2) says how often chance alone would split
them at least that unevenly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table, save_results  # noqa: E402
from tinyact.models.base import config_of  # noqa: E402
from tinyact.training.pretrain import ProbeSpec, encode_clips, load_probe, probe_predictions  # noqa: E402
from tinyact.training.zoo_build import read_recipe, recipe_stages  # noqa: E402
from tinyact.zoo import load_model_spec  # noqa: E402


def discordant(a: str, b: str) -> tuple[int, int, float]:
    """Two per-item correctness strings ("1" right, "0" wrong) of the same items in the same order -> (items only
    ``a`` gets right, items only ``b`` gets right, their exact McNemar p-value).

    Raises:
        ValueError: when the strings differ in length (not the same items).
    """
    pairs = list(zip(a, b, strict=True))
    only_a, only_b = pairs.count(("1", "0")), pairs.count(("0", "1"))
    return only_a, only_b, mcnemar_p(only_a, only_b)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value of ``only_a`` against ``only_b`` discordant clips (1.0 when there are none)."""
    from scipy.stats import binomtest

    n = only_a + only_b
    return 1.0 if n == 0 else float(binomtest(only_a, n, 0.5).pvalue)


def compare(encoders: dict[str, torch.nn.Module], specs: list[ProbeSpec], sampling: dict[str, Any] | None,
            cache_root: Path) -> list[dict[str, Any]]:
    """For every probe: each encoder's leave-one-person-out accuracy and the clips only one of the two gets right."""
    (name_a, model_a), (name_b, model_b) = encoders.items()
    config = config_of(model_a)
    rows = []
    for spec in specs:
        probe = load_probe(spec, config.num_frames, config.input_size[0], cache_root, sampling)
        if probe.groups is None:
            raise SystemExit(f"probe {spec.name} names no persons (persons_file): it is not person-disjoint")
        right = {name: probe_predictions(encode_clips(model, probe.clips, torch.device("cpu")), probe.labels,
                                         probe.groups) == probe.labels
                 for name, model in encoders.items()}
        only_a = int((right[name_a] & ~right[name_b]).sum())
        only_b = int((right[name_b] & ~right[name_a]).sum())
        rows.append({"probe": spec.name, "clips": len(probe.labels), "persons": len(set(probe.groups)),
                     f"top1_{name_a}": float(right[name_a].mean()), f"top1_{name_b}": float(right[name_b].mean()),
                     f"only_{name_a}": only_a, f"only_{name_b}": only_b, "mcnemar_p": mcnemar_p(only_a, only_b)})
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="first encoder: zoo:NAME or a model file")
    parser.add_argument("--b", required=True, help="second encoder: zoo:NAME or a model file")
    parser.add_argument("--recipe", default="everyday-64", help="zoo recipe whose probes to read")
    parser.add_argument("--stage", type=int, help="the recipe stage whose probes and reading to use (default: the last)")
    parser.add_argument("--work", type=Path, default=Path("tinyact-data/probe-paired"), help="probe clip cache")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    stages = recipe_stages(read_recipe(args.recipe))
    train = stages[(args.stage or len(stages)) - 1]["pretrain"]
    specs = [ProbeSpec.model_validate(p) for p in train.get("probes", []) if Path(p["data"]).is_dir()]
    if not specs:
        raise SystemExit(f"none of recipe {args.recipe}'s probe folders is on this machine")
    encoders = {"a": load_model_spec(args.a)[0], "b": load_model_spec(args.b)[0]}
    rows = compare(encoders, specs, train.get("probe_sampling"), args.work)
    print_table(f"person-disjoint probe, clip by clip: a = {args.a}, b = {args.b}",
                ["probe", "clips (persons)", "a %", "b %", "right by a only", "right by b only", "McNemar p"],
                [[r["probe"], f"{r['clips']} ({r['persons']})", f"{r['top1_a'] * 100:.1f}", f"{r['top1_b'] * 100:.1f}",
                  r["only_a"], r["only_b"], f"{r['mcnemar_p']:.2f}"] for r in rows])
    if args.json:
        save_results(args.json, {"a": args.a, "b": args.b, "recipe": args.recipe, "stage": args.stage or len(stages),
                                 "protocol": "leave-one-person-out logistic regression (C = 0.5) on each probe's "
                                             "non-test clips, per clip; exact McNemar test on the discordant clips",
                                 "probes": rows})
    return rows


if __name__ == "__main__":
    main()
