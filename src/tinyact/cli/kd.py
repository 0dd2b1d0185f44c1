"""``tinyact train teacher``, ``tinyact train kd`` and ``tinyact experiment table2``: knowledge distillation.

:func:`register` adds the commands to the ``train`` and ``experiment`` groups other stages create (or creates
the groups), so the stages' CLI modules stay independent.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tinyact.console import console


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


def table2(
    data: Path = typer.Option(..., help="Dataset root."),
    out: Path = typer.Option(..., help="Run folder (resumes when run again)."),
    layout: str = typer.Option("kinetics", help="kinetics, folder or list (--annotations)."),
    split_file: Path = typer.Option(None, help="folder layout: CSV path,split."),
    annotations: list[str] = typer.Option(None, help="list layout: SPLIT=FILE of 'path label' lines, repeatable."),
    labels: Path = typer.Option(None, help="list layout: class names, one per line, for numeric labels."),
    teacher: str = typer.Option("inproject", help="Teacher spec; 'inproject' trains the in-project teacher first."),
    epochs: int = typer.Option(None, help="KD epochs per set-up [default: 30]."),
    size: int = typer.Option(None, help="Crop size in pixels [default: 112]."),
    frames: int = typer.Option(None, help="Frames per clip [default: 16]."),
    folds: int = typer.Option(None, help="k of the classifiers' stratified k-fold CV [default: 10]."),
    config: Path = typer.Option(None, help="YAML file with Table2Config fields (options override it)."),
) -> None:
    """The paper's Table 2: KD set-ups (scratch, pretrained, frozen, feature KD) and classifiers on their latents."""
    from tinyact.data.layouts import parse_annotations
    from tinyact.experiments.table2 import Table2Config, run_table2

    cfg = Table2Config.from_yaml(
        config, data=data, out=out, layout=layout, split_file=split_file,
        annotations=parse_annotations(annotations) or None, labels=labels, teacher=teacher, epochs=epochs, size=size,
        frames=frames, folds=folds,
    )
    metrics = run_table2(cfg)
    console.print((Path(cfg.out) / "table2.md").read_text())
    console.print(f"metrics: {Path(cfg.out) / 'metrics.json'} (teacher top-1 {metrics.get('teacher_top1')})")
    if (Path(cfg.out) / "bundle" / "bundle.yaml").is_file():
        from tinyact.cli.experiment import print_next_steps

        print_next_steps(Path(cfg.out) / "bundle")


def _group(app: typer.Typer, name: str, help_text: str) -> typer.Typer:
    """The sub-app called ``name`` (created and added when no other stage made it)."""
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


def register(app: typer.Typer) -> None:
    """Add ``train teacher``, ``train kd`` and ``experiment table2`` to the root app."""
    train = _group(app, "train", "Train models.")
    train.command("teacher")(teacher)
    train.command("kd")(kd)
    experiment = _group(app, "experiment", "Reproduce the paper's experiments.")
    experiment.command("table2")(table2)
