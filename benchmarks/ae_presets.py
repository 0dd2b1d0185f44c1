"""Which autoencoder preset: reconstruction PSNR, linear-probe accuracy and cost of each variant on one dataset.

    python benchmarks/ae_presets.py                       # 8 synthetic classes, 64 px, 16 frames, 12 epochs
    python benchmarks/ae_presets.py --quick               # seconds: tiny set, 1 epoch (used by the test suite)
    python benchmarks/ae_presets.py --data DIR --layout folder --size 112 ...   # your own videos

For every variant the same clips (one clip cache), the same seed and the same schedule:
train the autoencoder (``train_autoencoder``), extract latents (``extract_latents``), then a linear probe
(standardise + logistic regression) fitted on train and scored on test (held-out actors on the synthetic
set). The same architecture with random weights is probed too, so each row shows what training adds.
Cost columns: encoder GFLOPs (FlopCounterMode) and measured encoder latency at batch 1 on this machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import markdown_table, median, print_table, save_results, time_repeats  # noqa: E402
from tinyact.data.cache import build_cache  # noqa: E402
from tinyact.data.layouts import read_folder, read_kinetics  # noqa: E402
from tinyact.data.manifest import Manifest  # noqa: E402
from tinyact.latents import LatentsFile  # noqa: E402
from tinyact.models.base import encode_fn  # noqa: E402
from tinyact.models.checkpoint import load_model  # noqa: E402
from tinyact.models.factory import build_autoencoder  # noqa: E402
from tinyact.models.summary import summarize  # noqa: E402
from tinyact.training.ae import AETrainConfig, train_autoencoder  # noqa: E402
from tinyact.training.extract import extract_latents  # noqa: E402

#: name -> (kind, preset, model overrides)
VARIANTS: dict[str, tuple[str, str, dict]] = {
    "paper": ("ae3d", "paper", {}),
    "fast": ("ae3d", "fast", {}),
    "fast-motion": ("ae3d", "fast-motion", {}),
    "fast-t4": ("ae3d", "fast", {"stem_stride": [4, 4, 4]}),
    "pool122": ("ae3d", "paper", {"pool_size": [1, 2, 2]}),
    "fast-motion-pool122": ("ae3d", "fast-motion", {"pool_size": [1, 2, 2]}),
    "ae2d-fast": ("ae2d", "fast", {}),
    "ae2d-paper": ("ae2d", "paper", {}),
}


def linear_probe(latents: LatentsFile, seed: int = 0) -> dict[str, float]:
    """Top-1 of standardise + logistic regression, fitted on train (+ val) and scored on test."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = latents.split("train", "val"), latents.split("test")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1, random_state=seed))
    probe.fit(train.latents, train.y)
    return {"top1": float((probe.predict(test.latents) == test.y).mean()), "n_train": len(train), "n_test": len(test)}


