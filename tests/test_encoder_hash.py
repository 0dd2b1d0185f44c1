"""Issue 18 §2: the encoder hash travels with every latent. The cloud refuses (409 ``encoder_mismatch``, over
HTTP and on MQTT's error topic) a clip whose encoder is not the active classifier's, accepts matching clips and
counts clips without a hash; the edge keeps refused clips held in its outbox, shows the refusal (status, page,
``tinyact edge status``), stops sending while the cloud's model mismatches, and delivers the held clips once a
matching classifier is activated (or discards them on ``tinyact edge outbox drop``)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from benchmarks.cloud_fixtures import clip_message, fit_toy_classifier, mqtt_available, toy_latents
from tinyact.cli import app as cli_app
from tinyact.cloud.server import serve_in_background
from tinyact.data.encode import encode_video
from tinyact.edge.agent import EdgeAgent
from tinyact.edge.config import EdgeConfig
from tinyact.edge.store import EdgeStore
from tinyact.edge.transports import HttpTransport
from tinyact.edge.web import create_edge_app
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.checkpoint import save_model
from tinyact.wire import ENCODER_MISMATCH, mqtt_clip_topic

DIM = 32
LABELS = ("walking", "running", "waving", "jumping")
OTHER = "0123456789abcdef"  # the encoder the cloud's first classifier was fitted on
BROKER = "mqtt://127.0.0.1:1883"
runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny encoder (16 frames of 32² -> 32-d), a classifier fitted on its latents and one fitted on another
    encoder's, two camera files."""
    root = tmp_path_factory.mktemp("enc")
    model = VideoAutoEncoder3D(num_frames=16, input_size=32, channels=(4, 8, 8, 8), latent_dim=DIM, seed_channels=2)
    encoder_hash = save_model(root / "ae.pt", model)
    (root / "hash").write_text(encoder_hash)
    for i in range(2):
        encode_video(root / f"cam{i}.mp4", [np.full((48, 64, 3), (j + 60 * i) % 256, np.uint8) for j in range(50)], 25)
    fit_toy_classifier(root / "clf-other", labels=LABELS, latent_dim=DIM, per_class=10, encoder_hash=OTHER)
    fit_toy_classifier(root / "clf-match", labels=LABELS, latent_dim=DIM, per_class=10, encoder_hash=encoder_hash)
    return root


def edge_config(world: Path, data_dir: Path, cloud_url: str, device: str = "edge-1", **extra) -> EdgeConfig:
    transport = {"retry_base_s": 0.05, "retry_max_s": 0.2, "timeout_s": 5, **extra.pop("transport", {})}
    return EdgeConfig.from_dict({
        "device_id": device, "cloud_url": cloud_url, "encoder": {"checkpoint": str(world / "ae.pt")},
        "cameras": [{"id": f"cam-{i}", "source": str(world / f"cam{i}.mp4")} for i in range(2)],
        "data_dir": str(data_dir), "transport": transport, "web": {"enabled": False}, **extra})


def latent(label: int) -> np.ndarray:
    return toy_latents([label], DIM, len(LABELS), noise=0.3, rng=np.random.default_rng())[0]


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def activate(cloud, folder: Path) -> None:
    response = httpx.post(f"{cloud.url}/v1/admin/model", headers=cloud.admin_headers(),
                          json={"path": str(folder), "allow_encoder_change": True})
    assert response.status_code == 200, response.text


def test_cloud_refuses_another_encoders_clips_with_409(world, tmp_path):
    with serve_in_background(world / "clf-other", tmp_path / "c.db") as cloud:
        headers = {"Authorization": f"Bearer {cloud.add_device('edge-1')}"}
        post = lambda *clips: httpx.post(f"{cloud.url}/v1/clips", json={"clips": list(clips)}, headers=headers)  # noqa: E731
        refused = post(clip_message(latent(0), encoder_hash="fedcba9876543210"))
        assert refused.status_code == 409, refused.text
        body = refused.json()
        assert body["error"] == ENCODER_MISMATCH
        # Both hashes and both ways out, and the edge's override, in one sentence for a person.
        assert "fedcba9876543210" in body["detail"] and OTHER in body["detail"]
        assert "--allow-encoder-change" in body["detail"] and "encoder.checkpoint" in body["detail"]
        assert "outbox drop --reason encoder_mismatch" in body["detail"]
        assert body["errors"][0]["loc"] == ["body", "clips", 0, "encoder_hash"]
        # One mismatched clip refuses the whole request: nothing stored.
        mixed = post(clip_message(latent(1), encoder_hash=OTHER), clip_message(latent(2), encoder_hash="x" * 16))
        assert mixed.status_code == 409 and [e["loc"][2] for e in mixed.json()["errors"]] == [1]
        page = httpx.get(f"{cloud.url}/v1/results", headers=headers).json()
        assert page["results"] == []
        assert metric(cloud.url, 'tinyact_rejects_total{reason="encoder_mismatch"}') == 2
        # The matching hash is accepted; a clip without one (an older edge) too, and counted.
        assert post(clip_message(latent(1), encoder_hash=OTHER)).json()["results"][0]["label"] == "running"
        assert metric(cloud.url, "tinyact_clips_without_encoder_hash_total") == 0
        assert post(clip_message(latent(2)), clip_message(latent(3))).status_code == 200
        assert metric(cloud.url, "tinyact_clips_without_encoder_hash_total") == 2
        # GET /v1/model says which encoder the cloud expects.
        assert httpx.get(f"{cloud.url}/v1/model", headers=headers).json()["encoder_hash"] == OTHER


