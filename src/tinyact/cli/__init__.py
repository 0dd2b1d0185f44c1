"""The ``tinyact`` command line: a thin layer of Typer sub-commands over the package, grouped by stage.

Errors a user can cause (:class:`~tinyact.errors.TinyActError`) are printed as one line and exit with
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup

from tinyact import __version__
from tinyact.console import console, setup_logging
from tinyact.errors import TinyActError

#: Top-level commands in the order a clip travels through the system (``--help`` lists them so).
COMMAND_ORDER = ("data", "models", "zoo", "train", "extract", "classify", "teacher", "experiment", "bundle", "edge", "cloud", "demo")


def _escape_option_help(command: click.Command) -> None:
    """Escape Rich markup in every option's help below ``command``, so ``[default: 8000]`` stays visible."""
    for param in command.params:
        text = getattr(param, "help", None)
        if text:
            param.help = escape(text)
    for sub in getattr(command, "commands", {}).values():
        _escape_option_help(sub)


class _Group(TyperGroup):
    """Root command group: a :class:`TinyActError` becomes a red one-line message and exit status 2.

    Option help is plain text (its square brackets are not Rich markup), and commands are listed in
    :data:`COMMAND_ORDER`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _escape_option_help(self)

    def list_commands(self, ctx):
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TinyActError as error:
            console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None


app = typer.Typer(
    cls=_Group,
    help="TinyAct: real-time human action recognition split between edge devices and a cloud service.\n\n"
    "Stages, in the order a clip travels: data (videos -> clips) -> models (families, sizes) -> "
    "zoo (pretrained encoders) -> "
    "train (autoencoder, teacher, KD student) -> extract (clips -> latents) -> classify (latents -> labels) -> "
    "teacher (cached logits for KD) -> experiment (the paper's tables) -> bundle (a run -> one deployable folder) -> edge (cameras -> latents) -> "
    "cloud (latents -> stored results) -> demo (the whole system on this machine).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tinyact {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    setup_logging(verbose)


def _register() -> None:
    from tinyact.cli import (
        bundle,
        classify,
        cloud,
        data,
        demo,
        edge,
        experiment,
        extract,
        models,
        teacher,
        train,
        zoo,
    )

    app.add_typer(data.app, name="data")
    app.command("extract")(extract.extract)
    app.add_typer(train.app, name="train")
    app.add_typer(models.app, name="models")
    app.add_typer(zoo.app, name="zoo")
    app.add_typer(classify.app, name="classify")
    app.add_typer(teacher.app, name="teacher")
    app.add_typer(experiment.app, name="experiment")
    app.command("bundle")(bundle.bundle)
    app.add_typer(cloud.app, name="cloud")
    app.add_typer(edge.app, name="edge")
    app.command("demo")(demo.demo)


_register()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="tinyact")
