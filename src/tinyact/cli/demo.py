"""``tinyact demo``: the whole system on this machine (README command 1)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tinyact.console import console


def demo(
    out: Path = typer.Option(None, help="Run folder for summary.json [default: $TINYACT_HOME/demo]."),
    data: Path = typer.Option(None, help="Synthetic dataset folder, generated if missing [default: $TINYACT_HOME/synth]."),
    classes: int = typer.Option(None, help="Action classes to generate [default: 10]."),
    clips_per_class: int = typer.Option(None, help="Clips per class [default: 20]."),
    config: Path = typer.Option(None, help="YAML file with DemoConfig fields (options override it)."),
) -> None:
    """Run TinyAct end to end on generated videos with embedded defaults (SQLite, local files, no servers)."""
    from tinyact.demo import DemoConfig, run_demo

    cfg = DemoConfig.from_yaml(config, out=out, data=data, classes=classes, clips_per_class=clips_per_class)
    summary = run_demo(cfg)
    table = Table(title="TinyAct demo")
    table.add_column("what")
    table.add_column("value", justify="right")
    for split, n in summary["clips_per_split"].items():
        table.add_row(f"clips in {split}", str(n))
    table.add_row("classes", str(len(summary["classes"])))
    table.add_row("clip shape [T, C, H, W]", str(summary["clip_shape"]))
    table.add_row("skipped (bad files)", str(summary["skipped"]))
    if summary["decode_clips_per_s"]:
        table.add_row("decode + sample + resize (clips/s)", str(summary["decode_clips_per_s"]))
    table.add_row("read from cache (clips/s)", str(summary["cache_read_clips_per_s"]))
    table.add_row("elapsed (s)", str(summary["elapsed_s"]))
    console.print(table)
    console.print(f"summary: {cfg.out / 'summary.json'}")