@pytest.mark.skipif(not mqtt_available(), reason="no MQTT broker on 127.0.0.1:1883 (start mosquitto)")
def test_mqtt_refusal_goes_to_the_error_topic(world, tmp_path):
    from tests.test_cloud_mqtt import Listener

    device = f"edge-{uuid.uuid4().hex[:8]}"
    with serve_in_background(world / "clf-other", tmp_path / "c.db", mqtt=BROKER, mqtt_share_group="") as cloud:
        cloud.add_device(device)
        listener = Listener(f"tinyact/{device}/+/result", f"tinyact/{device}/+/error")
        try:
            refused = clip_message(latent(0), camera_id="cam-1", encoder_hash="fedcba9876543210")
            listener.publish(mqtt_clip_topic(device, "cam-1"), json.dumps(refused))
            topic, body, _ = listener.next()
            assert topic == f"tinyact/{device}/cam-1/error"
            assert body["error"] == ENCODER_MISMATCH and body["clip_id"] == refused["clip_id"]
            assert OTHER in body["detail"] and "fedcba9876543210" in body["detail"]
            accepted = clip_message(latent(3), camera_id="cam-1", encoder_hash=OTHER)
            listener.publish(mqtt_clip_topic(device, "cam-1"), json.dumps(accepted))
            topic, body, _ = listener.next()
            assert topic == f"tinyact/{device}/cam-1/result" and body["clip_id"] == accepted["clip_id"]
        finally:
            listener.publish(f"tinyact/{device}/cam-1/result", "")  # clear the retained result
            listener.close()


def test_edge_holds_refused_clips_shows_them_and_delivers_after_the_swap(world, tmp_path):
    encoder_hash = (world / "hash").read_text()
    with serve_in_background(world / "clf-other", tmp_path / "c.db", admin_token="admin-token-123") as cloud:
        key = cloud.add_device("edge-1")
        cfg = edge_config(world, tmp_path / "edge", cloud.url)
        transport = HttpTransport(cloud.url, key)
        agent = EdgeAgent(cfg, transport=transport)
        # A round, sent before the agent knew the cloud's model: refused with 409, kept (held), not rejected.
        agent.run_round()
        assert agent.drain_once() == 2
        counts = agent.store.counts()
        assert (counts["pending"], counts["held"], counts["rejected"], counts["delivered"]) == (2, 2, 0, 0)
        assert agent.encoder_hold is not None
        # The next sender pass reads GET /v1/model and says what the cloud expects.
        assert agent.recheck_cloud_model()
        mismatch = agent.status()["encoder_mismatch"]
        assert mismatch["held"] == 2 and mismatch["cloud_encoder_hash"] == OTHER
        assert mismatch["edge_encoder_hash"] == encoder_hash and "outbox drop" in mismatch["fix"]
        # While the model mismatches nothing is sent (new clips go in held) and the model is read at most once
        # per model_check_s.
        requests = transport.requests
        agent.run_round()
        assert agent.drain_once() == 0 and agent.send_due(timeout=2) == 0
        assert not agent.recheck_cloud_model()
        assert transport.requests == requests and agent.store.counts()["held"] == 4
        assert agent.flush(timeout=2) and agent.store.counts()["pending"] == 4  # flushing ignores held clips
        # The page and `tinyact edge status` show the refusal.
        page = TestClient(create_edge_app(agent.status, agent.store, cfg.snapshot_dir, "page-token-123"))
        shown = page.get("/api/status", headers={"Authorization": "Bearer page-token-123"}).json()
        assert shown["encoder_mismatch"]["held"] == 4 and shown["counts"]["held"] == 4
        assert OTHER in shown["encoder_mismatch"]["detail"]
        agent.write_status()
        out = runner.invoke(cli_app, ["edge", "status", "--data-dir", str(cfg.data_dir)], terminal_width=200)
        assert out.exit_code == 0, out.output
        assert "encoder mismatch" in out.output and "4 clip(s) held" in out.output and OTHER in out.output
        as_json = json.loads(runner.invoke(cli_app, ["edge", "status", "--data-dir", str(cfg.data_dir), "--json"]).output)
        assert as_json["encoder_mismatch"]["held_by_encoder"][0]["encoder_hash"] == encoder_hash
        # The operator activates a classifier fitted on this encoder: the next check releases the held clips.
        activate(cloud, world / "clf-match")
        assert agent.recheck_cloud_model(force=True)
        assert agent.encoder_hold is None and agent.model_problem is None
        assert agent.flush(timeout=20)
        counts = agent.store.counts()
        assert (counts["delivered"], counts["results"], counts["held"], counts["pending"]) == (4, 4, 0, 0)
        assert agent.status()["encoder_mismatch"] is None
        agent.run_round()  # and new clips go out at once
        assert agent.flush(timeout=20) and agent.store.counts()["results"] == 6
        agent.stop()
        transport.close()


