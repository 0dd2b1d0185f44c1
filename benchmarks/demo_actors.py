"""The demo's dataset and fine-tuning budget, chosen on actors no candidate saw.

    python benchmarks/demo_actors.py [--actors 20 40] [--finetune-epochs 4 3] [--finetune-frozen-stages 0 1]
        [--finetune-precision fp32 bf16]
        [--work /tmp/demo-actors] [--json docs/results/demo_actors.json]

Each candidate is the demo's own preparation (``tinyact demo``'s dataset of 10 classes x 20 clips, the zoo encoder
fine-tuned on its training actors, the SVM on their windows) with other settings: every combination of the
``actors``, fine-tuning epochs, frozen stages and precisions given, the first one the reference that each later one is paired
against (windows only one of the two gets right, exact McNemar test), with the seconds each step took. More actors spread
the same 200 clips over more people, so the candidates' own val and test actors differ and their val scores are
not comparable. Both are therefore scored on one common set: the clips of actors 40-59 of a 60-actor set (its
val and test pools, minus actors 36-39, which are test actors of the 40-actor candidate), 20 people no candidate
trains, validates or tests on. Reported: top-1 per window (4 windows at 8 frames/s per clip, as the cameras send
them) on that set, and its spread over the 20 actors. Step seconds are the run's own: a fine-tuning run that an
earlier call made is reused and shows none.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import console, print_table, save_results  # noqa: E402
from benchmarks.probe_paired import discordant  # noqa: E402
from tinyact.classifiers.saved import load_classifier  # noqa: E402
from tinyact.data.cache import build_cache  # noqa: E402
from tinyact.data.layouts import read_kinetics  # noqa: E402
from tinyact.data.manifest import Manifest  # noqa: E402
from tinyact.data.synth import SynthConfig, generate  # noqa: E402
from tinyact.demo.config import DemoConfig  # noqa: E402
from tinyact.demo.prepare import encoder_reading, prepare, window_latents, with_encoder_input_size  # noqa: E402

COMMON_ACTORS = range(40, 60)


def common_set(work: Path, cfg: DemoConfig) -> Manifest:
    """Clips of actors 40-59 from a 60-actor set rendered like the demo's (same classes, size, lengths)."""
    synth = SynthConfig(out=work / "common", classes=cfg.classes, clips_per_class=60, actors=60,
                        size=cfg.video_size, seed=cfg.seed, min_seconds=cfg.clip_seconds[0],
                        max_seconds=cfg.clip_seconds[1])
    if not (synth.out / "synth_config.yaml").is_file():
        generate(synth)
    entries, _ = read_kinetics(synth.out)
    keep = [e for e in entries if e.split in ("val", "test") and int(e.extra["actor"]) in COMMON_ACTORS]
    return Manifest(keep, synth.out.resolve())


def candidates(args: argparse.Namespace) -> list[dict[str, int | str | None]]:
    """Every combination of the settings given (an unset one: the demo's default), the first one first."""
    return [{"actors": a, "finetune_epochs": e, "finetune_frozen_stages": f, "finetune_precision": p}
            for a, e, f, p in itertools.product(args.actors, args.finetune_epochs or [None],
                                                args.finetune_frozen_stages or [None],
                                                args.finetune_precision or [None])]


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX): where ``finetune_precision: bf16`` is fast."""
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(bool(check()) for check in checks if check is not None)


def paired(first: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Windows only ``first`` / only ``other`` gets right, and the exact McNemar p-value (same windows, same order)."""
    only_first, only_this, p = discordant(first["common_correct"], other["common_correct"])
    return {"only_first": only_first, "only_this": only_this, "mcnemar_p": p}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, nargs="+", default=[20, 40])
    parser.add_argument("--work", type=Path, default=Path("/tmp/demo-actors"))
    parser.add_argument("--finetune-epochs", type=int, nargs="+", default=None, help="[default: the demo's]")
    parser.add_argument("--finetune-frozen-stages", type=int, nargs="+", default=None, help="[default: the demo's]")
    parser.add_argument("--finetune-precision", nargs="+", default=None, choices=["fp32", "bf16"],
                        help="[default: the demo's]")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    base = with_encoder_input_size(DemoConfig(data=args.work / "unused"))
    common = common_set(args.work, base)
    reading = encoder_reading(base)
    common_cache = args.work / "common-cache"
    build_cache(common, common_cache, reading)
    actor_of = {e.clip_id: e.extra["actor"] for e in common.entries}
    rows: list[dict[str, Any]] = []
    for candidate in candidates(args):
        settings = {k: v for k, v in candidate.items() if v is not None}
        # One dataset per actors value; fine-tuning runs are keyed by their settings, so candidates share data.
        cfg = base.model_copy(update={"data": args.work / f"synth-a{candidate['actors']}", **settings})
        ready = prepare(cfg)
        latents = window_latents(ready.checkpoint, common, common_cache, ready.encoder_hash)
        classifier = load_classifier(ready.classifier_dir)
        correct = np.asarray(classifier.label_names)[classifier.predict(latents.latents)] == latents.labels
        window_actors = np.asarray([actor_of[str(i).split("#")[0]] for i in latents.clip_ids])
        per_actor = {a: float(correct[window_actors == a].mean()) for a in sorted(set(window_actors), key=int)}
        own = ready.classifier_metrics
        rows.append({
            "actors": cfg.actors, "finetune_epochs": cfg.finetune_epochs,
            "finetune_frozen_stages": cfg.finetune_frozen_stages, "finetune_precision": cfg.finetune_precision,
            "steps_s": ready.steps,
            "train_actors": len({e.extra["actor"] for e in ready.manifest.split("train").entries}),
            "common_windows": len(correct), "common_top1": float(correct.mean()), "common_per_actor": per_actor,
            "common_actor_range": [min(per_actor.values()), max(per_actor.values())],
            "common_correct": "".join("1" if c else "0" for c in correct),  # per window, for paired comparisons
            "own_val_probe": (ready.finetuned or {}).get("after"), "own_test_top1": own.get("top1"),
        })
        if len(rows) > 1:
            rows[-1]["vs_first"] = paired(rows[0], rows[-1])
        console.print({k: v for k, v in rows[-1].items() if k not in ("common_correct", "common_per_actor")})
    print_table("Demo candidates, scored on actors 40-59 (no candidate's split); paired against the first row",
                ["actors", "epochs", "frozen stages", "precision", "fine-tuning s", "common top-1", "per actor", "own val (probe)",
                 "own test", "only first / only this (p)"],
                [[r["actors"], r["finetune_epochs"], r["finetune_frozen_stages"], r["finetune_precision"],
                  r["steps_s"].get("finetune", "-"),
                  f"{r['common_top1']:.1%}", "{:.0%}-{:.0%}".format(*r["common_actor_range"]),
                  f"{r['own_val_probe'] or 0:.1%}", f"{r['own_test_top1'] or 0:.1%}",
                  "{only_first} / {only_this} ({mcnemar_p:.2f})".format(**r["vs_first"]) if "vs_first" in r else "-"]
                 for r in rows])
    if args.json:
        save_results(args.json, {"protocol": __doc__, "rows": rows, "torch_threads": torch.get_num_threads(),
                                 "native_bf16_cpu": native_bf16_cpu(),
                                 "seconds": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    main()
