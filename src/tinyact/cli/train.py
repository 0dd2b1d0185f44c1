"""``tinyact train …``: training runs (``ae``: the unsupervised autoencoder; other stages add theirs here)."""

from __future__ import annotations

from pathlib import Path

import typer

from tinyact.console import console

app = typer.Typer(help="Train models: the unsupervised autoencoder (ae), the KD teacher (teacher) and student (kd).",
                  no_args_is_help=True)


@app.command()
def ae(
    config: Path = typer.Option(None, help="YAML file with AETrainConfig fields (options below override it)."),
    manifest: Path = typer.Option(None, help="Manifest CSV (from `tinyact data manifest`)."),
    out: Path = typer.Option(None, help="Run folder (checkpoints, metrics.csv, curves, model.pt)."),
    kind: str = typer.Option(None, help="ae3d or ae2d [default: ae3d]."),
    preset: str = typer.Option(None, help="Model preset, see `tinyact models summary` [default: fast]."),
    size: int = typer.Option(None, help="Crop size in pixels [default: 112]."),
    frames: int = typer.Option(None, help="Frames per clip [default: 16]."),
    batch_size: int = typer.Option(None, help="Clips per step [default: 8]."),
    lr: float = typer.Option(None, help="Adam learning rate [default: 1e-3]."),
    epochs: int = typer.Option(None, help="Epochs [default: 10]."),
    seed: int = typer.Option(None, help="Random seed [default: 0]."),
    workers: int = typer.Option(None, help="Decoder processes for the clip cache; 0 = one per core."),
    precision: str = typer.Option(None, help="fp32, bf16 (autocast, CPU or GPU) or amp (float16, GPU)."),
    device: str = typer.Option(None, help="auto, cpu or cuda [default: auto]."),
    cache_dir: Path = typer.Option(None, help="Clip cache folder, built if missing [default: OUT/cache]."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT from its last finished epoch."),
) -> None:
    """Train an autoencoder on the reconstruction MSE (Adam); checkpoints every epoch, --resume continues exactly."""
    from tinyact.training.ae import AETrainConfig, train_autoencoder

    cfg = AETrainConfig.from_yaml(
        config, manifest=manifest, out=out, kind=kind, preset=preset, size=size, frames=frames,
        batch_size=batch_size, lr=lr, epochs=epochs, seed=seed, workers=workers, precision=precision,
        device=device, cache_dir=cache_dir,
    )
    result = train_autoencoder(cfg, resume=resume)
    m = result.metrics
    console.print(
        f"model {result.checkpoint} (hash {result.encoder_hash}); last epoch: train MSE {m.get('train_mse', float('nan')):.5f}, "
        f"val MSE {m.get('val_mse', float('nan')):.5f} ({m.get('val_psnr', float('nan')):.2f} dB); metrics {result.metrics_csv}"
    )
