"""Regressions found by trying TinyAct as a new user: help texts, messages, exit codes, edge counters."""

from __future__ import annotations

from rich.text import Text
from typer.testing import CliRunner

from tinyact.cli import COMMAND_ORDER, app

runner = CliRunner()


def _walk(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


def test_cloud_serve_help_shows_the_default_port():
    result = runner.invoke(app, ["cloud", "serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "default: 8000" in result.output


def test_no_option_help_loses_text_to_rich_markup():
    import typer.main

    root = typer.main.get_command(app)
    for path, command in _walk(root):
        for param in command.params:
            help_text = getattr(param, "help", None)
            if help_text:
                plain = Text.from_markup(help_text).plain
                assert plain.count("[") == help_text.replace("\\[", "[").count("["), (path, param.name, help_text)


def test_top_level_help_lists_commands_in_data_path_order():
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    assert COMMAND_ORDER == ("data", "models", "train", "extract", "classify", "teacher", "experiment", "edge",
                             "cloud", "demo")
    lines = result.output.splitlines()
    listed = [line.split()[1] for line in lines if line.startswith("│ ") and line[2:3].strip()
              and line.split()[1] in COMMAND_ORDER]
    assert listed == list(COMMAND_ORDER)
    assert "…" not in result.output
    assert "kd" in result.output
