"""``tinyact models …``: inspect the model families (parameters, FLOPs)."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from tinyact.console import console
from tinyact.errors import ConfigError

app = typer.Typer(help="Model families: parameters and FLOPs per preset and input size.", no_args_is_help=True)


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{what} takes comma-separated integers, got {text!r}") from None


@app.command()
def summary(
    sizes: str = typer.Option("112,160,224", help="Comma-separated input sizes (square crops)."),
    frames: int = typer.Option(16, help="Frames per clip T."),
    kinds: str = typer.Option("ae3d,ae2d", help="Comma-separated kinds: ae3d, ae2d."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON rows instead of a table."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table (as in docs/MODELS.md)."),
) -> None:
    """Params and FLOPs (torch FlopCounterMode, batch 1) of every preset: encoder only and full autoencoder."""
    from tinyact.models.summary import summary_table, to_markdown

    rows = summary_table([k.strip() for k in kinds.split(",") if k.strip()], _ints(sizes, "--sizes"), frames)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if markdown:
        print(to_markdown(rows))
        return
    table = Table(title=f"autoencoders, batch 1, T={frames} (FLOPs: conv + matmul; 1 MAC = 2 FLOPs)")
    columns = ["kind", "preset", "size", "encoder_params_m", "total_params_m", "encoder_gflops", "encoder_gmacs", "full_gflops"]
    headers = ["kind", "preset", "size", "enc params M", "total params M", "enc GFLOPs", "enc GMACs", "full GFLOPs"]
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)