def test_run_rounds_checks_the_model_and_outbox_drop(world, tmp_path, monkeypatch):
    import yaml

    with serve_in_background(world / "clf-other", tmp_path / "c.db") as cloud:
        monkeypatch.setenv("TINYACT_DEVICE_KEY", cloud.add_device("edge-1"))
        cfg = edge_config(world, tmp_path / "edge", cloud.url, schedule={"interval_s": 0.2})
        config = tmp_path / "edge.yaml"
        config.write_text(yaml.safe_dump(json.loads(cfg.model_dump_json(exclude_defaults=True))))
        result = runner.invoke(cli_app, ["edge", "run", "--config", str(config), "--rounds", "2", "--no-web"],
                               terminal_width=200)
        assert result.exit_code == 0, result.output
        assert OTHER in result.output and "encoder mismatch" in result.output and "4 clip(s) held" in result.output
    store = EdgeStore(cfg.db_path)
    assert store.counts()["held"] == 4 and store.counts()["rejected"] == 0
    store.close()
    wrong = runner.invoke(cli_app, ["edge", "outbox", "drop", "--reason", "bad_latent", "--config", str(config), "--yes"])
    assert wrong.exit_code != 0
    dropped = runner.invoke(cli_app, ["edge", "outbox", "drop", "--reason", "encoder_mismatch", "--config", str(config),
                                      "--yes"])
    assert dropped.exit_code == 0, dropped.output
    assert "discarded 4 held clip(s)" in dropped.output
    store = EdgeStore(cfg.db_path)
    counts = store.counts()
    assert (counts["pending"], counts["held"], counts["discarded"]) == (0, 0, 4)
    assert {row["state"] for row in store.recent()} == {"discarded"}
    store.close()


def test_mixed_encoders_in_one_batch_are_split(world, tmp_path):
    """After an encoder switch the outbox holds clips of two encoders: the cloud takes those of its own."""

    def cloud(request: httpx.Request) -> httpx.Response:
        clips = json.loads(request.content)["clips"]
        if any(c.get("encoder_hash") != OTHER for c in clips):
            return httpx.Response(409, json={"error": ENCODER_MISMATCH, "detail": "another encoder"})
        results = [{"clip_id": c["clip_id"], "camera_id": c["camera_id"], "captured_at": c["captured_at"],
                    "label": "walking", "score": 0.9, "top5": [], "model_version": "m"} for c in clips]
        return httpx.Response(200, json={"results": results})

    transport = HttpTransport("http://cloud", "k", gzip_mode="never",
                              client=httpx.Client(transport=httpx.MockTransport(cloud)))
    ours = [json.dumps(clip_message(latent(0), encoder_hash=OTHER)) for _ in range(2)]
    theirs = [json.dumps(clip_message(latent(1), encoder_hash="new-encoder")) for _ in range(2)]
    outcome = transport.send([ours[0], theirs[0], ours[1], theirs[1]])
    assert len(outcome.delivered) == 2 and len(outcome.held) == 2 and not outcome.rejected and not outcome.retry
    assert set(outcome.held) == {json.loads(m)["clip_id"] for m in theirs}


@pytest.mark.skipif(not mqtt_available(), reason="no MQTT broker on 127.0.0.1:1883 (start mosquitto)")
def test_mqtt_edge_holds_and_delivers_after_the_swap(world, tmp_path, monkeypatch):
    device = f"edge-{uuid.uuid4().hex[:8]}"
    with serve_in_background(world / "clf-other", tmp_path / "c.db", mqtt=BROKER, mqtt_share_group="",
                             admin_token="admin-token-123") as cloud:
        monkeypatch.setenv("TINYACT_DEVICE_KEY", cloud.add_device(device))  # for GET /v1/model over HTTP
        cfg = edge_config(world, tmp_path / "edge", cloud.url, device=device,
                          transport={"kind": "mqtt", "mqtt_url": BROKER, "ack_timeout_s": 5})
        agent = EdgeAgent(cfg)
        try:
            agent.run_round()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and agent.store.counts()["held"] < 2:
                agent.drain_once()  # published; the refusals come back on the error topic
                time.sleep(0.1)
            counts = agent.store.counts()
            assert (counts["held"], counts["pending"], counts["rejected"]) == (2, 2, 0), counts
            assert agent.encoder_hold is not None
            activate(cloud, world / "clf-match")
            assert agent.recheck_cloud_model(force=True)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and agent.store.counts()["results"] < 2:
                agent.drain_once()
                time.sleep(0.1)
            counts = agent.store.counts()
            assert (counts["results"], counts["delivered"], counts["held"], counts["pending"]) == (2, 2, 0, 0), counts
        finally:
            agent.stop()
            from tests.test_cloud_mqtt import Listener

            cleaner = Listener()
            for camera in ("cam-0", "cam-1"):
                cleaner.publish(f"tinyact/{device}/{camera}/result", "")
            cleaner.close()
