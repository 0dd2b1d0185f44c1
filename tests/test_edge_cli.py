"""``tinyact edge …`` commands: init, run (a few rounds against a real cloud), status."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from benchmarks.cloud_fixtures import fit_toy_classifier
from tinyact.cli import app
from tinyact.cloud.server import serve_in_background
from tinyact.data.encode import encode_video
from tinyact.errors import ConfigError
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.checkpoint import save_model

runner = CliRunner()


def test_init_run_status(tmp_path, monkeypatch):
    config = tmp_path / "edge.yaml"
    assert runner.invoke(app, ["edge", "init", "--out", str(config)]).exit_code == 0
    again = runner.invoke(app, ["edge", "init", "--out", str(config)])
    assert again.exit_code == 2 and "--force" in again.output
    example = yaml.safe_load(config.read_text())
    assert example["schedule"]["interval_s"] == 10 and "device_key" not in config.read_text().split("#")[0]

    encoder_hash = save_model(tmp_path / "ae.pt", VideoAutoEncoder3D(num_frames=16, input_size=32, channels=(4, 4, 4, 4),
                                                                     latent_dim=16, seed_channels=2))
    encode_video(tmp_path / "a.mp4", [np.full((48, 64, 3), j * 3, np.uint8) for j in range(50)], 25)
    fit_toy_classifier(tmp_path / "clf", latent_dim=16, per_class=10, encoder_hash=encoder_hash)
    example.update({"encoder": {"checkpoint": str(tmp_path / "ae.pt")}, "data_dir": str(tmp_path / "edge"),
                    "cameras": [{"id": "cam-1", "source": str(tmp_path / "a.mp4")},
                                {"id": "cam-2", "source": str(tmp_path / "missing.mp4")}]})
    monkeypatch.delenv("TINYACT_DEVICE_KEY", raising=False)
    with serve_in_background(tmp_path / "clf", tmp_path / "cloud.db") as cloud:
        example["cloud_url"] = cloud.url
        example["schedule"]["interval_s"] = 0.5
        config.write_text(yaml.safe_dump(example))
        no_key = runner.invoke(app, ["edge", "run", "--config", str(config), "--rounds", "1", "--no-web"])
        assert no_key.exit_code == 2 and "TINYACT_DEVICE_KEY is not set" in no_key.output
        monkeypatch.setenv("TINYACT_DEVICE_KEY", cloud.add_device("edge-1"))
        result = runner.invoke(app, ["edge", "run", "--config", str(config), "--rounds", "2", "--no-web"])
        assert result.exit_code == 0, result.output
        assert "round 2: 1 clip(s)" in result.output and "cam-2" in result.output
    shown = runner.invoke(app, ["edge", "status", "--config", str(config), "--json"])
    assert shown.exit_code == 0, shown.output
    status = json.loads(shown.output)
    assert status["counts"]["captured"] == 2 and status["counts"]["delivered"] == 2 and status["counts"]["results"] == 2
    cameras = {c["camera_id"]: c for c in status["cameras"]}
    assert cameras["cam-1"]["state"] == "up" and cameras["cam-1"]["last_result"]["label"]
    assert cameras["cam-2"]["state"] == "down" and "not found" in cameras["cam-2"]["last_error"]
    assert status["agent_running"] is False and status["encode"]["last_batch_ms"] > 0
    table = runner.invoke(app, ["edge", "status", "--data-dir", str(tmp_path / "edge")])
    assert table.exit_code == 0 and "not running" in table.output and "cam-1" in table.output
    missing = runner.invoke(app, ["edge", "status", "--data-dir", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no edge database" in missing.output


def test_export_quantize_and_run_on_int8(tmp_path, monkeypatch):
    import torch

    from tinyact.edge.agent import EdgeAgent
    from tinyact.edge.config import EdgeConfig
    from tinyact.edge.encoder import load_encoder
    from tinyact.models.quantize import load_int8

    torch.manual_seed(0)
    save_model(tmp_path / "ae.pt", VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 8), latent_dim=16,
                                                      seed_channels=2))
    videos = tmp_path / "videos"
    rng = np.random.default_rng(0)
    for i in range(6):  # moving bright squares on noise: real, varied clips to calibrate on
        frames = []
        for j in range(30):
            image = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
            image[10:30, (j * 2 + i * 7) % 44 : (j * 2 + i * 7) % 44 + 20] = 200 - 20 * i
            frames.append(image)
        encode_video(videos / f"v{i}.mp4", frames, 25)
    result = runner.invoke(app, ["edge", "export-onnx", "--checkpoint", str(tmp_path / "ae.pt")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ae.onnx").is_file()
    result = runner.invoke(app, ["edge", "quantize", "--checkpoint", str(tmp_path / "ae.pt"), "--calibrate-on", str(videos),
                                 "--clips", "6"])
    assert result.exit_code == 0, result.output
    drift = json.loads((tmp_path / "ae.int8.drift.json").read_text())
    assert drift["held_out_clips"] == 3 and drift["cosine_mean"] > 0.95, drift  # int8 stays close to fp32
    cfg = EdgeConfig.from_dict({"device_id": "e", "encoder": {"checkpoint": str(tmp_path / "ae.pt"), "backend": "onnx-int8"},
                                "cameras": [{"id": "c", "source": str(videos / "v0.mp4")}], "data_dir": str(tmp_path / "edge")})
    agent = EdgeAgent(cfg)
    assert agent.run_round()["clips"] == 1 and agent.encoder.backend == "onnx-int8"
    agent.stop()
    result = runner.invoke(app, ["edge", "quantize", "--checkpoint", str(tmp_path / "ae.pt"), "--calibrate-on", str(videos),
                                 "--clips", "6", "--format", "torch"])
    assert result.exit_code == 0, result.output
    drift = json.loads((tmp_path / "ae.int8.drift.json").read_text())
    assert (tmp_path / "ae.int8.pt").is_file() and drift["cosine_mean"] > 0.95, drift
    cfg.encoder.backend = "torch-int8"
    agent = EdgeAgent(cfg)
    assert agent.run_round()["clips"] == 1 and agent.encoder.backend == "torch-int8"
    agent.stop()
    # Units kept in float: the stem convolution runs in float in the saved file; --float-module is torch-only.
    result = runner.invoke(app, ["edge", "quantize", "--checkpoint", str(tmp_path / "ae.pt"), "--calibrate-on", str(videos),
                                 "--clips", "6", "--format", "torch", "--float-module", "encoder.0",
                                 "--out", str(tmp_path / "mixed.int8.pt")])
    assert result.exit_code == 0, result.output
    graph = str(load_int8(tmp_path / "mixed.int8.pt").inlined_graph)
    assert graph.count("quantized::conv3d_relu") == 3 and "aten::_convolution" in graph
    onnx_only = runner.invoke(app, ["edge", "quantize", "--checkpoint", str(tmp_path / "ae.pt"), "--calibrate-on",
                                    str(videos), "--float-module", "encoder.0"])
    assert onnx_only.exit_code != 0 and "--format torch only" in onnx_only.output
    # The calibration of the torch format: the earlier post-training one (global min-max, no fine-tuning) on request.
    plain = runner.invoke(app, ["edge", "quantize", "--checkpoint", str(tmp_path / "ae.pt"), "--calibrate-on", str(videos),
                                "--clips", "6", "--format", "torch", "--ranges", "minmax", "--finetune-steps", "0",
                                "--out", str(tmp_path / "plain.int8.pt")])
    assert plain.exit_code == 0 and (tmp_path / "plain.int8.pt").is_file(), plain.output
    settings = json.loads((tmp_path / "plain.int8.drift.json").read_text())
    assert (settings["ranges"], settings["finetune_steps"], settings["format"]) == ("minmax", 0, "torch")
    bad = runner.invoke(app, ["edge", "quantize", "--checkpoint", str(tmp_path / "ae.pt"), "--calibrate-on", str(videos),
                              "--format", "torch", "--ranges", "percentile"])
    assert bad.exit_code != 0 and "--ranges must be one of batch-mean, minmax" in bad.output
    cfg.encoder.int8_path = tmp_path / "absent.int8.pt"
    with pytest.raises(ConfigError, match="no int8 encoder at"):
        load_encoder(cfg.encoder)
    missing = runner.invoke(app, ["edge", "quantize", "--checkpoint", str(tmp_path / "ae.pt"), "--calibrate-on",
                                  str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no such manifest or folder" in missing.output


@pytest.mark.slow
def test_agent_process_killed_and_restarted_loses_nothing_and_duplicates_nothing(tmp_path):
    """`tinyact edge run` as a real process: SIGKILL mid-run, restart, Ctrl-C; every clip captured is in the
    cloud exactly once."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from sqlalchemy import create_engine, text

    encoder_hash = save_model(tmp_path / "ae.pt", VideoAutoEncoder3D(num_frames=16, input_size=32, channels=(4, 4, 4, 4),
                                                                     latent_dim=16, seed_channels=2))
    encode_video(tmp_path / "a.mp4", [np.full((48, 64, 3), j * 3, np.uint8) for j in range(50)], 25)
    fit_toy_classifier(tmp_path / "clf", latent_dim=16, per_class=10, encoder_hash=encoder_hash)
    status_file = tmp_path / "edge" / "status.json"

    def wait_rounds(n: int) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if json.loads(status_file.read_text())["rounds"] >= n:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"the agent did not finish {n} rounds")

    with serve_in_background(tmp_path / "clf", tmp_path / "cloud.db") as cloud:
        env = dict(os.environ, TINYACT_DEVICE_KEY=cloud.add_device("edge-1"),
                   PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
        config = tmp_path / "edge.yaml"
        config.write_text(yaml.safe_dump({
            "device_id": "edge-1", "cloud_url": cloud.url, "encoder": {"checkpoint": str(tmp_path / "ae.pt")},
            "cameras": [{"id": "cam-1", "source": str(tmp_path / "a.mp4")}, {"id": "cam-2", "source": str(tmp_path / "a.mp4")}],
            "schedule": {"interval_s": 0.5}, "data_dir": str(tmp_path / "edge"), "web": {"enabled": False}}))
        command = [sys.executable, "-m", "tinyact", "edge", "run", "--config", str(config)]
        agent = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_rounds(3)
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        status_file.unlink()
        agent = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_rounds(2)
        agent.send_signal(signal.SIGINT)
        assert agent.wait(60) == 0
        shown = json.loads(runner.invoke(app, ["edge", "status", "--config", str(config), "--json"]).output)
        counts = shown["counts"]
        assert counts["captured"] >= 10 and counts["pending"] == 0 and counts["dropped"] == 0
        assert counts["delivered"] == counts["captured"] == counts["results"]
        engine = create_engine(cloud.db_url)
        with engine.connect() as db:
            rows, distinct = db.execute(text("SELECT count(*), count(DISTINCT clip_id) FROM predictions")).one()
        engine.dispose()
        assert rows == distinct == counts["captured"]
