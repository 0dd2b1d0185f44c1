"""The edge agent on real video files and a real cloud service: camera pacing, failure isolation, one encoder
call per round, the durable outbox across a cloud outage and an agent restart, no duplicates after retries,
payloads without frames, gzip, and the MQTT path."""

from __future__ import annotations

import base64
import gzip
import json
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from benchmarks.cloud_fixtures import fit_toy_classifier, mqtt_available
from tinyact.cloud.db.engine import make_engine, upgrade_database
from tinyact.cloud.db.schema import predictions
from tinyact.cloud.devices import add_device
from tinyact.cloud.server import free_port, serve_in_background
from tinyact.data.encode import encode_video
from tinyact.edge.agent import EdgeAgent
from tinyact.edge.config import EdgeConfig
from tinyact.edge.encoder import load_encoder
from tinyact.edge.files import enforce_retention
from tinyact.edge.sources import CameraError, FileCamera
from tinyact.edge.transports import HttpTransport
from tinyact.errors import ConfigError
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.checkpoint import save_model

DIM = 32
FPS = 25


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny encoder checkpoint (16 frames of 32×32 -> 32-d), a classifier on 32-d latents, three videos."""
    root = tmp_path_factory.mktemp("edge")
    model = VideoAutoEncoder3D(num_frames=16, input_size=32, channels=(4, 8, 8, 8), latent_dim=DIM, seed_channels=2)
    encoder_hash = save_model(root / "ae.pt", model)
    for i in range(3):
        # Grey level = frame index + 60·camera: a test can tell which frame of which camera it got.
        frames = [np.full((48, 64, 3), (j + 60 * i) % 256, np.uint8) for j in range(75)]  # 3 s
        encode_video(root / f"cam{i}.mp4", frames, FPS, crf=5, gop_seconds=1.0)
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    fit_toy_classifier(root / "clf", latent_dim=DIM, per_class=10, encoder_hash=encoder_hash)  # fitted on this encoder
    return root


def edge_config(world: Path, data_dir: Path, cloud_url: str = "http://127.0.0.1:9", broken: bool = False, **extra) -> EdgeConfig:
    cameras = [{"id": f"cam-{i}", "source": str(world / f"cam{i}.mp4")} for i in range(3)]
    if broken:
        cameras += [{"id": "missing", "source": str(world / "nope.mp4")}, {"id": "corrupt", "source": str(world / "corrupt.mp4")}]
    data = {"device_id": "edge-1", "cloud_url": cloud_url, "encoder": {"checkpoint": str(world / "ae.pt")},
            "cameras": cameras, "data_dir": str(data_dir),
            "transport": {"retry_base_s": 0.05, "retry_max_s": 0.2, "timeout_s": 5}, **extra}
    return EdgeConfig.from_dict(data)


class Spy:
    """Wraps an encoder runtime and records the batch shape of every call."""

    def __init__(self, runtime):
        self.runtime, self.shapes = runtime, []

    def encode(self, clips):
        self.shapes.append(tuple(clips.shape))
        return self.runtime.encode(clips)


def test_file_camera_is_paced_looped_and_seeks(world):
    now = [1000.0]
    camera = FileCamera("c", world / "cam0.mp4", clock=lambda: now[0])
    grey = []
    for advance in (0.0, 1.0, 1.5):  # positions 0 (wrapped window), 1.0, 2.5 s
        now[0] += advance
        grab = camera.grab(16, 8, (32, 32))
        assert grab.frames.shape == (16, 3, 32, 32) and grab.frames.dtype == np.uint8
        grey.append(grab.frames[:, 0, 16, 16].astype(int))
        assert grab.decoded_frames < 75  # never the whole file: seek to the keyframe before the window
    # The window ends at the current position: frame index = 25 fps * position.
    assert abs(grey[1][-1] - 25) <= 2 and abs(grey[2][-1] - 62) <= 2
    # 8 fps sampling: ~3 frames (grey levels) apart; the first window wrapped around the end of the file.
    steps = np.diff(grey[2])
    assert np.all((steps >= 2) & (steps <= 5))
    assert grey[0][-1] <= 2 and grey[0][0] >= 70 - 2 - 45
    assert camera.position(now[0] + 0.6) == pytest.approx(3.1 % 3.0, abs=1e-6)
    # Skipping non-reference frames outside the window gives the same pixels from fewer decoded frames.
    full = FileCamera("c", world / "cam0.mp4", clock=lambda: now[0], skip_nonref=False)
    lean = FileCamera("c", world / "cam0.mp4", clock=lambda: now[0])
    a, b = full.grab(16, 8, (32, 32)), lean.grab(16, 8, (32, 32))
    assert np.array_equal(a.frames, b.frames) and b.decoded_frames < a.decoded_frames


def test_avi_cameras_decode_every_packet(make_video):
    # An AVI's packet labels need not belong to the frames they decode to (packed B-frames): no skipping by label.
    grabs = {}
    for suffix in ("avi", "mp4"):
        camera = FileCamera("c", make_video(f"ramp.{suffix}", n_frames=40, fps=25), clock=lambda: 1.0)
        grabs[suffix] = camera.grab(8, 8, (32, 32))
        assert camera._skip_by_label is (suffix == "mp4")
    assert np.abs(grabs["avi"].frames.astype(int) - grabs["mp4"].frames.astype(int)).max() <= 8  # same ramp


def test_broken_cameras_do_not_stop_the_others_and_one_encoder_call_per_round(world, tmp_path):
    cfg = edge_config(world, tmp_path / "edge", broken=True)
    encoder = load_encoder(cfg.encoder)
    spy = encoder.runtime = Spy(encoder.runtime)
    agent = EdgeAgent(cfg, encoder=encoder)
    report = agent.run_round()
    assert report["clips"] == 3 and spy.shapes == [(3, 16, 3, 32, 32)]  # K clips -> ONE encoder call
    assert set(report["cameras_failed"]) == {"missing", "corrupt"}
    status = agent.status()
    states = {c["camera_id"]: c for c in status["cameras"]}
    assert states["missing"]["state"] == "down" and "not found" in states["missing"]["last_error"]
    assert states["corrupt"]["state"] == "down" and states["corrupt"]["last_error"]
    assert all(states[f"cam-{i}"]["state"] == "up" for i in range(3))
    assert status["counts"]["captured"] == 3 and status["counts"]["pending"] == 3
    for i in range(3):
        assert (cfg.snapshot_dir / f"cam-{i}.jpg").stat().st_size > 100
    assert len(list((cfg.snapshot_dir / "history").rglob("*.jpg"))) == 3
    split = EdgeAgent(edge_config(world, tmp_path / "split", encoder={"checkpoint": str(world / "ae.pt"), "max_batch": 2}),
                      encoder=encoder)
    assert split.run_round()["clips"] == 3 and spy.shapes[1:] == [(2, 16, 3, 32, 32), (1, 16, 3, 32, 32)]
    split.stop()
    spy.shapes = spy.shapes[:1]
    mismatch = EdgeAgent(edge_config(world, tmp_path / "other", schedule={"frames_per_clip": 8}))
    with pytest.raises(ConfigError, match="frames_per_clip is 8 but the encoder takes 16"):
        mismatch.run_round()
    mismatch.stop()
    # A broken camera is retried only after its backoff; the good ones keep going.
    for camera in agent.cameras:
        camera.health.next_try_at = 0.0
    assert agent.run_round()["clips"] == 3 and len(spy.shapes) == 2
    assert json.loads(cfg.status_path.read_text())["counts"]["captured"] == 6
    agent.stop()


def cloud_rows(db_url: str) -> tuple[int, int]:
    """(rows, distinct clip ids) in the cloud's predictions table."""
    engine = make_engine(db_url)
    with engine.connect() as db:
        rows = db.execute(select(func.count()).select_from(predictions)).scalar_one()
        distinct = db.execute(select(func.count(func.distinct(predictions.c.clip_id)))).scalar_one()
    engine.dispose()
    return rows, distinct


