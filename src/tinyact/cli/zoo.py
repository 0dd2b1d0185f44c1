"""``tinyact zoo …``: the pretrained encoders shipped with TinyAct (list, inspect, re-create)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tinyact.console import console

app = typer.Typer(help="Pretrained encoders shipped in the package: list, info, and build (re-create from the recipe).",
                  no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """The shipped encoders, their input and their headline accuracy."""
    from tinyact.zoo import DEFAULT_ENCODER, list_entries

    table = Table("name", "input", "weights", "pretraining classes", "trained on", "summary")
    for entry in list_entries():
        size_mb = entry.weights.stat().st_size / 1e6 if entry.weights.is_file() else float("nan")
        name = entry.name + (" (default)" if entry.name == DEFAULT_ENCODER else "")
        where = entry.trained_on.get("gpu") or f"CPU ({entry.trained_on.get('cpus', '?')} cores)"
        table.add_row(name, f"{entry.frames}x{entry.size}²", f"{size_mb:.1f} MB fp16", str(len(entry.label_names)),
                      where, entry.description.split(". ")[0])
    console.print(table)


@app.command()
def info(name: str = typer.Argument(..., help="Entry name, e.g. everyday-64.")) -> None:
    """Everything an entry records: architecture, input, classes, recipe, hashes, metrics, machine."""
    import yaml

    from tinyact.zoo import get_entry, load_encoder

    entry = get_entry(name)
    load_encoder(name)  # verifies the SHA-256 and the encoder hash
    text = (entry.folder / "entry.yaml").read_text()
    console.print(yaml.safe_dump(yaml.safe_load(text), sort_keys=False), highlight=False, markup=False)
    console.print(f"[green]weights verified[/] (SHA-256 {entry.weights_sha256[:16]}…, encoder hash {entry.encoder_hash})")


@app.command()
def build(
    name: str = typer.Argument(..., help="Entry whose recipe to run (tinyact/zoo/recipes/NAME.yaml)."),
    work: Path = typer.Option(None, help="Work folder for corpus and checkpoints [default: $TINYACT_HOME/zoo-build/NAME]."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    epochs: int = typer.Option(None, help="Override the recipe's epochs (e.g. a quick check)."),
    install: bool = typer.Option(False, "--install", help="Write the result into the package (what zoo:NAME loads)."),
    from_stage: int = typer.Option(1, help="Skip the recipe's stages before this one (needs --init)."),
    init: str = typer.Option(None, help="Model the first stage run continues from: a model file or zoo:NAME "
                             "(e.g. the shipped entry, to add a stage without re-running the earlier ones)."),
) -> None:
    """Re-create an entry from scratch with its recorded recipe. Resumable: run it again to continue."""
    from tinyact.paths import data_home
    from tinyact.training.zoo_build import build_entry
    from tinyact.zoo import get_entry, materialize

    work = work or data_home() / "zoo-build" / name
    start = materialize(init, work / "init") if init else None
    record, stages = None, None
    if init and init.startswith("zoo:"):  # keep where and how the earlier stages ran: the entry is about to be replaced
        earlier = get_entry(init[4:] or name)
        record = {"init_encoder_hash": earlier.encoder_hash, "init_trained_on": earlier.trained_on}
        stages = earlier.metrics.get("stages", {})
    folder = build_entry(name, work, device=device, install=install, epochs=epochs, from_stage=from_stage, init=start,
                         init_record=record, earlier_stages=stages)
    console.print(f"entry written to {folder}" + ("" if install else " (use --install to make it zoo:" + name + ")"))