def supervised_encoder(kind: str, preset: str, overrides: dict, manifest: Manifest, cache: Path, args) -> torch.nn.Module:
    """The same encoder trained *with labels* (cross-entropy through a linear head on the latent, Adam, the same
    epochs, batch and seed): how far this network gets on these clips when it is told the action, i.e. the
    ceiling that an unsupervised objective could at best approach."""
    from torch.utils.data import DataLoader

    from tinyact.data.datasets import ClipDataset, collate_clips
    from tinyact.data.transforms import normalize

    torch.manual_seed(args.seed)
    model = build_autoencoder(kind, preset, **{**overrides, "num_frames": args.frames, "input_size": args.size})
    head = torch.nn.Linear(model.config.latent_dim, len(manifest.label_names))
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=args.lr)
    train = ClipDataset(manifest.split("train"), cache=cache)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, collate_fn=collate_clips,
                        generator=torch.Generator().manual_seed(args.seed), drop_last=len(train) % args.batch_size == 1)
    model.train()
    for _ in range(args.epochs):
        for clips, labels, _ in loader:
            loss = torch.nn.functional.cross_entropy(head(model.encode(normalize(clips, model.config.normalization))), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def encoder_latency_ms(model: torch.nn.Module, frames: int, size: int, repeats: int) -> float:
    x = torch.randn(1, frames, 3, size, size)
    encode = encode_fn(model.eval())
    with torch.no_grad():
        return 1000 * median(time_repeats(lambda: encode(x), repeats=repeats, warmup=1))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="dataset root (default: generate a synthetic set in --work)")
    parser.add_argument("--layout", default="kinetics", choices=["kinetics", "folder"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/tinyact-ae-presets"), help="scratch folder")
    parser.add_argument("--variants", default="paper,fast,fast-t4", help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--clips-per-class", type=int, default=15)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--motion-weight", type=float, default=0.0, help="AETrainConfig.motion_weight for every variant")
    parser.add_argument("--target-pool", type=int, default=1, help="AETrainConfig.target_pool for every variant")
    parser.add_argument("--channels", default=None, help="encoder channels for every variant, e.g. 32,64,128,256")
    parser.add_argument("--supervised", action="store_true",
                        help="also train each encoder with labels (CE) and probe it: the architecture's ceiling")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="training and extraction device: cpu, cuda, auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "amp"], help="AETrainConfig.precision")
    parser.add_argument("--quick", action="store_true", help="tiny set, 1 epoch, narrow models (for tests)")
    parser.add_argument("--json", type=Path, default=None, help="write results here (e.g. docs/results/ae_presets.json)")
    args = parser.parse_args(argv)
    overrides_all: dict = {}
    if args.quick:
        args.classes, args.clips_per_class, args.size, args.frames, args.epochs = 3, 4, 32, 8, 1
        args.supervised = True
        overrides_all = {"channels": [8, 16, 32, 64]}
    if args.channels:
        overrides_all = {"channels": [int(c) for c in args.channels.split(",")]}
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    if args.data is None:
        from tinyact.data.synth import SynthConfig, generate

        data = work / f"synth-{args.classes}x{args.clips_per_class}-{max(args.size, 32)}"
        if not (data / "annotations").is_dir():
            generate(SynthConfig(out=data, classes=args.classes, clips_per_class=args.clips_per_class,
                                 size=max(args.size, 32), min_seconds=1.5, max_seconds=2.5, workers=1))
        args.layout = "kinetics"
    else:
        data = args.data
    entries, _ = read_kinetics(data) if args.layout == "kinetics" else read_folder(data, seed=args.seed)
    manifest_csv = Manifest(entries, data.resolve()).write(work / "manifest.csv")
    manifest = Manifest.read(manifest_csv)
    cache = work / f"cache-t{args.frames}-s{args.size}"
    base = AETrainConfig(manifest=manifest_csv, out=work / "unused", size=args.size, frames=args.frames)
    build_cache(manifest, cache, base.sampling(), workers=1)

    rows = []
    for name in names:
        kind, preset, overrides = VARIANTS[name]
        overrides = {**overrides, **overrides_all}
        # Every setting that changes the trained weights is in the folder name, so a finished run is only reused
        # (resumed) for the same recipe: a new --lr or --channels trains afresh instead of returning an old run.
        recipe = json.dumps([overrides, args.size, args.frames, args.batch_size, args.lr, args.seed, args.motion_weight, args.precision, args.target_pool])
        suffix = ("-quick" if args.quick else "") + "-" + hashlib.sha1(recipe.encode()).hexdigest()[:6]
        run = work / f"run-{name}-e{args.epochs}{suffix}"
        cfg = AETrainConfig(
            manifest=manifest_csv, out=run, kind=kind, preset=preset, model_overrides=overrides, size=args.size,
            frames=args.frames, batch_size=args.batch_size, lr=args.lr, epochs=args.epochs, seed=args.seed,
            workers=1, device=args.device, precision=args.precision, cache_dir=cache, grid_clips=2, motion_weight=args.motion_weight,
            target_pool=args.target_pool,
        )
        started = time.perf_counter()
        result = train_autoencoder(cfg, resume=(run / "checkpoint.pt").exists())
        train_s = time.perf_counter() - started
        trained = extract_latents(result.checkpoint, manifest, base.sampling(), run / "latents.npz", cache_dir=cache,
                                 device=args.device)
        torch.manual_seed(args.seed)
        random_model = build_autoencoder(kind, preset, **{**overrides, "num_frames": args.frames, "input_size": args.size})
        random = extract_latents(random_model, manifest, base.sampling(), run / "latents-random.npz", cache_dir=cache,
                                device=args.device)
        flops = summarize(kind, preset, args.size, args.frames, **overrides)
        loaded, _ = load_model(result.checkpoint)
        latency = encoder_latency_ms(loaded, args.frames, args.size, repeats=3 if args.quick else 10)
        row = {
            "variant": name + (f" +motion {args.motion_weight:g}" if args.motion_weight else "")
            + (f" pool{args.target_pool}" if args.target_pool > 1 else ""),
            "kind": kind,
            "preset": preset,
            "overrides": overrides,
            "encoder_gflops": flops["encoder_gflops"],
            "encoder_ms_b1": round(latency, 1),
            "train_s": round(train_s, 1),
            "train_clips_per_s": round(float(result.metrics.get("clips_per_s", float("nan"))), 2),
            "val_psnr_db": round(float(result.metrics.get("val_psnr", float("nan"))), 2),
            "probe_top1": round(linear_probe(trained, args.seed)["top1"], 3),
            "random_probe_top1": round(linear_probe(random, args.seed)["top1"], 3),
        }
        if args.supervised:
            supervised = supervised_encoder(kind, preset, overrides, manifest, cache, args)
            sup = extract_latents(supervised, manifest, base.sampling(), run / "latents-supervised.npz", cache_dir=cache,
                                  resume=False)
            row["supervised_probe_top1"] = round(linear_probe(sup, args.seed)["top1"], 3)
        rows.append(row)
        print(row, flush=True)

    columns = ["variant", "encoder_gflops", "encoder_ms_b1", "train_clips_per_s", "val_psnr_db", "probe_top1", "random_probe_top1"]
    if args.supervised:
        columns.append("supervised_probe_top1")
    table_rows = [[r[c] for c in columns] for r in rows]
    probe = linear_probe(trained, args.seed)
    title = (f"autoencoder variants: {len(manifest.label_names)} classes, {probe['n_train']} train+val / {probe['n_test']} test clips, "
             f"{args.size}px T={args.frames}, {args.epochs} epochs")
    print_table(title, columns, table_rows)
    payload = {
        "title": title,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": rows,
        "markdown": markdown_table(columns, table_rows),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "note": "shared 2-core machine; latency and throughput columns are only comparable within this run",
    }
    save_results(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