@pytest.mark.slow
def test_outbox_survives_cloud_outage_and_agent_restart(world, tmp_path, monkeypatch):
    db_url = f"sqlite:///{tmp_path / 'cloud.db'}"
    engine = make_engine(db_url)
    upgrade_database(engine)
    monkeypatch.setenv("TINYACT_DEVICE_KEY", add_device(engine, "edge-1").key)
    engine.dispose()
    port = free_port()
    cfg = edge_config(world, tmp_path / "edge", cloud_url=f"http://127.0.0.1:{port}", schedule={"interval_s": 3600})
    # The cloud is down: clips are captured, kept, retried with backoff.
    agent = EdgeAgent(cfg)
    agent.run_round()
    agent.run_round()
    assert agent.drain_once() == 6
    counts = agent.store.counts()
    assert counts["pending"] == 6 and counts["delivered"] == 0 and counts["send_failures"] >= 1
    assert "unreachable" in agent.status()["transport"]["last_error"]
    agent.stop()
    # The agent restarts; the outbox is still there. Then the cloud (a separate process) comes up.
    agent = EdgeAgent(cfg)
    assert agent.store.counts()["pending"] == 6
    with serve_in_background(world / "clf", db_url, port=port, mode="process") as cloud:
        agent.start()  # its schedule runs one round now (then one per hour)
        deadline = time.monotonic() + 30
        while (agent.rounds < 1 or agent.store.counts()["pending"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        agent.stop()
        counts = agent.store.counts()
        assert counts == {**counts, "captured": 9, "delivered": 9, "pending": 0, "dropped": 0, "results": 9}
        assert cloud_rows(cloud.db_url) == (9, 9)
        assert all(r["label"] for r in agent.store.recent(20))


def test_no_duplicates_after_lost_responses_and_results_feed(world, tmp_path, monkeypatch):
    with serve_in_background(world / "clf", tmp_path / "cloud.db") as cloud:
        key = cloud.add_device("edge-1")

        class LosingTransport(httpx.HTTPTransport):
            """The cloud stores the clips, but the first two answers are lost on the way back."""

            lose = 2

            def handle_request(self, request):
                response = super().handle_request(request)
                if request.url.path == "/v1/clips" and LosingTransport.lose:
                    LosingTransport.lose -= 1
                    response.close()
                    raise httpx.ReadTimeout("answer lost", request=request)
                return response

        client = httpx.Client(transport=LosingTransport(), headers={"Authorization": f"Bearer {key}"}, timeout=10)
        cfg = edge_config(world, tmp_path / "edge", cloud_url=cloud.url)
        agent = EdgeAgent(cfg, transport=HttpTransport(cloud.url, key, client=client))
        assert agent.check_cloud_model() is None  # fitted on this encoder (mismatches: tests/test_encoder_hash.py)
        assert agent.status()["encode"]["cloud_model_problem"] is None and agent.encoder_hold is None
        agent.run_round()
        assert agent.drain_once() == 3 and agent.store.counts()["pending"] == 3  # answer lost: still pending
        assert agent.flush(timeout=20)
        assert LosingTransport.lose == 0
        assert cloud_rows(cloud.db_url) == (3, 3)  # retried twice, stored once
        counts = agent.store.counts()
        assert counts["delivered"] == 3 and counts["results"] == 3 and counts["send_failures"] == 2
        # The results feed brings back what a lost answer carried (a second device store starting from 0).
        agent.store.results_cursor = 0
        assert agent.poll_results() == 3 and agent.store.results_cursor > 0
        assert cloud_rows(cloud.db_url) == (3, 3)
        agent.stop()
        # The cloud takes gzip-compressed bodies, refuses broken gzip, and bounds what a body inflates to.
        compressed = HttpTransport(cloud.url, key, gzip_mode="always")
        agent = EdgeAgent(cfg, transport=compressed)
        agent.run_round()
        assert agent.flush(timeout=20) and not compressed.gzip_refused
        assert cloud_rows(cloud.db_url) == (6, 6)
        headers = {"Authorization": f"Bearer {key}", "Content-Encoding": "gzip", "Content-Type": "application/json"}
        broken = httpx.post(f"{cloud.url}/v1/clips", content=b"not gzip", headers=headers)
        assert broken.status_code == 422 and "gzip" in broken.json()["detail"]
        bomb = httpx.post(f"{cloud.url}/v1/clips", content=gzip.compress(b" " * (9 << 20)), headers=headers)
        assert bomb.status_code == 413
        agent.stop()
        compressed.close()


def test_payload_holds_only_wire_fields_and_gzip(world, tmp_path):
    bodies: list[tuple[dict, bytes]] = []

    def cloud(request: httpx.Request) -> httpx.Response:
        raw = request.content
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        body = json.loads(raw)
        bodies.append((dict(request.headers), request.content))
        results = [{"clip_id": c["clip_id"], "camera_id": c["camera_id"], "captured_at": c["captured_at"],
                    "label": "walking", "score": 0.9, "top5": [], "model_version": "m"} for c in body["clips"]]
        return httpx.Response(200, json={"results": results})

    client = httpx.Client(transport=httpx.MockTransport(cloud))
    for dtype, item in (("float16", 2), ("int8", 1)):
        bodies.clear()
        cfg = edge_config(world, tmp_path / dtype, transport={"wire_dtype": dtype})
        agent = EdgeAgent(cfg, transport=HttpTransport("http://cloud", "k", client=client))
        agent.run_round()
        agent.flush(5)
        assert agent.store.counts()["delivered"] == 3
        headers, content = bodies[0]
        body = json.loads(gzip.decompress(content) if headers.get("content-encoding") == "gzip" else content)
        for clip in body["clips"]:
            assert set(clip) == {"clip_id", "camera_id", "captured_at", "encoder_hash", "latent"}
            assert clip["encoder_hash"] == agent.encoder.encoder_hash and len(clip["encoder_hash"]) == 16
            assert uuid.UUID(clip["clip_id"]).version == 4
            latent = clip["latent"]
            assert latent["dtype"] == dtype and set(latent) <= {"dtype", "data", "scale", "zero_point"}
            assert len(base64.b64decode(latent["data"])) == DIM * item  # the latent, nothing more
        # One clip's frames are 16·3·32·32 = 49 KB; the whole request is a small fraction of that.
        assert len(content) < 600 * 3
        stored = agent.store.engine.connect().exec_driver_sql("SELECT message FROM outbox").all()
        assert stored == []  # delivered clips leave the outbox
        agent.stop()
    # gzip when it helps; a cloud that refuses compressed bodies is then sent plain.
    transport = HttpTransport("http://cloud", "k", gzip_mode="auto", client=client)
    message = json.dumps({"clip_id": str(uuid.uuid4()), "camera_id": "cam-1", "captured_at": "2026-01-01T00:00:00Z",
                          "latent": [0.125] * 512})
    raw, headers = transport.body([message] * 4)
    assert headers.get("Content-Encoding") == "gzip" and len(raw) < len(message)

    def refusing(request):
        if request.headers.get("content-encoding") == "gzip":
            return httpx.Response(422, json={"error": "invalid_request", "detail": "not JSON"})
        return cloud(request)

    transport = HttpTransport("http://cloud", "k", client=httpx.Client(transport=httpx.MockTransport(refusing)))
    outcome = transport.send([message] * 4)
    assert transport.gzip_refused and len(outcome.delivered) == 4 and not outcome.rejected
    assert "Content-Encoding" not in transport.body([message] * 4)[1]


def test_rejected_clip_is_counted_not_retried(world, tmp_path):
    def cloud(request):
        body = json.loads(request.content)
        if any(c["camera_id"] == "cam-1" for c in body["clips"]):
            return httpx.Response(422, json={"error": "bad_latent", "detail": "clips[0].latent: NaN"})
        results = [{"clip_id": c["clip_id"], "camera_id": c["camera_id"], "captured_at": c["captured_at"],
                    "label": "walking", "score": 0.9, "top5": [], "model_version": "m"} for c in body["clips"]]
        return httpx.Response(200, json={"results": results})

    cfg = edge_config(world, tmp_path / "edge", transport={"gzip": "never"})
    transport = HttpTransport("http://cloud", "k", client=httpx.Client(transport=httpx.MockTransport(cloud)))
    agent = EdgeAgent(cfg, transport=transport)
    agent.run_round()
    agent.flush(5)
    counts = agent.store.counts()
    assert (counts["delivered"], counts["rejected"], counts["pending"]) == (2, 1, 0)
    assert {r["camera_id"]: r["state"] for r in agent.store.recent()}["cam-1"] == "rejected"
    agent.stop()


def test_snapshot_retention_by_age_and_size(tmp_path):
    folder = tmp_path / "history" / "cam-1"
    folder.mkdir(parents=True)
    now = time.time()
    import os

    for i in range(10):
        path = folder / f"{i}.jpg"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - i * 3600, now - i * 3600))  # file i is i hours old
    deleted, kept = enforce_retention(tmp_path / "history", max_age_s=5.5 * 3600, max_bytes=4000, now=now)
    assert deleted == 6 and kept == 4000
    assert sorted(p.name for p in folder.iterdir()) == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]


