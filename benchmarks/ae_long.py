"""Does much longer training make the reconstruction autoencoder's latent better for actions?

    python benchmarks/ae_long.py --data /tmp/s12b --train-seconds 360 --json docs/results/ae_long_gpu.json   # on a GPU
    python benchmarks/ae_long.py --quick                                                           # seconds (tests)

Several ``fast-motion`` autoencoders (see ``VARIANTS``) train side by side, one process each, with no epoch
limit, for ``--train-seconds`` of wall time; ``train ae`` writes ``model.pt`` after every
epoch, so the newest one is what a kill leaves. Then each is probed (latents -> standardise + logistic
regression fitted on train+val, scored on the held-out test actors) beside the same net with random weights.
The recipe is ``benchmarks/ae_presets.py``'s (batch 8, Adam 1e-3, 16x64², seed 0), so its 10- and 40-epoch rows
are the short-training points of the same curve. Meant for a GPU: on 2 CPU cores one epoch takes ~13 s.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.ae_presets import linear_probe  # noqa: E402
from benchmarks.common import save_results  # noqa: E402
from tinyact.data.cache import build_cache  # noqa: E402
from tinyact.data.layouts import read_kinetics  # noqa: E402
from tinyact.data.manifest import Manifest  # noqa: E402
from tinyact.models.checkpoint import load_model  # noqa: E402
from tinyact.models.factory import build_autoencoder  # noqa: E402
from tinyact.training.ae import AETrainConfig, train_autoencoder  # noqa: E402
from tinyact.training.extract import extract_latents  # noqa: E402

#: run name -> fast-motion model overrides
VARIANTS: dict[str, dict] = {
    "half": {"channels": [32, 64, 128, 256]},
    "full": {},
    "half-pool122": {"channels": [32, 64, 128, 256], "pool_size": [1, 2, 2]},
}


def run_config(work: Path, name: str, args: argparse.Namespace, epochs: int = 100_000) -> AETrainConfig:
    """The training recipe of one variant (no epoch limit by default: the deadline stops it)."""
    return AETrainConfig(
        manifest=work / "manifest.csv", out=work / name, preset="fast-motion", model_overrides=VARIANTS[name],
        size=args.size, frames=16, batch_size=8, lr=1e-3, epochs=epochs, seed=0, workers=1, device=args.device,
        cache_dir=work / "cache", grid_clips=2, threads=args.threads,
    )


def probe_run(work: Path, name: str, manifest: Manifest, args: argparse.Namespace) -> dict:
    """Probe the newest ``model.pt`` of a run and the same net with random weights."""
    cfg = run_config(work, name, args)
    if not (cfg.out / "model.pt").exists():
        raise SystemExit(f"{name}: no epoch finished in time; see {work / (name + '.log')}")
    model, info = load_model(cfg.out / "model.pt")
    row = info["extra"]["metrics"]  # the epoch this model.pt is from (a kill can leave metrics.csv one row behind)
    trained = extract_latents(model, manifest, cfg.sampling(), cfg.out / "latents.npz",
                              cache_dir=cfg.cache_dir, device=args.device, batch_size=64, resume=False)
    torch.manual_seed(0)
    random_net = build_autoencoder("ae3d", "fast-motion", **{**VARIANTS[name], "num_frames": 16, "input_size": args.size})
    random = extract_latents(random_net, manifest, cfg.sampling(), cfg.out / "latents-random.npz",
                             cache_dir=cfg.cache_dir, device=args.device, batch_size=64, resume=False)
    return {"overrides": VARIANTS[name], "epochs": int(row["epoch"]), "train_psnr_db": round(row["train_psnr"], 2),
            "val_psnr_db": round(row["val_psnr"], 2), "probe_top1": round(linear_probe(trained)["top1"], 3),
            "random_probe_top1": round(linear_probe(random)["top1"], 3)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="synthetic set in the Kinetics layout (default: generate one in --work)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/tinyact-ae-long"))
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--train-seconds", type=float, default=360, help="wall time the variants train for, side by side")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per training process")
    parser.add_argument("--quick", action="store_true", help="tiny set, a few seconds of training (for tests)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--train-one", help=argparse.SUPPRESS)  # the per-variant child process
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.train_seconds, args.variants = 32, 15, "half"
    work = args.work
    if args.train_one:
        train_autoencoder(run_config(work, args.train_one, args))
        return {}
    names = [v for v in args.variants.split(",") if v]
    if unknown := [v for v in names if v not in VARIANTS]:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    work.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None:
        from tinyact.data.synth import SynthConfig, generate

        data = work / "synth"
        if not (data / "annotations").is_dir():
            generate(SynthConfig(out=data, classes=3 if args.quick else 12, clips_per_class=6 if args.quick else 250,
                                 size=max(args.size, 32), seed=1, workers=0))
    entries, _ = read_kinetics(data)
    Manifest(entries, data.resolve()).write(work / "manifest.csv")
    manifest = Manifest.read(work / "manifest.csv")
    build_cache(manifest, work / "cache", run_config(work, names[0], args).sampling(), workers=0)

    # One process per variant: they share the accelerator, which one small model at batch 8 leaves mostly idle.
    child = [sys.executable, __file__, "--work", str(work), "--size", str(args.size), "--device", args.device]
    if args.threads:
        child += ["--threads", str(args.threads)]
    with contextlib.ExitStack() as logs:
        procs = [subprocess.Popen([*child, "--train-one", name], stdout=subprocess.DEVNULL,
                                  stderr=logs.enter_context(open(work / f"{name}.log", "w"))) for name in names]
        deadline = time.time() + args.train_seconds
        while time.time() < deadline and any(p.poll() is None for p in procs):
            time.sleep(1)
        for p in procs:
            p.kill()
            p.wait()

    rows = {name: probe_run(work, name, manifest, args) for name in names}
    for name, row in rows.items():
        print(name, row, flush=True)
    payload = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else "cpu",
        "torch": torch.__version__, "settings": {k: str(v) for k, v in vars(args).items()}, "runs": rows,
    }
    save_results(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
