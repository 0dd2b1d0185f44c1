"""GPU smoke run: the training code on CUDA, which the test suite (CPU only) never reaches.

    PYTHONPATH=src OUT=/tmp/out python scripts/gpu_smoke.py

On a tiny synthetic set (3 classes, 24 clips): Table 2 end to end with AMP (teacher, autoencoder, the four KD
set-ups, latents, MLP and SVM on them), then `tinyact train kd` under `torchrun --nproc_per_node=1` (NCCL when
the rank has a GPU). Writes OUT/gpu_kd.json. It checks that the paths run, not what they reach: on 24 clips
every number is near chance. Without a GPU it runs the same steps on the CPU with bf16 (about 20 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from tinyact.data.synth import SynthConfig, generate
from tinyact.experiments.table2 import Table2Config, run_table2

WORK = Path("/tmp/tinyact-gpu-smoke")
TINY_AE = {"channels": [8, 8, 16, 16], "latent_dim": 16, "seed_channels": 2}


def main() -> None:
    started = time.time()
    out = Path(os.environ.get("OUT", "/tmp/out"))
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    precision = "amp" if cuda else "bf16"
    data = WORK / "synth"
    if not (data / "annotations").is_dir():
        generate(SynthConfig(out=data, classes=3, clips_per_class=8, size=48, min_seconds=1.2, max_seconds=1.6, actors=6, workers=4))
    run = WORK / "table2"
    metrics = run_table2(Table2Config(
        data=data, out=run, size=32, frames=8, batch_size=4, folds=2, epochs=2, workers=4, device="auto",
        teacher_train={"epochs": 2, "widths": [8, 8, 8, 8], "precision": precision},
        ae={"epochs": 2, "model_overrides": TINY_AE, "precision": precision},
        kd={"ae_overrides": TINY_AE, "head_dim": 8, "head_depth": 1, "optimizer": "adamw", "lr": 1e-3, "warmup_epochs": 1,
            "precision": precision},
        classifiers=["mlp", "svm"],
        grids={"mlp": {"dim": 8, "depth": 1, "lr": 1e-2, "max_epochs": 20}, "svm": {"C": 1.0}},
    ))
    result = {
        "cuda": cuda, "precision": precision, "device_name": torch.cuda.get_device_name() if cuda else "cpu",
        "table2_setups": {name: {k: v for k, v in row.items() if isinstance(v, (int, float))} for name, row in metrics["setups"].items()},
        "teacher_top1": metrics.get("teacher_top1"), "t_table2_s": round(time.time() - started, 1),
    }
    print(json.dumps(result), flush=True)

    # The same student recipe under torchrun, with the teacher Table 2 just trained.
    config = WORK / "kd-ddp.yaml"  # JSON is valid YAML
    config.write_text(json.dumps({
        "manifest": str(next(run.rglob("manifest.csv"))), "out": str(WORK / "kd-ddp"),
        "cache_dir": str(next(run.rglob("cache.json")).parent), "teacher": f"inproject:{next(run.rglob('teacher*/model.pt'))}",
        "size": 32, "frames": 8, "ae_overrides": TINY_AE, "head_dim": 8, "head_depth": 1, "epochs": 2, "warmup_epochs": 1,
        "batch_size": 4, "optimizer": "adamw", "lr": 1e-3, "precision": precision,
    }))
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "-m", "tinyact", "train", "kd",
                          "--config", str(config)], capture_output=True, text=True)
    result.update(torchrun_rc=ddp.returncode, torchrun_tail=(ddp.stdout + ddp.stderr)[-3000:], t_total_s=round(time.time() - started, 1))
    (out / "gpu_kd.json").write_text(json.dumps(result, indent=1))
    print(result["torchrun_rc"], result["torchrun_tail"][-1500:], flush=True)


if __name__ == "__main__":
    main()
