"""``tinyact classify …``: fit classical classifiers on a latents file, evaluate a saved one."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from tinyact.console import console
from tinyact.errors import ConfigError, DatasetError

app = typer.Typer(
    help="Latents -> labels: grid-search SVM / RF / XGBoost / DT on a latents file, evaluate a saved classifier.",
    no_args_is_help=True,
)


def _metrics_table(title: str, metrics: dict) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("top1", "top5", "precision", "recall", "f1", "n"):
        if key in metrics:
            value = metrics[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


def read_grid(path: Path | None, kind: str) -> dict | None:
    """A grid from YAML: either ``{param: [values]}`` or ``{kind: {param: [values]}, ...}``."""
    if path is None:
        return None
    import yaml

    if not path.is_file():
        raise ConfigError(f"grid file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must map parameter names to lists of values")
    if kind in data and isinstance(data[kind], dict):
        return data[kind]
    return data


@app.command()
def fit(
    latents: Path = typer.Option(..., help="Latents file (.npz from `tinyact extract`)."),
    model: str = typer.Option(..., help="Classifier kind: svm, rf, xgboost, dt (or one another stage added)."),
    out: Path = typer.Option(..., help="Folder to save the chosen classifier in (the format the cloud serves)."),
    folds: int = typer.Option(10, min=2, help="Stratified k-fold CV on train (fewer when a class has fewer clips)."),
    grid: Path = typer.Option(None, help="YAML grid: {param: [values]} or {kind: {param: [values]}}; names without "
                              "'__' mean the classifier step (C = clf__C)."),
    seed: int = typer.Option(0, help="Seed for the folds and the estimators."),
    jobs: int = typer.Option(1, help="Parallel CV fits (1 on a shared machine)."),
    bundle: Path = typer.Option(None, help="Folder for the deployable bundle (written when the latents' encoder is "
                                "known: a zoo encoder or the model file they name) [default: OUT-bundle]."),
) -> None:
    """Grid search with stratified k-fold on train, final choice on val, metrics on test; saves to OUT (and a
    bundle for `cloud serve --model` and `edge init --bundle`)."""
    from tinyact.classifiers.estimators import FACTORIES
    from tinyact.classifiers.search import fit_classifier
    from tinyact.latents import LatentsFile

    if model not in FACTORIES:
        raise ConfigError(f"unknown classifier {model!r}: use one of {', '.join(FACTORIES)}")
    result = fit_classifier(
        LatentsFile.load(latents), model, out, folds=folds, grid=read_grid(grid, model), seed=seed, n_jobs=jobs
    )
    if result.folds_note:
        console.print(f"[yellow]{result.folds_note}[/]")
    console.print(_metrics_table(f"{model} on test ({result.metrics['n']} clips)", result.metrics))
    console.print(f"best params {result.best_params}; val top-1 {result.val_top1}")
    assert result.saved is not None  # given an output folder, the search always saves its choice
    console.print(f"saved {result.saved.version} to {out} (confusion matrix: {out / 'confusion.png'})")
    from tinyact.classifiers.bundle import bundle_from_latents, next_steps

    made = bundle_from_latents(latents, out, bundle or out.with_name(out.name + "-bundle"))
    if made is None:
        console.print("no bundle: the latents' encoder is neither a zoo encoder nor a model file they name; "
                      "make one with `tinyact bundle` from a table1 run", highlight=False)
        return
    for line in next_steps(made):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command("eval")
def eval_(
    model: Path = typer.Option(..., help="Saved classifier folder (from `tinyact classify fit`)."),
    latents: Path = typer.Option(..., help="Latents file made by the same encoder."),
    split: str = typer.Option("test", help="Split to evaluate: train, val, test or all."),
    out: Path = typer.Option(None, help="Folder for report.json/txt and confusion.png [default: none]."),
) -> None:
    """Evaluate a saved classifier on a latents file; refuses latents of another dimension or encoder."""
    import numpy as np

    from tinyact.classifiers.evaluate import evaluate
    from tinyact.classifiers.saved import load_classifier
    from tinyact.latents import LatentsFile

    data = LatentsFile.load(latents)
    saved = load_classifier(model, latent_dim=data.dim, encoder_hash=data.encoder_hash)
    if split != "all":
        data = data.split(split)
        if len(data) == 0:
            raise DatasetError(f"{latents} has no clips in split {split!r}")
    unknown = sorted(set(data.labels.tolist()) - set(saved.label_names))
    if unknown:
        raise DatasetError(f"labels {unknown[:5]} in {latents} are not classes of the classifier in {model}")
    index = {name: i for i, name in enumerate(saved.label_names)}
    y = np.array([index[label] for label in data.labels.tolist()], dtype=np.int64)
    metrics = evaluate(saved, data.latents, y, saved.label_names, out_dir=out)
    console.print(_metrics_table(f"{saved.version} on {split} ({len(y)} clips)", metrics))
    if out is not None:
        console.print(f"report: {out / 'report.json'}")
    else:
        console.print(json.dumps({k: v for k, v in metrics.items() if k not in ("per_class", "confusion")}))
