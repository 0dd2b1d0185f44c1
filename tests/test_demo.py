"""`tinyact demo` end to end on a tiny configuration (the full demo is README command 1)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tinyact.cli import app


def test_demo_runs_and_writes_summary(tmp_path):
    config = tmp_path / "demo.yaml"
    config.write_text(f"data: {tmp_path / 'synth'}\nout: {tmp_path / 'run'}\nclasses: 2\nclips_per_class: 3\n"
                      "video_size: 32\nclip_size: 16\n")
    result = CliRunner().invoke(app, ["demo", "--config", str(config)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["clips_per_split"] == {"train": 2, "val": 2, "test": 2}
    assert summary["clip_shape"] == [[16, 3, 16, 16]] and summary["skipped"] == 0
    assert (tmp_path / "run" / "config.yaml").is_file()
    # A second run reuses the generated data and the cache.
    result = CliRunner().invoke(app, ["demo", "--config", str(config)])
    assert result.exit_code == 0, result.output
