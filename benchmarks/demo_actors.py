"""How many distinct generated actors the demo's dataset should have, chosen on actors neither candidate saw.

    python benchmarks/demo_actors.py [--actors 20 40] [--work /tmp/demo-actors] [--json docs/results/demo_actors.json]

Each candidate is the demo's own preparation (``tinyact demo``'s dataset of 10 classes x 20 clips, the zoo encoder
fine-tuned on its training actors, the SVM on their windows) with another ``actors`` setting. More actors spread
the same 200 clips over more people, so the candidates' own val and test actors differ and their val scores are
not comparable. Both are therefore scored on one common set: the clips of actors 40-59 of a 60-actor set (its
val and test pools, minus actors 36-39, which are test actors of the 40-actor candidate), 20 people no candidate
trains, validates or tests on. Reported: top-1 per window (4 windows at 8 frames/s per clip, as the cameras send
them) on that set, and its spread over the 20 actors.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import console, print_table, save_results  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, nargs="+", default=[20, 40])
    parser.add_argument("--work", type=Path, default=Path("/tmp/demo-actors"))
    parser.add_argument("--finetune-epochs", type=int, default=None, help="[default: the demo's]")
    parser.add_argument("--finetune-frozen-stages", type=int, default=None, help="[default: the demo's]")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    settings = {name: value for name, value in (("finetune_epochs", args.finetune_epochs),
                                                 ("finetune_frozen_stages", args.finetune_frozen_stages))
                if value is not None}
    base = with_encoder_input_size(DemoConfig(data=args.work / "unused", **settings))
    common = common_set(args.work, base)
    reading = encoder_reading(base)
    common_cache = args.work / "common-cache"
    build_cache(common, common_cache, reading)
    rows: list[dict[str, Any]] = []
    for actors in args.actors:
        cfg = base.model_copy(update={"data": args.work / f"synth-a{actors}", "actors": actors})
        ready = prepare(cfg)
        latents = window_latents(ready.checkpoint, common, common_cache, ready.encoder_hash)
        classifier = load_classifier(ready.classifier_dir)
        correct = np.asarray(classifier.label_names)[classifier.predict(latents.latents)] == latents.labels
        actor_of = {e.clip_id: e.extra["actor"] for e in common.entries}
        window_actors = np.asarray([actor_of[str(i).split("#")[0]] for i in latents.clip_ids])
        per_actor = {a: float(correct[window_actors == a].mean()) for a in sorted(set(window_actors), key=int)}
        own = ready.classifier_metrics
        rows.append({
            "actors": actors, "train_actors": len({e.extra["actor"] for e in ready.manifest.split("train").entries}),
            "common_windows": len(correct), "common_top1": float(correct.mean()), "common_per_actor": per_actor,
            "common_actor_range": [min(per_actor.values()), max(per_actor.values())],
            "own_val_probe": (ready.finetuned or {}).get("after"), "own_test_top1": own.get("top1"),
        })
        console.print(rows[-1])
    print_table("Demo dataset: distinct actors, scored on actors 40-59 (no candidate's split)",
                ["actors", "train actors", "common windows", "common top-1", "per actor", "own val (probe)",
                 "own test"],
                [[r["actors"], r["train_actors"], r["common_windows"], f"{r['common_top1']:.1%}",
                  "{:.0%}-{:.0%}".format(*r["common_actor_range"]),
                  f"{r['own_val_probe'] or 0:.1%}", f"{r['own_test_top1'] or 0:.1%}"] for r in rows])
    if args.json:
        save_results(args.json, {"protocol": __doc__, "rows": rows, "torch_threads": torch.get_num_threads(),
                                 "seconds": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    main()