def test_mqtt_transport_delivers_and_gets_results(world, tmp_path):
    if not mqtt_available():
        pytest.skip("no MQTT broker answers at 127.0.0.1:1883 (start mosquitto to run this test)")
    device = f"edge-{uuid.uuid4().hex[:8]}"
    with serve_in_background(world / "clf", tmp_path / "cloud.db", mqtt="mqtt://127.0.0.1:1883") as cloud:
        cloud.add_device(device)
        cfg = edge_config(world, tmp_path / "edge", cloud_url=cloud.url,
                          transport={"kind": "mqtt", "mqtt_url": "mqtt://127.0.0.1:1883", "ack_timeout_s": 5})
        cfg = cfg.model_copy(update={"device_id": device})
        agent = EdgeAgent(cfg)
        agent.run_round()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and agent.store.counts()["results"] < 3:
            agent.drain_once()
            time.sleep(0.1)
        counts = agent.store.counts()
        agent.stop()
        assert counts["results"] == 3 and counts["delivered"] == 3 and counts["pending"] == 0
        assert cloud_rows(cloud.db_url) == (3, 3)


def test_camera_error_is_a_tinyact_error(world):
    with pytest.raises(CameraError, match="file not found"):
        FileCamera("x", world / "nope.mp4").grab(16, 8, (32, 32))


