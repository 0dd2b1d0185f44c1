"""``tinyact cloud …`` commands: devices, offline export, schema upgrade, serve's start-up checks, model swap."""

from __future__ import annotations

import csv
import json

import httpx
from typer.testing import CliRunner

from benchmarks.cloud_fixtures import clip_message, fit_toy_classifier, toy_latents
from tinyact.cli import app
from tinyact.cloud.db.engine import head_revision
from tinyact.cloud.server import serve_in_background

runner = CliRunner()
DIM = 16
LABELS = ("walking", "running", "waving")


def test_device_add_list_revoke_and_the_key_works(tmp_path, monkeypatch):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    result = runner.invoke(app, ["cloud", "device", "add", "edge-1", "--db", db])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]  # the key alone on the last line
    assert key.startswith("tak_") and len(key) > 40 and " " not in key
    result = runner.invoke(app, ["cloud", "device", "add", "edge-1", "--db", db])
    assert result.exit_code == 2 and "already exists" in result.output and "Traceback" not in result.output
    assert runner.invoke(app, ["cloud", "device", "add", "bad name", "--db", db]).exit_code == 2
    assert runner.invoke(app, ["cloud", "device", "add", "edge-2", "--db", db]).exit_code == 0
    listed = runner.invoke(app, ["cloud", "device", "list", "--db", db])
    assert listed.exit_code == 0 and "edge-1" in listed.output and "edge-2" in listed.output and key not in listed.output

    model = fit_toy_classifier(tmp_path / "m", labels=LABELS, latent_dim=DIM, per_class=10).path
    monkeypatch.setenv("TINYACT_ADMIN_TOKEN", "adm")
    with serve_in_background(model, db, auth_cache_s=0) as cloud:
        headers = {"Authorization": f"Bearer {key}"}
        body = {"clips": [clip_message(toy_latents([i % 3], DIM, 3, noise=0.3)[0], camera_id=f"cam-{i % 2}") for i in range(6)]}
        assert httpx.post(f"{cloud.url}/v1/clips", json=body, headers=headers).status_code == 200
        # Offline export while the service runs.
        out = tmp_path / "export.csv"
        result = runner.invoke(app, ["cloud", "export", "--db", db, "--out", str(out), "--camera", "cam-1"])
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader(out.open()))
        assert len(rows) == 3 and {r["camera"] for r in rows} == {"cam-1"} and json.loads(rows[0]["top5"])
        # Model swap through the admin API.
        other = fit_toy_classifier(tmp_path / "dt", kind="dt", labels=LABELS, latent_dim=DIM, per_class=10).path
        result = runner.invoke(app, ["cloud", "model", str(other), "--url", cloud.url])
        assert result.exit_code == 0 and "dt-" in result.output, result.output
        monkeypatch.setenv("TINYACT_ADMIN_TOKEN", "wrong")
        result = runner.invoke(app, ["cloud", "model", str(other), "--url", cloud.url])
        assert result.exit_code == 2 and "refused the admin token" in result.output
        assert "TINYACT_ADMIN_TOKEN" in result.output and "device add" not in result.output
        # Revoked: the key stops working.
        assert runner.invoke(app, ["cloud", "device", "revoke", "edge-1", "--db", db]).exit_code == 0
        assert httpx.post(f"{cloud.url}/v1/clips", json=body, headers=headers).status_code == 401
    assert runner.invoke(app, ["cloud", "device", "revoke", "nobody", "--db", db]).exit_code == 2


def test_export_formats_and_errors(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    runner.invoke(app, ["cloud", "db", "upgrade", "--db", db])
    for name in ("e.jsonl", "e.parquet"):
        result = runner.invoke(app, ["cloud", "export", "--db", db, "--out", str(tmp_path / name)])
        assert result.exit_code == 0 and "wrote 0 predictions" in result.output, result.output
    result = runner.invoke(app, ["cloud", "export", "--db", db, "--out", str(tmp_path / "e.xlsx")])
    assert result.exit_code == 2 and "unknown export format" in result.output
    result = runner.invoke(app, ["cloud", "export", "--db", db, "--out", str(tmp_path / "e.csv"), "--from", "soon"])
    assert result.exit_code == 2 and "ISO 8601" in result.output


def test_db_upgrade_and_unreachable_database(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    result = runner.invoke(app, ["cloud", "db", "upgrade", "--db", db])
    assert result.exit_code == 0 and head_revision() in result.output
    assert "already current" in runner.invoke(app, ["cloud", "db", "upgrade", "--db", db]).output
    result = runner.invoke(app, ["cloud", "db", "upgrade", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none"])
    assert result.exit_code == 2 and "cannot reach the database" in result.output
    result = runner.invoke(app, ["cloud", "device", "list", "--db", "mysql://x@y/z"])
    assert result.exit_code == 2 and "unsupported database URL" in result.output


def test_serve_refuses_a_missing_model_with_one_line(tmp_path):
    result = runner.invoke(app, ["cloud", "serve", "--db", str(tmp_path / "c.db"), "--model", str(tmp_path)])
    assert result.exit_code == 2 and "not a saved classifier" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["cloud", "serve", "--db", str(tmp_path / "c.db"), "--mqtt", "http://x"])
    assert result.exit_code == 2 and "bad MQTT URL" in result.output
    (tmp_path / "bad.yaml").write_text("prot: 1\n")
    result = runner.invoke(app, ["cloud", "serve", "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2 and "prot" in result.output
