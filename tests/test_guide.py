"""docs/GUIDE.md end to end on a tiny generated set: class folders of real encoded videos -> experiment table1
(pretrained zoo encoder) -> RUN/bundle -> cloud serve --model BUNDLE -> cloud device add -> edge init --bundle
-> edge run --rounds 1 -> the edge's clip classified by the bundle's classifier, shown on the dashboard."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tinyact.cli import app
from tinyact.cloud.server import serve_in_background
from tinyact.data.encode import encode_video

runner = CliRunner()
GUIDE = Path(__file__).resolve().parents[1] / "docs" / "GUIDE.md"


def _clip(kind: str, seed: int) -> list[np.ndarray]:
    """30 frames (2 s at 15 fps) of a bright square on noise: moving right, moving down, or blinking."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(30):
        image = rng.integers(0, 50, (48, 64, 3), dtype=np.uint8)
        x, y = 4 + seed % 5, 4 + seed % 3
        if kind == "right":
            x += t
        elif kind == "down":
            y += t // 2
        if kind != "blink" or t % 6 < 3:
            image[y:y + 16, x:x + 16] = 220
        frames.append(image)
    return frames


def _labelled_clips(root: Path) -> Path:
    for kind in ("right", "down", "blink"):
        for i in range(5):
            encode_video(root / kind / f"{kind}{i}.mp4", _clip(kind, i), 15)
    return root


def _guide_commands() -> str:
    return GUIDE.read_text()


@pytest.mark.slow
def test_guide_end_to_end(tmp_path, monkeypatch):
    guide = _guide_commands()
    for command in ("tinyact experiment table1 --data my_clips --layout folder --out runs/mine",
                    "tinyact cloud serve --model runs/mine/bundle", "tinyact cloud device add edge-1",
                    "tinyact edge init --bundle runs/mine/bundle --out edge.yaml",
                    "tinyact edge run --config edge.yaml"):
        assert command in guide, command  # the test runs what the guide says
    data = _labelled_clips(tmp_path / "my_clips")
    run = tmp_path / "runs" / "mine"
    settings = tmp_path / "quick.yaml"  # a small grid and one decoder process: the guide's defaults, made quick
    settings.write_text("grids:\n  svm: {C: [1, 10]}\nworkers: 1\n")

    # 1. experiment table1 -> RUN/bundle, with the next commands as the run's last lines
    result = runner.invoke(app, ["experiment", "table1", "--data", str(data), "--layout", "folder", "--out", str(run),
                                 "--classifiers", "svm", "--folds", "2", "--device", "cpu", "--config", str(settings)])
    assert result.exit_code == 0, result.output
    bundle = run / "bundle"
    manifest = yaml.safe_load((bundle / "bundle.yaml").read_text())
    assert manifest["encoder"]["spec"] == "zoo:everyday-64" and manifest["classifier"]["kind"] == "svm"
    assert manifest["label_names"] == ["blink", "down", "right"]
    best = json.loads((run / "metrics.json").read_text())["best"]["classifier"]  # svm or svm+mirror, chosen on val
    assert manifest["preprocessing"] == {"frames": 16, "size": 64, "normalization": "imagenet", "sampling": "uniform",
                                         "mirror": best.endswith("+mirror")}
    assert "random_encoder_top1" in manifest["accuracy"] and (bundle / "MODEL_CARD.md").is_file()
    tail = result.output[result.output.index(f"bundle: {bundle}"):]
    assert f"tinyact cloud serve --model {bundle}" in tail and f"tinyact edge init --bundle {bundle}" in tail
    assert "checkpoint: zoo:everyday-64" in tail and "frames_per_clip: 16" in tail
    if not manifest["accuracy"]["beats_random_encoder"]:
        assert "WARNING" in tail and "WARNING" in (bundle / "MODEL_CARD.md").read_text()
    version = manifest["classifier"]["version"]

    # 2. the cloud serves the bundle; a device is registered
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    monkeypatch.setenv("TINYACT_ADMIN_TOKEN", "guide-admin")
    with serve_in_background(bundle, db) as cloud:
        added = runner.invoke(app, ["cloud", "device", "add", "edge-1", "--db", db])
        assert added.exit_code == 0, added.output
        monkeypatch.setenv("TINYACT_DEVICE_KEY", added.output.strip().splitlines()[-1])

        # 3. edge init --bundle, then the user's cameras
        config = tmp_path / "edge.yaml"
        result = runner.invoke(app, ["edge", "init", "--bundle", str(bundle), "--out", str(config)])
        assert result.exit_code == 0, result.output
        edge = yaml.safe_load(config.read_text())
        assert edge["encoder"]["checkpoint"] == "zoo:everyday-64" and edge["schedule"]["frames_per_clip"] == 16
        edge.update(cloud_url=cloud.url, data_dir=str(tmp_path / "edge"),
                    cameras=[{"id": "door", "source": str(data / "right" / "right0.mp4")}])
        config.write_text(yaml.safe_dump(edge))

        # 4. edge run: one round against the cloud
        result = runner.invoke(app, ["edge", "run", "--config", str(config), "--rounds", "1", "--no-web"])
        assert result.exit_code == 0, result.output
        assert "round 1: 1 clip(s)" in result.output

        # 5. the dashboard shows it, classified by the bundle's classifier
        assert httpx.get(f"{cloud.url}/").status_code == 200
        summary = httpx.get(f"{cloud.url}/v1/dashboard/summary", headers=cloud.admin_headers())
        assert summary.status_code == 200, summary.text
        model = httpx.get(f"{cloud.url}/v1/model", headers=cloud.admin_headers()).json()
        assert model["version"] == version and model["encoder_hash"] == manifest["encoder"]["hash"]
    status = json.loads(runner.invoke(app, ["edge", "status", "--config", str(config), "--json"]).output)
    assert status["counts"]["results"] == 1
    door = {c["camera_id"]: c for c in status["cameras"]}["door"]
    assert door["last_result"]["label"] in manifest["label_names"]
    exported = tmp_path / "predictions.csv"
    result = runner.invoke(app, ["cloud", "export", "--db", db, "--out", str(exported)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(exported.open()))
    assert len(rows) == 1 and rows[0]["model_version"] == version and rows[0]["camera"] == "door"
