"""``tinyact train …``: training runs (``ae``: the reconstruction autoencoder; ``ssl``: self-supervised objectives;
``adapt``: label-free adaptation of a pretrained encoder; ``finetune``: supervised fine-tuning of one on labelled
clips; ``teacher``: the in-project KD teacher; ``kd``: the
knowledge-distilled student)."""

from __future__ import annotations

from pathlib import Path

import typer

from tinyact.console import console

app = typer.Typer(help="Train models: the autoencoder (ae), self-supervised encoders (ssl, adapt), a pretrained "
                       "encoder fine-tuned on your labelled clips (finetune), the KD teacher "
                       "(teacher) and student (kd).",
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
    objective: str = typer.Option(
        "reconstruction", help="reconstruction (this command's autoencoder) or a self-supervised objective "
        "(ssl, rho-byol, rho-simclr, speed: runs `tinyact train ssl` with these options)."),
) -> None:
    """Train an autoencoder on the reconstruction MSE (Adam); checkpoints every epoch, --resume continues exactly."""
    if objective != "reconstruction":
        if config is not None or kind not in (None, "ae3d") or workers is not None:
            raise typer.BadParameter("with a self-supervised --objective use `tinyact train ssl` (its own --config)",
                                     param_hint="--objective")
        _run_ssl(objective=objective, manifest=manifest, out=out, preset=preset, size=size, frames=frames,
                 batch_size=batch_size, lr=lr, epochs=epochs, seed=seed, precision=precision, device=device,
                 resume=resume)
        return
    _run_ae(config, manifest=manifest, out=out, kind=kind, preset=preset, size=size, frames=frames,
            batch_size=batch_size, lr=lr, epochs=epochs, seed=seed, workers=workers, precision=precision,
            device=device, cache_dir=cache_dir, resume=resume)


def _run_ae(config: Path | None, resume: bool, **options) -> None:
    """The reconstruction autoencoder (``tinyact.training.ae``), unchanged by the self-supervised objectives."""
    from tinyact.training.ae import AETrainConfig, train_autoencoder

    cfg = AETrainConfig.from_yaml(config, **options)
    result = train_autoencoder(cfg, resume=resume)
    m = result.metrics
    console.print(
        f"model {result.checkpoint} (hash {result.encoder_hash}); last epoch: train MSE {m.get('train_mse', float('nan')):.5f}, "
        f"val MSE {m.get('val_mse', float('nan')):.5f} ({m.get('val_psnr', float('nan')):.2f} dB); metrics {result.metrics_csv}"
    )


def _run_ssl(config: Path | None = None, resume: bool = False, **options) -> None:
    from tinyact.training.ssl import SSLTrainConfig, train_ssl

    cfg = SSLTrainConfig.from_yaml(config, **options)
    result = train_ssl(cfg, resume=resume)
    m, first = result.metrics, result.initial
    line = f"model {result.model} (hash {result.encoder_hash}); last epoch: loss {m.get('loss', float('nan')):.4f}"
    if "probe_linear" in m:
        line += (f", probe on val {100 * m['probe_linear']:.1f} % (start {100 * first.get('probe_linear', float('nan')):.1f} %); "
                 f"best {100 * result.best.get('probe_linear', float('nan')):.1f} % at epoch "
                 f"{int(result.best.get('epoch', 0))} in {result.best_model}")
    console.print(f"{line}; metrics {result.metrics_csv}")


