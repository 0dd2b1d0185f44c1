"""Label-free adaptation of a pretrained encoder to real footage: the probe before and after, on val and on test.

Protocol: a folder dataset with a split file (e.g. ``../shared/data/real/weizmann/rgb64`` + ``rgb64-split.csv``);
:func:`tinyact.training.adapt.adapt_encoder` adapts the start encoder on the train and val videos without their
labels, and keeps the adapted one only if its linear probe (fitted on train, scored on val) beats the start's.
Reported beside that decision: the same probe fitted on train+val and scored on **test**, for the start and for
the adapted encoder (the best-val epoch), so the decision can be checked against clips it never saw.

    .venv/bin/python benchmarks/ssl_adapt.py --data ../shared/data/real/weizmann/rgb64 \\
        --split-file ../shared/data/real/weizmann/rgb64-split.csv --out runs/adapt-weizmann \\
        --json docs/results/ssl_adapt_weizmann.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from tinyact.data.cache import ClipCache
from tinyact.data.layouts import read_folder
from tinyact.data.manifest import Manifest
from tinyact.models.checkpoint import load_model
from tinyact.training.adapt import adapt_encoder
from tinyact.training.pretrain import encode_clips
from tinyact.training.ssl import load_start_encoder
from tinyact.training.ssl_probe import linear_probe, load_probe_set


def _test_probe(model: torch.nn.Module, manifest: Manifest, cache: ClipCache, frames: int) -> float:
    fit = load_probe_set(manifest, cache, frames, "train", "test")
    extra = load_probe_set(manifest, cache, frames, "val", "test")
    clips = torch.cat([fit.train_clips, extra.train_clips])  # train + val: every non-test labelled clip
    labels = np.concatenate([fit.train_labels, extra.train_labels])
    device = torch.device("cpu")
    return linear_probe(encode_clips(model, clips, device), labels, encode_clips(model, fit.val_clips, device),
                        fit.val_labels)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split-file", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--encoder", default="zoo:everyday-64")
    parser.add_argument("--objectives", default="rho-simclr,rho-byol,speed")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    entries, _ = read_folder(args.data, split_file=args.split_file)
    manifest_csv = Manifest(entries, args.data.resolve()).write(args.out / "manifest.csv")
    manifest = Manifest.read(manifest_csv)
    start = load_start_encoder(args.encoder)
    frames = start.config.num_frames
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "loadavg": list(os.getloadavg()),
                     "clips": {s: len(manifest.split(s)) for s in ("train", "val", "test")}, "objectives": {}}
    for objective in args.objectives.split(","):
        started = time.perf_counter()
        result = adapt_encoder(args.encoder, manifest_csv, args.out / objective, objective=objective,
                               epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, device="cpu",
                               cache_dir=args.out / "windows", workers=1)
        cache = ClipCache(args.out / "windows")
        adapted_file = args.out / objective / "ssl" / "best.pt"
        adapted, _ = load_model(adapted_file)
        results["objectives"][objective] = {
            "val_before": result.before, "val_after": result.after, "after_epoch": result.after_epoch,
            "kept": result.kept, "test_before": _test_probe(start, manifest, cache, frames),
            "test_adapted": _test_probe(adapted, manifest, cache, frames), "wall_s": time.perf_counter() - started,
        }
        print(objective, json.dumps(results["objectives"][objective]), flush=True)
    results["loadavg_end"] = list(os.getloadavg())
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
