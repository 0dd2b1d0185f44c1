"""Self-supervised objectives side by side: linear-probe accuracy of the encoder each one trains, against the
same network with random weights and trained on reconstruction (the paper's autoencoder), and what each costs.

Protocol (one dataset in the Kinetics layout, e.g. ``tinyact data synth``, whose test split holds other actors):

* every objective trains ``train_ssl`` from the same random initialisation (same seed) on the train split's
  videos, no labels; the per-epoch probe (logistic regression fitted on train latents, scored on val) picks
  the epoch (``best.pt``);
* the reported number is the same probe fitted on train and scored on **test** (held-out actors), for the
  chosen epoch, the last epoch, the random-weight start and the reconstruction autoencoder;
* cost: seconds per epoch and per 1,000 training clips (a clip = one T-frame view through the encoder);
  reconstruction's per 1,000 clips from ``train_autoencoder``'s clips/s.

Example (the run in docs/MODELS.md, "Self-supervised objectives")::

    tinyact data synth --out data/ssl-bench --classes 12 --clips-per-class 20 --size 64 --seed 1
    .venv/bin/python benchmarks/ssl_objectives.py --data data/ssl-bench --out runs/ssl-bench \\
        --json docs/results/ssl_objectives.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tinyact.data.cache import ClipCache
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest
from tinyact.models.checkpoint import load_model
from tinyact.training.pretrain import encode_clips
from tinyact.training.runtime import read_metrics, seed_everything
from tinyact.training.ssl import SSLTrainConfig, build_model, train_ssl
from tinyact.training.ssl_probe import linear_probe, load_probe_set


def _test_probe(model: torch.nn.Module, probe) -> float:
    device = torch.device("cpu")
    train_z = encode_clips(model, probe.train_clips, device)
    test_z = encode_clips(model, probe.val_clips, device)  # the "val" half of this ProbeSet is the test split
    if not (np.isfinite(train_z).all() and np.isfinite(test_z).all()):
        return 0.0
    return linear_probe(train_z, probe.train_labels, test_z, probe.val_labels)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--objectives", default="rho-byol,rho-simclr,speed")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--ae-epochs", type=int, default=10, help="reconstruction baseline epochs (0 = skip)")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--channels", default="16,32,64,128")
    parser.add_argument("--preset", default="fast-motion")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    args.out.mkdir(parents=True, exist_ok=True)
    entries, _ = read_kinetics(args.data)
    manifest_csv = Manifest(entries, args.data.resolve()).write(args.out / "manifest.csv")
    manifest = Manifest.read(manifest_csv)
    overrides = {"channels": [int(c) for c in args.channels.split(",")]}
    windows = args.out / "windows"  # the clip cache every objective shares
    common = dict(manifest=manifest_csv, preset=args.preset, model_overrides=overrides, size=args.size,
                  frames=args.frames, batch_size=args.batch_size, lr=args.lr, epochs=args.epochs, seed=args.seed,
                  device="cpu", workers=1, cache_dir=windows)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": {
        "platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": list(os.getloadavg()),
        "torch_threads": torch.get_num_threads()}, "objectives": {}}

    probe_test = None
    random_test = None
    for objective in args.objectives.split(","):
        cfg = SSLTrainConfig(out=args.out / objective, objective=objective, **common)
        started = time.perf_counter()
        result = train_ssl(cfg, resume=(cfg.out / "last.pt").is_file())
        seconds = time.perf_counter() - started
        if probe_test is None:
            probe_test = load_probe_set(manifest, ClipCache(windows), args.frames, "train", "test")
            seed_everything(args.seed)
            random_test = _test_probe(build_model(cfg), probe_test)  # the start every objective shares
        rows = read_metrics(result.metrics_csv)
        epoch_s = [float(r["epoch_s"]) for r in rows[1:]]
        clips_per_s = [float(r["clips_per_s"]) for r in rows[1:]]
        best_model, _ = load_model(result.best_model) if result.best_model else (None, None)
        last_model, _ = load_model(result.model)
        results["objectives"][objective] = {
            "val_probe_start": result.initial.get("probe_linear"),
            "val_probe_best": result.best.get("probe_linear"), "best_epoch": int(result.best.get("epoch", 0)),
            "val_probe_last": result.metrics.get("probe_linear"),
            "val_knn_best": result.best.get("probe_knn"),
            "test_probe_best_epoch": _test_probe(best_model, probe_test) if best_model is not None else None,
            "test_probe_last_epoch": _test_probe(last_model, probe_test),
            "epoch_s_median": float(np.median(epoch_s)), "s_per_1000_clips": 1000 / float(np.median(clips_per_s)),
            "wall_s": seconds, "curve_val_probe": [float(r["probe_linear"]) for r in rows],
        }
        print(objective, json.dumps({k: v for k, v in results["objectives"][objective].items()
                                     if k != "curve_val_probe"}), flush=True)
    results["random_weights_test_probe"] = random_test

    if args.ae_epochs:
        from tinyact.training.ae import AETrainConfig, train_autoencoder

        ae_cfg = AETrainConfig(manifest=manifest_csv, out=args.out / "reconstruction", preset=args.preset,
                               model_overrides=overrides, size=args.size, frames=args.frames, batch_size=8,
                               lr=1e-3, epochs=args.ae_epochs, seed=args.seed, device="cpu", workers=1,
                               cache_dir=args.out / "clips", grid_clips=0)
        started = time.perf_counter()
        ae = train_autoencoder(ae_cfg, resume=(ae_cfg.out / "checkpoint.pt").is_file())
        rows = read_metrics(ae.metrics_csv)
        model, _ = load_model(ae.checkpoint)
        results["reconstruction"] = {
            "epochs": args.ae_epochs, "test_probe_last_epoch": _test_probe(model, probe_test),
            "epoch_s_median": float(np.median([float(r["epoch_s"]) for r in rows])),
            "s_per_1000_clips": 1000 / float(np.median([float(r["clips_per_s"]) for r in rows])),
            "wall_s": time.perf_counter() - started,
        }
        print("reconstruction", json.dumps(results["reconstruction"]), flush=True)
    results["machine"]["loadavg_end"] = list(os.getloadavg())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