@app.command()
def ssl(
    config: Path = typer.Option(None, help="YAML file with SSLTrainConfig fields (options below override it)."),
    manifest: Path = typer.Option(None, help="Manifest CSV; labels are read only by the per-epoch probe."),
    out: Path = typer.Option(None, help="Run folder (last.pt, model.pt, best.pt, metrics.csv, curves.png)."),
    objective: str = typer.Option(None, help="ssl (the recommended one), rho-byol, rho-simclr, speed, or "
                                  "reconstruction (the autoencoder of `tinyact train ae`) [default: ssl]."),
    init: str = typer.Option(None, help="Start from zoo:NAME or a model file [default: random weights]."),
    preset: str = typer.Option(None, help="Encoder preset when starting from random weights [default: fast-motion]."),
    size: int = typer.Option(None, help="Crop size in pixels [default: 112]."),
    frames: int = typer.Option(None, help="Frames per clip [default: 16]."),
    batch_size: int = typer.Option(None, help="Videos per step, rho views each [default: 16]."),
    lr: float = typer.Option(None, help="Peak AdamW learning rate [default: 1e-3]."),
    epochs: int = typer.Option(None, help="Epochs [default: 10]."),
    seed: int = typer.Option(None, help="Random seed [default: 0]."),
    precision: str = typer.Option(None, help="fp32, bf16 (autocast, CPU or GPU) or amp (float16, GPU)."),
    device: str = typer.Option(None, help="auto, cpu or cuda [default: auto]."),
    cache_dir: Path = typer.Option(None, help="Window cache folder, built if missing [default: OUT/windows]."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT from its last finished epoch."),
) -> None:
    """Self-supervised training of the encoder on videos (no labels); a probe on the val split each epoch."""
    if (objective or "") == "reconstruction":
        if config is not None or init is not None:
            raise typer.BadParameter("--objective reconstruction takes `tinyact train ae` options; use that command "
                                     "for its --config", param_hint="--objective")
        _run_ae(None, manifest=manifest, out=out, preset=preset, size=size, frames=frames, batch_size=batch_size,
                lr=lr, epochs=epochs, seed=seed, precision=precision, device=device, cache_dir=cache_dir,
                resume=resume)
        return
    _run_ssl(config, resume=resume, manifest=manifest, out=out, objective=objective, init=init, preset=preset,
             size=size, frames=frames, batch_size=batch_size, lr=lr, epochs=epochs, seed=seed, precision=precision,
             device=device, cache_dir=cache_dir)


@app.command()
def adapt(
    encoder: str = typer.Option(..., help="The encoder to adapt: zoo:NAME or a model file."),
    manifest: Path = typer.Option(..., help="Your clips' manifest; train+val videos adapt (labels unused), the "
                                  "val labels decide whether to keep the result."),
    out: Path = typer.Option(..., help="Folder for OUT/model.pt (the kept encoder), OUT/adapt.json and the run."),
    objective: str = typer.Option("ssl", help="Self-supervised objective (ssl = the recommended one)."),
    epochs: int = typer.Option(5, help="Epochs of adaptation."),
    lr: float = typer.Option(3e-4, help="Peak AdamW learning rate."),
    batch_size: int = typer.Option(16, help="Videos per step."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    precision: str = typer.Option("fp32", help="fp32, bf16 or amp (GPU)."),
    cache_dir: Path = typer.Option(None, help="Window cache folder [default: OUT/ssl/windows]."),
) -> None:
    """Adapt a pretrained encoder to your footage without labels; keeps it only if the val probe improves."""
    from tinyact.training.adapt import adapt_encoder

    result = adapt_encoder(encoder, manifest, out, objective=objective, epochs=epochs, lr=lr, batch_size=batch_size,
                           seed=seed, device=device, precision=precision, cache_dir=cache_dir)
    colour = "green" if result.kept == "adapted" else "yellow"
    console.print(f"probe on val: {100 * result.before:.1f} % before, {100 * result.after:.1f} % after adaptation "
                  f"(epoch {result.after_epoch}); kept the [{colour}]{result.kept}[/{colour}] encoder: {result.model} "
                  f"(hash {result.encoder_hash}); report {result.report}")


@app.command()
def finetune(
    manifest: Path = typer.Option(None, help="Your labelled clips' manifest (`tinyact data manifest`): train "
                                  "windows train, val windows choose the epoch and decide whether to keep it."),
    out: Path = typer.Option(None, help="Folder for OUT/model.pt (the kept encoder), OUT/finetune.json and the run."),
    init: str = typer.Option(None, help="Encoder to start from: zoo:NAME or a model file [default: zoo:everyday-64]."),
    epochs: int = typer.Option(None, help="Epochs [default: 8]."),
    lr: float = typer.Option(None, help="Peak AdamW learning rate [default: 2e-3]."),
    frozen_stages: int = typer.Option(None, help="Encoder stages kept as pretrained, the stem first: faster, fewer "
                                      "weights to fit [default: 0]."),
    flip: bool = typer.Option(None, help="Random left-right flips: only if no class depends on direction "
                              "[default: off]."),
    device: str = typer.Option(None, help="auto, cpu or cuda [default: auto]."),
    resume: bool = typer.Option(False, help="Continue the run in OUT from its last epoch."),
    config: Path = typer.Option(None, help="YAML file with FinetuneConfig fields (options override it)."),
) -> None:
    """Fine-tune a pretrained encoder on your labelled clips, one window per example; kept only if the val probe
    improves. Use OUT/model.pt wherever an encoder is asked for (--encoder, edge encoder.checkpoint)."""
    from tinyact.training.finetune import FinetuneConfig
    from tinyact.training.finetune import finetune as run_finetune

    cfg = FinetuneConfig.from_yaml(config, manifest=manifest, out=out, init=init, epochs=epochs, lr=lr,
                                   frozen_stages=frozen_stages, flip=flip, device=device)
    result = run_finetune(cfg, resume=resume)
    colour = "green" if result.kept == "finetuned" else "yellow"
    console.print(f"probe on val: {100 * result.before:.1f} % before, {100 * result.after:.1f} % after fine-tuning "
                  f"(epoch {result.epoch + 1}); kept the [{colour}]{result.kept}[/{colour}] encoder: {result.model} "
                  f"(hash {result.encoder_hash}); report {result.report}")


@app.command()
def teacher(
    config: Path = typer.Option(None, help="YAML file with TeacherTrainConfig fields (options below override it)."),
    manifest: Path = typer.Option(None, help="Manifest CSV (from `tinyact data manifest`)."),
    out: Path = typer.Option(None, help="Run folder (checkpoint.pt, model.pt, metrics.csv, curves.png)."),
    cache_dir: Path = typer.Option(None, help="Clip cache built with the same --frames/--size (`tinyact data cache`)."),
    preset: str = typer.Option(None, help="small or r2plus1d_18 [default: small]."),
    size: int = typer.Option(None, help="Crop size in pixels [default: 112]."),
    frames: int = typer.Option(None, help="Frames per clip [default: 16]."),
    batch_size: int = typer.Option(None, help="Global batch size [default: 8]."),
    epochs: int = typer.Option(None, help="Epochs [default: 15]."),
    lr: float = typer.Option(None, help="Initial learning rate [default: 1e-3]."),
    seed: int = typer.Option(None, help="Random seed [default: 0]."),
    device: str = typer.Option(None, help="auto, cpu or cuda [default: auto]."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT from its last finished epoch."),
) -> None:
    """Train the in-project teacher (R(2+1)D-style 3-D CNN, cross-entropy); use it as --teacher inproject:OUT/model.pt."""
    from tinyact.training.teacher import TeacherTrainConfig, train_teacher

    cfg = TeacherTrainConfig.from_yaml(
        config, manifest=manifest, out=out, cache_dir=cache_dir, preset=preset, size=size, frames=frames,
        batch_size=batch_size, epochs=epochs, lr=lr, seed=seed, device=device,
    )
    result = train_teacher(cfg, resume=resume)
    test = "-" if result.test_top1 is None else f"{result.test_top1:.3f}"
    console.print(f"teacher {result.checkpoint}: val top-1 {result.val_top1:.3f}, test top-1 {test}; metrics {result.metrics_csv}")


@app.command()
def kd(
    config: Path = typer.Option(None, help="YAML file with KDConfig fields (options below override it)."),
    manifest: Path = typer.Option(None, help="Manifest CSV."),
    out: Path = typer.Option(None, help="Run folder."),
    cache_dir: Path = typer.Option(None, help="Clip cache built with the same --frames/--size."),
    setup: str = typer.Option(None, help="scratch, pretrained or frozen [default: scratch]."),
    pretrained: Path = typer.Option(None, help="Autoencoder model file (pretrained / frozen set-ups)."),
    teacher_logits: Path = typer.Option(None, help="CachedLogits .npz from `tinyact teacher cache`."),
    teacher: str = typer.Option(None, help="Teacher spec run on the fly instead (e.g. inproject:RUN/model.pt)."),
    feature_kd: float = typer.Option(None, help="Weight δ of feature-level KD (0 = off) [default: 0]."),
    size: int = typer.Option(None, help="Crop size in pixels [default: 112]."),
    frames: int = typer.Option(None, help="Frames per clip [default: 16]."),
    epochs: int = typer.Option(None, help="Epochs [default: 100]."),
    warmup_epochs: int = typer.Option(None, help="β warm-up epochs [default: 20]."),
    batch_size: int = typer.Option(None, help="Global batch size (split over torchrun processes) [default: 8]."),
    lr: float = typer.Option(None, help="Initial learning rate [default: 1e-4]."),
    seed: int = typer.Option(None, help="Random seed [default: 0]."),
    device: str = typer.Option(None, help="auto, cpu or cuda [default: auto]."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT from its last finished epoch."),
) -> None:
    """Train the KD student (autoencoder + MLPResNet head): α·CE + β·T²·KL + γ·MSE. Runs under torchrun too."""
    from tinyact.training.kd import KDConfig, train_kd

    cfg = KDConfig.from_yaml(
        config, manifest=manifest, out=out, cache_dir=cache_dir, setup=setup, pretrained=pretrained,
        teacher_logits=teacher_logits, teacher=teacher, feature_kd=feature_kd, size=size, frames=frames,
        epochs=epochs, warmup_epochs=warmup_epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
    )
    result = train_kd(cfg, resume=resume)
    if result.encoder_hash:  # rank 0
        test = "-" if result.test_top1 is None else f"{result.test_top1:.3f}"
        console.print(
            f"student {result.checkpoint} (hash {result.encoder_hash}) + {result.head}: val top-1 {result.val_top1:.3f}, "
            f"test top-1 {test}; metrics {result.metrics_csv}"
        )
