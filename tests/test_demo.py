"""`tinyact demo` end to end on a tiny configuration (the full demo is README command 1): generated videos,
a briefly trained encoder and classifier, the cloud on SQLite, an edge agent with 5 simulated cameras for 20 s,
and summary.json checked against both databases."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tinyact.cli import app


@pytest.mark.slow
def test_demo_whole_system(tmp_path):
    config = tmp_path / "demo.yaml"
    config.write_text(f"data: {tmp_path / 'synth'}\nout: {tmp_path / 'run'}\nclasses: 3\nclips_per_class: 3\n"
                      "video_size: 32\nclip_size: 32\nencoder_epochs: 1\nclassifier_folds: 2\nplaylist_clips: 3\n"
                      "min_segment_s: 3\nbackend: torch-int8\nfinetune_epochs: 1\n")
    result = CliRunner().invoke(app, ["demo", "--config", str(config), "--duration", "20"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["cameras"] and len(summary["cameras"]) == 5
    assert all(c["clips"] > 0 for c in summary["cameras"])  # every camera was read
    assert summary["clips_captured"] >= 5 and summary["clips_delivered"] > 0
    assert summary["clips_delivered"] == summary["clips_captured"] == summary["cloud_rows"]  # flushed, all there
    assert summary["duplicates"] == 0 and summary["lost"] == 0
    assert summary["results_received"] == summary["clips_delivered"]
    assert "accuracy" in summary and (summary["accuracy"] is None or 0 <= summary["accuracy"] <= 1)
    if summary["accuracy"] is not None:  # the figure lies inside its own interval
        low, high = summary["accuracy_interval95"]
        assert low <= summary["accuracy"] <= high
    assert summary["chance"] >= 0.333  # 3 classes on the cameras (rounded to 4 places)
    # A latent, not video: 1024 float16 values as base64 in JSON are ~2.9 KB (less when the batch is gzipped),
    # under the paper's 4 KB per clip; 16 raw frames of 32x32 RGB would be 49 KB.
    assert 500 < summary["bytes_per_clip"] < 4096
    assert summary["h264_bytes_per_clip"] > 0
    assert summary["urls"]["edge"].startswith("http://127.0.0.1:") and "token" not in summary["urls"]["edge"]
    assert summary["urls"]["edge_token"]  # printed beside the address, not in it
    # The numbers agree with the databases the run left behind.
    with sqlite3.connect(run / "cloud.db") as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT clip_id) FROM predictions").fetchone() == (
            summary["cloud_rows"], summary["cloud_rows"])
    with sqlite3.connect(run / "edge" / "edge.db") as db:
        assert db.execute("SELECT COUNT(*) FROM captures WHERE label IS NOT NULL").fetchone()[0] == summary["results_received"]
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    assert (run / "edge" / "snapshots" / "cam-1.jpg").stat().st_size > 0
    assert (run / "config.yaml").is_file() and "accuracy" in result.output
    with open(summary["files"]["clips"]) as handle:  # every capture, with its truth and prediction
        assert sum(1 for _ in handle) == summary["clips_captured"] + 1
    # Each camera shows playlist_clips takes of the test actors, each at least min_segment_s long.
    segments = json.loads(next((tmp_path / "synth").glob("cameras-*/cam-1.json")).read_text())["segments"]
    assert len(segments) == 3 and all(s["end"] - s["start"] >= 3 - 1 / 15 for s in segments)
    # The edge ran the int8 encoder the demo quantised (calibrated on training clips) next to the checkpoint.
    assert summary["encoder"]["backend"] == "torch-int8"
    checkpoint = Path(summary["encoder"]["checkpoint"])
    # The zoo encoder was fine-tuned on the training actors' windows; the edge runs it when it probed better on val.
    tuned = summary["encoder"]["finetuned"]
    report = json.loads(next((tmp_path / "synth" / "models").glob("finetune-*/finetune.json")).read_text())
    assert report["epochs"] == 1 and (tuned == report if report["kept"] == "finetuned" else tuned is None)
    assert (checkpoint == Path(report["model"])) == (report["kept"] == "finetuned")
    assert checkpoint.with_name(checkpoint.stem + ".int8.pt").is_file()


def test_the_accuracy_interval_of_50_clips_is_wide_and_none_without_clips():
    from tinyact.demo.summary import accuracy_interval

    low, high = accuracy_interval(38, 50)  # the 2026-12-06 live run: 76 %
    assert 0.62 < low < 0.63 and 0.85 < high < 0.86  # the Wilson interval, ~±12 points
    assert accuracy_interval(50, 50)[1] == 1.0 and accuracy_interval(0, 0) is None


def test_the_live_run_is_written_clip_by_clip_with_its_confusion_matrix(tmp_path):
    import csv

    from tinyact.demo.live import ClipRow
    from tinyact.demo.summary import write_live_records

    def row(n, truth, label, purity=1.0):
        return ClipRow(f"c{n}", "cam-1", 100.0 + n, "delivered", label, 0.9, 101.0 + n, 2.0, truth, purity,
                       position_s=None if truth is None else 2.5 + n)

    rows = [row(0, "waving", "waving"), row(1, "waving", "running"), row(2, "running", "running"),
            row(3, "running", "waving", purity=0.5), row(4, None, None)]
    files = write_live_records(rows, ["running", "waving"], tmp_path)
    with open(files["clips"]) as handle:
        written = list(csv.DictReader(handle))
    assert [r["scored"] for r in written] == ["1", "1", "1", "0", "0"]
    assert written[1]["truth"] == "waving" and written[1]["predicted"] == "running" and written[4]["truth"] == ""
    assert written[1]["position_s"] == "3.5000" and written[4]["position_s"] == ""  # where the window ended
    assert (tmp_path / "confusion.png").stat().st_size > 1000
    assert write_live_records([row(0, None, None)], ["running"], tmp_path / "none") == {
        "clips": str(tmp_path / "none" / "clips.csv")}


def test_a_demo_stopped_while_fine_tuning_continues_that_run(tmp_path, monkeypatch):
    import tinyact.training.finetune as finetune_module
    from tinyact.demo.config import DemoConfig
    from tinyact.demo.prepare import ensure_finetuned

    cfg = DemoConfig(data=tmp_path / "synth", out=tmp_path / "run")
    cfg.data.mkdir()
    (cfg.data / "synth_config.yaml").write_text("classes: 3\n")
    calls = []

    def fake_finetune(ft_cfg, resume=False):
        calls.append((resume, ft_cfg.precision))
        Path(ft_cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(ft_cfg.out) / "finetune.json").write_text(json.dumps({"kept": "zoo"}))

    monkeypatch.setattr(finetune_module, "finetune", fake_finetune)
    assert ensure_finetuned(cfg, tmp_path / "manifest.csv", tmp_path / "cache") is None  # the zoo model was kept
    run = next((cfg.data / "models").glob("finetune-*"))
    (run / "finetune.json").unlink()  # stopped during the run: a checkpoint, no report
    (run / "last.pt").write_bytes(b"checkpoint")
    ensure_finetuned(cfg, tmp_path / "manifest.csv", tmp_path / "cache")
    assert calls == [(False, "fp32"), (True, "fp32")]
    ensure_finetuned(cfg, tmp_path / "manifest.csv", tmp_path / "cache")  # finished: reused, not run again
    assert calls == [(False, "fp32"), (True, "fp32")]
    # Another precision is another run, which fine-tunes in that precision.
    bf16 = cfg.model_copy(update={"finetune_precision": "bf16"})
    ensure_finetuned(bf16, tmp_path / "manifest.csv", tmp_path / "cache")
    assert calls[-1] == (False, "bf16") and len(list((cfg.data / "models").glob("finetune-*"))) == 2
