"""``tinyact experiment …``: the paper's tables reproduced end to end on a dataset we have."""

from __future__ import annotations

from pathlib import Path

import typer

from tinyact.console import console

app = typer.Typer(help="Reproduce the paper's tables end to end (table1: classical classifiers on latents; table2: KD).",
                  no_args_is_help=True)


def _split_list(value: str | None) -> list[str] | None:
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


@app.command()
def table1(
    data: Path = typer.Option(None, help="Dataset root folder."),
    out: Path = typer.Option(None, help="Run folder (metrics.json, table1.md, config.yaml, …); a rerun resumes."),
    layout: str = typer.Option(None, help="kinetics (CVDF layout), folder (ROOT/<class>/<video>) or list (--annotations) [default: kinetics]."),
    split_file: Path = typer.Option(None, help="folder layout: CSV path,split; without it a seeded stratified split."),
    annotations: list[str] = typer.Option(None, help="list layout: SPLIT=FILE of 'path label' lines, repeatable."),
    labels: Path = typer.Option(None, help="list layout: class names, one per line, for numeric labels."),
    encoder: str = typer.Option(None, help="zoo:NAME (a pretrained encoder, see `tinyact zoo list`), a model file, "
                                "or scratch (train the paper's autoencoder on this data) [default: zoo:everyday-64]."),
    adapt: str = typer.Option(None, help="Adapt the pretrained encoder on this data's clips first: without labels "
                              "(ssl, rho-simclr, rho-byol, speed) or fine-tuned on the train labels (supervised); "
                              "kept only if the val probe improves [default: none, as measured on Weizmann: "
                              "docs/MODELS.md]."),
    objective: str = typer.Option(None, help="scratch: reconstruction (the paper's autoencoder) or a self-supervised "
                                  "objective: ssl, rho-simclr, rho-byol, speed [default: reconstruction]."),
    preset: str = typer.Option(None, help="scratch: autoencoder preset (fast, fast-motion, paper) [default: fast]."),
    size: int = typer.Option(None, help="Crop size in pixels [default: the encoder's; scratch: 112]."),
    frames: int = typer.Option(None, help="Frames per clip [default: the encoder's; scratch: 16]."),
    epochs: int = typer.Option(None, help="scratch: autoencoder training epochs [default: 10]."),
    batch_size: int = typer.Option(None, help="Autoencoder batch size [default: 8]."),
    folds: int = typer.Option(None, help="Stratified k-fold CV on train [default: 10]."),
    classifiers: str = typer.Option(None, help="Comma-separated kinds [default: svm,rf,xgboost,dt]."),
    seed: int = typer.Option(None, help="Seed for split, training, folds and the random encoder [default: 0]."),
    device: str = typer.Option(None, help="auto, cpu or cuda [default: auto]."),
    mirror: str = typer.Option(None, help="Also read every video mirrored left-right, features averaged: auto "
                               "(both readings, chosen on val with the classifier), on or off [default: auto]."),
    config: Path = typer.Option(None, help="YAML file with Table1Config fields (options override it)."),
) -> None:
    """Manifest -> cache -> encoder (pretrained zoo encoder, or trained here with --encoder scratch) -> latents ->
    SVM/RF/XGBoost/DT + raw-pixel, random-encoder and motion-history
    baselines; writes OUT/table1.md and OUT/metrics.json."""
    from tinyact.data.layouts import parse_annotations
    from tinyact.experiments.table1 import Table1Config, run_table1

    cfg = Table1Config.from_yaml(
        config, data=data, out=out, layout=layout, split_file=split_file,
        annotations=parse_annotations(annotations) or None, labels=labels, encoder=encoder, adapt=adapt, objective=objective, preset=preset, size=size, frames=frames,
        epochs=epochs, batch_size=batch_size, folds=folds, classifiers=_split_list(classifiers), seed=seed,
        device=device, mirror=mirror,
    )
    metrics = run_table1(cfg)
    console.print((Path(cfg.out) / "table1.md").read_text())
    best = metrics["best"]
    console.print(f"best: {best['classifier']} top-1 {100 * best['top1']:.2f} %; written to {cfg.out}")
    print_next_steps(Path(cfg.out) / "bundle")


@app.command()
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
        print_next_steps(Path(cfg.out) / "bundle")


def print_next_steps(folder: Path) -> None:
    """The run's last lines: the bundle, a warning when it does not beat the random encoder, what to run next."""
    from tinyact.classifiers.bundle import load_bundle, next_steps

    for line in next_steps(load_bundle(folder)):
        console.print(f"[bold yellow]{line}[/]" if line.startswith("WARNING") else line, highlight=False, soft_wrap=True,
                      markup=line.startswith("WARNING"))