def test_stream_camera_over_http_decodes_only_windows_and_reports_down(tmp_path):
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from tinyact.edge.streams import StreamCamera

    # 4 s of 25 fps video (grey = 3·frame index), a keyframe every 0.5 s, served over HTTP.
    encode_video(tmp_path / "s.mkv", [np.full((48, 64, 3), j * 2 % 256, np.uint8) for j in range(100)], FPS, crf=5,
                 gop_seconds=0.5)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    camera = StreamCamera("s", f"http://127.0.0.1:{server.server_address[1]}/s.mkv")
    try:
        grabs = [camera.grab(8, 8, (32, 32), timeout=10) for _ in range(2)]
        for grab in grabs:
            grey = grab.frames[:, 0, 16, 16].astype(int)
            assert grab.frames.shape == (8, 3, 32, 32)
            assert np.all(np.diff(grey) > 0) and abs(np.diff(grey).mean() - 2 * 25 / 8) < 2  # 8 fps sampling
        assert grabs[1].frames[0, 0, 16, 16] > grabs[0].frames[-1, 0, 16, 16]  # the stream moved on
        status = camera.status()
        assert status["state"] == "up" and status["decoded_frames"] < status["packets"]  # packets between windows dropped
    finally:
        camera.close()
        server.shutdown()
    dead = StreamCamera("d", f"http://127.0.0.1:{free_port()}/x.mkv", read_timeout_s=2)
    with pytest.raises(CameraError):
        dead.grab(8, 8, (32, 32), timeout=5)
    assert dead.status()["state"] == "down" and dead.status()["last_error"]
    dead.close()
    from tinyact.edge.sources import redact

    assert redact("rtsp://admin:s3cret@10.0.0.7:554/live") == "rtsp://***@10.0.0.7:554/live"  # status never shows passwords
    assert redact("/videos/a.mp4") == "/videos/a.mp4"
