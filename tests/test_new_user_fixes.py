"""Regressions found by trying TinyAct as a new user: help texts, messages, exit codes, edge counters."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.text import Text
from typer.testing import CliRunner

from tinyact.cli import COMMAND_ORDER, app
from tinyact.cloud.server import free_port
from tinyact.console import console
from tinyact.data.encode import encode_video
from tinyact.edge.agent import EdgeAgent
from tinyact.edge.capture import slowest_cameras
from tinyact.edge.config import EdgeConfig
from tinyact.edge.sources import FileCamera
from tinyact.edge.store import EdgeStore
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.checkpoint import save_model
from tinyact.wire import ClipResult

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
    assert COMMAND_ORDER == ("data", "models", "zoo", "train", "extract", "classify", "teacher", "experiment",
                             "bundle", "edge", "cloud", "demo")
    lines = result.output.splitlines()
    listed = [line.split()[1] for line in lines if line.startswith("│ ") and line[2:3].strip()
              and line.split()[1] in COMMAND_ORDER]
    assert listed == list(COMMAND_ORDER)
    assert "…" not in result.output
    assert "kd" in result.output


# ---- edge ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def edge_world(tmp_path_factory):
    """A tiny 16x32x32 -> 16-d encoder checkpoint and one 2-s video."""
    root = tmp_path_factory.mktemp("edge_world")
    save_model(root / "ae.pt", VideoAutoEncoder3D(num_frames=16, input_size=32, channels=(4, 4, 4, 4), latent_dim=16,
                                                  seed_channels=2))
    encode_video(root / "a.mp4", [np.full((48, 64, 3), j * 3, np.uint8) for j in range(50)], 25)
    return root


def _edge_yaml(world: Path, tmp_path: Path, **extra) -> Path:
    data = {"device_id": "edge-1", "cloud_url": f"http://127.0.0.1:{free_port()}",  # nothing listens there
            "encoder": {"checkpoint": str(world / "ae.pt")}, "cameras": [{"id": "cam-1", "source": str(world / "a.mp4")}],
            "data_dir": str(tmp_path / "edge"), "schedule": {"interval_s": 0.05}, "web": {"enabled": False},
            "transport": {"retry_base_s": 30, "retry_max_s": 60, "timeout_s": 2}, **extra}
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class FeedOnly:
    """A transport whose results feed holds ``results`` (nothing is ever sent through it)."""

    def __init__(self, results):
        self.results = results

    def send(self, messages):
        raise AssertionError("nothing should be sent")

    def fetch_results(self, cursor, limit):
        return (self.results, cursor + len(self.results)) if cursor == 0 else ([], cursor)

    def close(self):
        pass


def _result(clip_id: str) -> ClipResult:
    return ClipResult(clip_id=clip_id, camera_id="cam-1", captured_at=datetime.now(UTC), label="wave", score=0.9,
                      top5=[{"label": "wave", "score": 0.9}], model_version="v1")


def _captured_and_delivered(agent: EdgeAgent) -> str:
    clip_id = str(uuid.uuid4())
    agent.store.enqueue([(clip_id, "cam-1", time.time(), 1.0, "{}")])
    agent.store.mark_delivered([clip_id])  # the outbox is empty again
    return clip_id


def test_edge_run_rounds_respects_the_backoff_while_the_cloud_is_down(edge_world, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYACT_DEVICE_KEY", "k")
    config = _edge_yaml(edge_world, tmp_path)
    result = runner.invoke(app, ["edge", "run", "--config", str(config), "--rounds", "3", "--no-web"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    store = EdgeStore(tmp_path / "edge" / "edge.db")
    counts = store.counts()
    store.close()
    assert counts["captured"] == 3 and counts["pending"] == 3
    assert counts["send_failures"] <= 3  # one try per round's new clip; round 1's clips wait 30 s
    assert "clips: captured 3" in result.output  # the final summary


def test_edge_run_names_every_missing_secret_at_once(edge_world, tmp_path, monkeypatch):
    monkeypatch.delenv("TINYACT_DEVICE_KEY", raising=False)
    monkeypatch.delenv("TINYACT_EDGE_TOKEN", raising=False)
    config = _edge_yaml(edge_world, tmp_path, web={"enabled": True})
    result = runner.invoke(app, ["edge", "run", "--config", str(config), "--rounds", "1"], terminal_width=400)
    assert result.exit_code == 2
    assert "TINYACT_DEVICE_KEY" in result.output and "TINYACT_EDGE_TOKEN" in result.output


def test_results_feed_applies_only_to_clips_this_store_captured(edge_world, tmp_path):
    cfg = EdgeConfig.from_yaml(_edge_yaml(edge_world, tmp_path))
    first = EdgeAgent(cfg, transport=FeedOnly([]), cameras=[])
    ours = _captured_and_delivered(first)
    first.stop()
    # Another data directory of the same device id captured another clip; the feed holds both results.
    agent = EdgeAgent(cfg, transport=FeedOnly([_result(ours), _result(str(uuid.uuid4()))]), cameras=[])
    agent._ensure_transport()
    assert agent.poll_results() == 1
    counts = agent.store.counts()
    assert counts["captured"] == 1 and counts["results"] == 1
    agent.stop()


def test_final_results_poll_reads_results_when_the_outbox_was_already_empty(edge_world, tmp_path):
    """The demo's last step: stop capturing, flush an empty outbox, read the results not yet back."""
    cfg = EdgeConfig.from_yaml(_edge_yaml(edge_world, tmp_path))
    agent = EdgeAgent(cfg, transport=FeedOnly([]), cameras=[])
    clip_id = _captured_and_delivered(agent)
    agent.transport.results = [_result(clip_id)]
    assert agent.finish(timeout=5) == (True, 1)
    assert agent.store.counts()["results"] == 1


