"""``tinyact bundle RUN``: the deployable bundle of a finished table1 run (encoder reference, chosen
classifier, labels, preprocessing, metrics, model card)."""

from __future__ import annotations

from pathlib import Path

import typer


def bundle(
    run: Path = typer.Argument(..., help="Run folder of `tinyact experiment table1` (with metrics.json)."),
    out: Path = typer.Option(None, help="Bundle folder to write (replaced if it is a bundle) [default: RUN/bundle]."),
) -> None:
    """Make a bundle from a table1 run (its classifier chosen on val) and print the commands that deploy it."""
    from tinyact.classifiers.bundle import bundle_from_table1
    from tinyact.cli.experiment import print_next_steps

    made = bundle_from_table1(run, out)
    print_next_steps(made.path)
