"""The CLI: help texts, the data commands end to end, user errors as one line with exit status 2."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from tinyact.cli import app
from tinyact.config import TinyActConfig
from tinyact.data.synth import SynthConfig
from tinyact.errors import ConfigError

runner = CliRunner()


def _commands(group, prefix=()):
    for name, command in getattr(group, "commands", {}).items():
        yield (*prefix, name)
        yield from _commands(command, (*prefix, name))


def test_every_command_has_help():
    import typer.main

    root = typer.main.get_command(app)
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "data" in result.output
    for path in _commands(root):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Usage" in result.output and len(result.output) > 200, path


def test_synth_manifest_cache_end_to_end(tmp_path):
    data = tmp_path / "s"
    result = runner.invoke(app, ["data", "synth", "--out", str(data), "--classes", "2", "--clips-per-class", "3",
                                 "--size", "32", "--workers", "1"])
    assert result.exit_code == 0, result.output
    manifest = data / "manifest.csv"
    result = runner.invoke(app, ["data", "manifest", "--data", str(data), "--layout", "kinetics", "--balanced",
                                 "--out", str(manifest)])
    assert result.exit_code == 0, result.output
    assert "waving one hand" in result.output
    with open(manifest) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and not rows[0]["path"].startswith("/")
    # A corrupt file in the dataset is skipped and listed, not fatal.
    (data / rows[0]["path"]).write_bytes(b"garbage" * 100)
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["data", "cache", "--manifest", str(manifest), "--out", str(cache), "--size", "16",
                                 "--frames", "4", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "1 skipped" in result.output
    assert (cache / "config.yaml").is_file()
    with open(cache / "skipped.csv") as handle:
        assert [r["clip_id"] for r in csv.DictReader(handle)] == [rows[0]["clip_id"]]
    result = runner.invoke(app, ["data", "check", "--manifest", str(manifest), "--workers", "1", "--frames", "4"])
    assert result.exit_code == 1 and "1 of 6 videos failed" in result.output  # a failure is not a success
    result = runner.invoke(app, ["data", "probe", str(data / rows[1]["path"])])
    assert result.exit_code == 0 and json.loads(result.output)["codec"] == "h264"


def test_user_errors_are_one_line_not_a_traceback(tmp_path):
    result = runner.invoke(app, ["data", "cache", "--manifest", str(tmp_path / "none.csv"), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "manifest not found" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["data", "probe", str(tmp_path / "missing.mp4")])
    assert result.exit_code == 2 and "file not found" in result.output


def test_config_unknown_key_names_the_key(tmp_path):
    config = tmp_path / "synth.yaml"
    config.write_text("classes: 3\nclip_per_class: 4\n")
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "o"), "--config", str(config)])
    assert result.exit_code == 2
    assert "clip_per_class" in result.output and "unknown key" in result.output


def test_config_yaml_overrides_and_echo(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("classes: 3\nseed: 9\n")
    cfg = SynthConfig.from_yaml(config, out=tmp_path, seed=4)
    assert (cfg.classes, cfg.seed) == (3, 4)
    saved = cfg.save(tmp_path / "run")
    assert SynthConfig.from_yaml(saved) == cfg
    with pytest.raises(ConfigError, match="not valid YAML"):
        (tmp_path / "bad.yaml").write_text("a: [")
        TinyActConfig.from_yaml(tmp_path / "bad.yaml")