def test_demo_reads_the_last_results_before_the_transport_closes():
    import inspect

    from tinyact import demo

    source = inspect.getsource(demo.run_demo)
    assert "agent.finish(" in source and "agent.poll_results()" not in source


class SlowCamera(FileCamera):
    def grab(self, *args, **kwargs):
        time.sleep(0.4)
        return super().grab(*args, **kwargs)


def test_a_long_round_names_the_slowest_camera(edge_world, tmp_path, caplog):
    cfg = EdgeConfig.from_yaml(_edge_yaml(edge_world, tmp_path))
    cameras = [FileCamera("cam-1", edge_world / "a.mp4"), SlowCamera("cam-slow", edge_world / "a.mp4")]
    agent = EdgeAgent(cfg, transport=FeedOnly([]), cameras=cameras)
    report = agent.run_round()
    assert report["grab_ms"]["cam-slow"] >= 400 > report["grab_ms"]["cam-1"]
    assert re.match(r"slowest camera\(s\): cam-slow 0\.[4-9] s, cam-1 0\.\d s", slowest_cameras(report))
    with caplog.at_level(logging.WARNING, logger="tinyact.edge.agent"):
        thread = threading.Thread(target=agent._schedule_loop)
        thread.start()
        time.sleep(1.0)
        agent._stop.set()
        thread.join(10)
    agent.stop(flush_s=0)
    assert "longer than the 0.05 s interval (slowest camera(s): cam-slow" in caplog.text


def test_edge_status_shows_na_before_any_encode(tmp_path):
    from tinyact.cli.edge import _print_status

    with console.capture() as captured:
        _print_status({"device_id": "edge-1", "cameras": [], "encode": {"backend": "torch"},
                       "transport": {"kind": "http", "wire_dtype": "float16", "bytes_per_clip": None}}, stale=True)
    text = captured.get()
    assert "None" not in text and "n/a ms" in text and "n/a bytes per clip" in text


class _NotATensor:
    pass


def test_a_checkpoint_torch_refuses_is_one_line_naming_the_file(tmp_path):
    import torch

    from tinyact.errors import TinyActError
    from tinyact.models.checkpoint import load_model

    path = tmp_path / "other_tool.pt"
    torch.save({"model": _NotATensor()}, path)
    with pytest.raises(TinyActError) as caught:
        load_model(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message and "weights_only" not in message and len(message) < 300


def test_edge_run_prints_the_summary_after_ctrl_c(edge_world, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYACT_DEVICE_KEY", "k")
    monkeypatch.setattr(EdgeAgent, "run_forever", lambda self: None)  # returns once SIGINT was handled
    result = runner.invoke(app, ["edge", "run", "--config", str(_edge_yaml(edge_world, tmp_path)), "--no-web"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "clips: captured 0" in result.output and "device edge-1" in result.output


def test_demo_terminal_says_why_its_accuracy_is_what_it_is():
    from tinyact.cli.demo import accuracy_note

    zoo_note = accuracy_note({"encoder": {"spec": "zoo:everyday-64"},
                              "classifier": {"kind": "svm", "test_metrics": {"top1": 0.55}}})
    assert "pretrained encoder zoo:everyday-64" in zoo_note and "55%" in zoo_note and "latency" in zoo_note
    scratch = accuracy_note({"encoder": {"spec": "scratch", "epochs": 2}, "classifier": {"kind": "svm"}})
    assert "close to chance" in scratch and "2 epoch" in scratch
