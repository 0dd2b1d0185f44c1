"""Hardening of the cloud service: one device's bad input never fails another device's requests (micro-batch,
group commit), bounded values, query parameters and lists, per-device limits, key rotation, idempotency
under concurrency, and a failed ``serve`` that leaves the shared database alone (docs/CLOUD.md, "Limits and
isolation")."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from typer.testing import CliRunner

from tests import test_cloud_api as api
from tests.test_cloud_api import ADMIN, DIM, VIEWER, clip
from tinyact.cloud.app import create_app
from tinyact.cloud.batcher import MicroBatcher
from tinyact.cloud.config import CloudConfig
from tinyact.cloud.db.engine import make_engine, upgrade_database
from tinyact.cloud.devices import add_device, rotate_device
from tinyact.cloud.registry import LoadedModel, active_model_row
from tinyact.cloud.store import CameraIds, GroupWriter, NewPrediction
from tinyact.wire import MAX_LATENT_VALUES, ClipIn, ErrorOut

# The fixtures of test_cloud_api: a fresh, migrated SQLite file and a TestClient app per test.
models, template_db, make_cloud = api.models, api.template_db, api.make_cloud

runner = CliRunner()


def _poisoned_predict(monkeypatch) -> None:
    """Make every classifier fail on a batch holding a huge value, as a StandardScaler that overflows does."""
    original = LoadedModel.predict_proba

    def predict_proba(self, latents):
        if np.abs(latents).max() > 1e30:
            raise ValueError("Input contains infinity or a value too large for dtype('float64').")
        return original(self, latents)

    monkeypatch.setattr(LoadedModel, "predict_proba", predict_proba)


def _post(cloud, clips: list[dict], device: str, **headers):
    return cloud.client.post("/v1/clips", content=json.dumps({"clips": clips}),
                             headers={**cloud.auth(device), "Content-Type": "application/json", **headers})


# ---- 1. cross-device isolation ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("poison", "code"),
    [
        ({"latent": [3.4e38] * DIM}, "bad_latent"),
        ({"captured_at": "0001-01-01T00:00:00+05:00"}, "past_timestamp"),
    ],
    ids=["float32_max_latent", "year_1_timestamp"],
)
def test_poison_from_one_device_fails_alone_while_another_device_posts_concurrently(make_cloud, monkeypatch, poison, code):
    _poisoned_predict(monkeypatch)
    cloud = make_cloud(batch_window_ms=100)  # a wide window: the requests below share micro-batches
    bad = {**clip(0), **poison}

    def send(i: int):
        return _post(cloud, [bad], "edge-1") if i % 4 == 0 else _post(cloud, [clip(i % 4)], "edge-2")

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(24)))
    for i, response in enumerate(responses):
        if i % 4 == 0:
            assert response.status_code == 422, response.text
            assert response.json()["error"] == code
        else:
            assert response.status_code == 200, response.text
    assert cloud.count() == 18  # every good clip of edge-2, nothing of edge-1


@pytest.mark.parametrize(
    ("captured_at", "words"),
    [(-1, "before 2000"), ("1999-12-31T23:59:59Z", "before 2000"), ("0001-01-01T00:00:00+05:00", "before 2000")],
)
def test_timestamps_before_2000_are_422(make_cloud, captured_at, words):
    cloud = make_cloud()
    response = _post(cloud, [clip(0), {**clip(1), "captured_at": captured_at}], "edge-1")
    assert response.status_code == 422 and response.json()["error"] == "past_timestamp", response.text
    assert words in response.json()["detail"] and "clips[1]" in response.json()["detail"]
    assert cloud.count() == 0


def test_latent_values_are_bounded(make_cloud):
    cloud = make_cloud()
    big = np.full(DIM, 2e4, np.float32)
    for latent in ([2e4] * DIM, {"dtype": "float32", "data": base64.b64encode(big.tobytes()).decode()}):
        response = _post(cloud, [{**clip(0), "latent": latent}], "edge-1")
        assert response.status_code == 422 and response.json()["error"] == "bad_latent", response.text
        assert "±10000" in response.json()["detail"]
    assert _post(cloud, [{**clip(0), "latent": [9999.0] * DIM}], "edge-1").status_code == 200


def test_booleans_and_strings_are_not_latents(make_cloud):
    """JSON true/false or numeric strings in a plain-list latent are refused (lax floats stored true as 1.0)."""
    cloud = make_cloud()
    for bad in ([True] * DIM, ["1.5"] * DIM, ["NaN"] * DIM):
        response = _post(cloud, [{**clip(0), "latent": bad}], "edge-1")
        assert response.status_code == 422, response.text
    assert _post(cloud, [{**clip(0), "latent": [1] * (DIM // 2) + [0.5] * (DIM // 2)}], "edge-1").status_code == 200


def test_micro_batcher_retries_a_failed_batch_request_by_request():
    class Model:
        def predict_proba(self, x):
            if np.abs(x).max() > 1e30:
                raise ValueError("overflow")
            return np.tile([[0.25, 0.75]], (len(x), 1))

    class Registry:
        current = Model()

    batches = []
    batcher = MicroBatcher(Registry(), window_s=0.05, on_batch=lambda r, c, s: batches.append(r))
    good = np.zeros((2, 4), np.float32)
    bad = np.full((1, 4), 3.4e38, np.float32)

    async def run():
        batcher.start()
        try:
            return await asyncio.gather(batcher.classify(good), batcher.classify(bad), batcher.classify(good),
                                        return_exceptions=True)
        finally:
            await batcher.stop()

    first, poisoned, third = asyncio.run(run())
    assert isinstance(poisoned, ValueError)
    assert first[0].shape == (2, 2) and third[0].shape == (2, 2)


def test_group_writer_retries_a_failed_group_request_by_request(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade_database(engine)
    add_device(engine, "edge-1")
    add_device(engine, "edge-2")
    writer = GroupWriter(engine, CameraIds())

    def row(at, camera="cam-1"):
        return NewPrediction(uuid.uuid4(), camera, at, "walking", 0.9, [{"label": "walking", "score": 0.9}], "m-1")

    now = datetime.now(UTC)
    year_one = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))  # astimezone(UTC) overflows
    jobs = [(2, "edge-2", [row(now, f"cam-{i}")]) for i in range(5)]
    jobs.insert(2, (1, "edge-1", [row(year_one, "new-cam")]))

    async def run():
        writer.start()
        try:
            return await asyncio.gather(*(writer.store(*job) for job in jobs), return_exceptions=True)
        finally:
            await writer.stop()

    results = asyncio.run(run())
    assert isinstance(results[2], Exception)
    assert all(not isinstance(r, Exception) and len(r[1]) == 1 for i, r in enumerate(results) if i != 2)
    # The rolled-back group's new camera ids were not cached: a later write of that camera still works.
    later = asyncio.run(_store_once(engine, writer.camera_ids, (1, "edge-1", [row(now, "new-cam")])))
    assert len(later[1]) == 1
    engine.dispose()


async def _store_once(engine, camera_ids, job):
    writer = GroupWriter(engine, camera_ids)
    writer.start()
    try:
        return await writer.store(*job)
    finally:
        await writer.stop()


# ---- 2. bounded query parameters, server errors -----------------------------------------------------------
def test_huge_cursors_are_422_not_500(make_cloud):
    cloud = make_cloud()
    huge = "99999999999999999999"
    response = cloud.client.get(f"/v1/results?since={huge}", headers=cloud.auth())
    assert response.status_code == 422 and response.json()["error"] == "invalid_request", response.text
    response = cloud.client.get(f"/v1/dashboard/latest?since={huge}", headers=cloud.viewer)
    assert response.status_code == 422, response.text
    assert cloud.client.get(f"/v1/results?since={2**63 - 1}", headers=cloud.auth()).status_code == 200
    assert cloud.client.get(f"/v1/dashboard/latest?since={2**63 - 1}", headers=cloud.viewer).status_code == 200


def test_server_errors_are_logged_as_plain_text_without_exc_info(make_cloud, monkeypatch, caplog):
    from tinyact.cloud import analytics

    cloud = make_cloud()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(analytics, "latest", broken)
    client = TestClient(cloud.client.app, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="tinyact.cloud.app"):
        response = client.get("/v1/dashboard/latest", headers=cloud.viewer)
    assert response.status_code == 500 and response.json()["error"] == "internal"
    records = [r for r in caplog.records if r.name == "tinyact.cloud.app"]
    assert records and all(r.exc_info is None for r in records)  # no rich traceback rendering in the loop
    assert "RuntimeError: boom" in records[-1].getMessage()


# ---- 3. limits --------------------------------------------------------------------------------------------
def test_cameras_per_device_are_capped(make_cloud):
    cloud = make_cloud(max_cameras_per_device=2)
    assert _post(cloud, [clip(0, camera_id="a"), clip(1, camera_id="b")], "edge-1").status_code == 200
    response = _post(cloud, [clip(0, camera_id="a"), clip(2, camera_id="c")], "edge-1")
    assert response.status_code == 422 and response.json()["error"] == "too_many_cameras", response.text
    assert "'c'" in response.json()["detail"] and "2 cameras" in response.json()["detail"]
    assert cloud.count() == 2
    assert _post(cloud, [clip(0, camera_id="b")], "edge-1").status_code == 200  # known cameras still work
    assert _post(cloud, [clip(0, camera_id="c")], "edge-2").status_code == 200  # the limit is per device


def test_dashboard_summary_is_one_query(make_cloud):
    cloud = make_cloud()
    for i in range(6):
        assert _post(cloud, [clip(i % 4, camera_id=f"cam-{i}")], "edge-1").status_code == 200
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    assert _post(cloud, [clip(0, camera_id="cam-0", captured_at=old)], "edge-2").status_code == 200
    engine = cloud.client.app.state.service.engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        body = cloud.client.get("/v1/dashboard/summary?hours=24", headers=cloud.viewer).json()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, statements
    cams = {(c["device"], c["camera"]): c for c in body["cameras"]}
    assert len(cams) == 7 and body["total"] == 6
    assert cams[("edge-2", "cam-0")]["count"] == 0 and cams[("edge-2", "cam-0")]["last_label"] is not None
    assert all(cams[("edge-1", f"cam-{i}")]["count"] == 1 and cams[("edge-1", f"cam-{i}")]["last_at"] for i in range(6))


def test_admin_routes_refuse_a_bad_token_before_reading_the_body(make_cloud):
    cloud = make_cloud()
    chunk, chunks = b" " * 65536, 100  # 6.5 MB, under the body limit
    read = 0

    async def receive():
        nonlocal read
        read += 1
        if read > chunks:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunk, "more_body": read < chunks}

    for path in ("/v1/admin/model", "/v1/admin/devices"):
        read = 0
        sent: list[dict] = []

        async def send(message, sent=sent):
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"testserver"), (b"authorization", b"Bearer wrong-token"),
                        (b"content-type", b"application/json"), (b"content-length", str(chunk.__len__() * chunks).encode())],
            "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        }
        cloud.client.portal.call(cloud.client.app, scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
        assert start["status"] == 401 and "wrong admin token" in body["detail"], body
        assert read == 0, f"{path} read {read} body chunks before refusing the token"
    # The right token still reads and validates the body.
    response = cloud.client.post("/v1/admin/devices", json={"name": "edge-9"}, headers=cloud.admin)
    assert response.status_code == 201 and response.json()["key"].startswith("tak_")
    response = cloud.client.post("/v1/admin/devices", json={"nom": "x"}, headers=cloud.admin)
    assert response.status_code == 422 and "name" in response.json()["detail"]
    schema = cloud.client.get("/openapi.json").json()
    assert "ModelSwapIn" in schema["components"]["schemas"] and "DeviceIn" in schema["components"]["schemas"]


def test_plain_list_latents_and_clip_lists_are_bounded(make_cloud):
    cloud = make_cloud()
    response = _post(cloud, [{**clip(0), "latent": [0.0] * (MAX_LATENT_VALUES + 1)}], "edge-1")
    assert response.status_code == 422 and response.json()["error"] == "invalid_request", response.text
    assert str(MAX_LATENT_VALUES) in response.json()["detail"]
    assert ClipIn.model_fields["latent"] is not None
    from tinyact.wire import ClipsIn

    assert ClipsIn.model_json_schema()["properties"]["clips"]["maxItems"] == 10_000


def test_uvicorn_gets_connection_limits_and_timeouts(tmp_path, monkeypatch):
    import uvicorn

    from tinyact.cloud.server import run_server

    seen: dict = {}

    def fake_run(app, **kwargs):  # the old code path: must not start a real server here
        seen.update(kwargs)

    def fake_server_run(self, sockets=None):
        seen.update(limit_concurrency=self.config.limit_concurrency, timeout_keep_alive=self.config.timeout_keep_alive,
                    h11_max_incomplete_event_size=self.config.h11_max_incomplete_event_size)
        self.started = True

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setattr(uvicorn.Server, "run", fake_server_run)
    cfg = CloudConfig(db=f"sqlite:///{tmp_path / 'c.db'}", port=0, max_connections=77, keep_alive_s=3,
                      max_header_bytes=8192)
    run_server(cfg)
    assert seen["limit_concurrency"] == 77 and seen["timeout_keep_alive"] == 3
    assert seen["h11_max_incomplete_event_size"] == 8192


def test_silent_trickling_and_slow_body_clients_are_closed_at_the_request_deadline(tmp_path):
    """uvicorn's own timeouts start only after a finished request: an idle socket, headers sent a byte at a
    time or a body that never ends held the connection. Now they are closed at request_timeout_s, while a
    normal request on the same server is answered."""
    import socket
    from urllib.parse import urlsplit

    import httpx

    from tinyact.cloud.server import serve_in_background

    def opened(port: int, payload: bytes) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(payload)
        sock.settimeout(5)
        return sock

    def closed_within(sock: socket.socket, seconds: float) -> bool:
        sock.settimeout(seconds)
        try:
            while sock.recv(4096):  # a refusal may come first (a POST without a key gets its 401 early)
                pass
            return True  # b"": the server closed it
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    with serve_in_background(None, tmp_path / "c.db", request_timeout_s=1.0) as cloud:
        port = urlsplit(cloud.url).port
        idle = opened(port, b"")
        trickle = opened(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        slow_body = opened(port, b"POST /v1/clips HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        assert httpx.get(cloud.url + "/healthz", timeout=5).status_code == 200
        for sock in (idle, trickle, slow_body):
            assert closed_within(sock, 4.0)
            sock.close()


# ---- 4. keys, idempotency, admin inputs -------------------------------------------------------------------
def test_rotated_key_dies_at_once_on_every_replica(make_cloud, models):
    cloud = make_cloud()  # default settings
    replica = TestClient(create_app(CloudConfig(db=cloud.db_url, model=models["logreg"]), admin_token=ADMIN,
                                    viewer_token=VIEWER))
    with replica:
        old = cloud.auth("edge-1")
        body = {"clips": [clip(0)]}
        for client in (cloud.client, replica):
            assert client.post("/v1/clips", json=body, headers=old).status_code == 200  # warms any key cache
        new_key = rotate_device(cloud.db_url, "edge-1").key  # e.g. `tinyact cloud device rotate` elsewhere
        for client in (cloud.client, replica):
            response = client.post("/v1/clips", json={"clips": [clip(1)]}, headers=old)
            assert response.status_code == 401, response.text
            assert client.post("/v1/clips", json={"clips": [clip(2)]},
                               headers={"Authorization": f"Bearer {new_key}"}).status_code == 200
        # Through the admin API too.
        response = replica.post("/v1/admin/devices/edge-1/rotate", headers=cloud.admin)
        assert response.status_code == 200
        newer = {"Authorization": f"Bearer {response.json()['key']}"}
        assert cloud.client.post("/v1/clips", json={"clips": [clip(3)]}, headers=newer).status_code == 200
        assert cloud.client.post("/v1/clips", json={"clips": [clip(3)]},
                                 headers={"Authorization": f"Bearer {new_key}"}).status_code == 401
        assert replica.post("/v1/admin/devices/nobody/rotate", headers=cloud.admin).status_code == 404


def test_device_rotate_cli(tmp_path):
    from tinyact.cli import app
    from tinyact.cloud.devices import find_device_by_key

    db = f"sqlite:///{tmp_path / 'c.db'}"
    old = runner.invoke(app, ["cloud", "device", "add", "edge-1", "--db", db]).output.strip().splitlines()[-1]
    result = runner.invoke(app, ["cloud", "device", "rotate", "edge-1", "--db", db])
    assert result.exit_code == 0, result.output
    new = result.output.strip().splitlines()[-1]
    assert new.startswith("tak_") and new != old
    engine = make_engine(db)
    assert find_device_by_key(engine, old) is None and find_device_by_key(engine, new).name == "edge-1"
    engine.dispose()
    result = runner.invoke(app, ["cloud", "device", "rotate", "nobody", "--db", db])
    assert result.exit_code == 2 and "no device" in result.output


def test_one_idempotency_key_with_two_bodies_at_once_stores_only_the_accepted_one(make_cloud, monkeypatch):
    cloud = make_cloud()
    service = cloud.client.app.state.service
    classify = service.batcher.classify

    async def slow_classify(*args, **kwargs):
        await asyncio.sleep(0.3)  # both requests are in flight at the same time
        return await classify(*args, **kwargs)

    monkeypatch.setattr(service.batcher, "classify", slow_classify)
    bodies = [[clip(0), clip(1)], [clip(2)]]
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda clips: _post(cloud, clips, "edge-1", **{"Idempotency-Key": "k-1"}), bodies))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 422], [r.text for r in responses]
    refused = next(r for r in responses if r.status_code == 422)
    assert refused.json()["error"] == "idempotency_key_reused"
    accepted = next(i for i, r in enumerate(responses) if r.status_code == 200)
    assert cloud.count() == len(bodies[accepted])  # nothing of the refused request was stored
    # A failed request gives its key back.
    monkeypatch.undo()
    bad = _post(cloud, [{**clip(0), "latent": [0.0]}], "edge-1", **{"Idempotency-Key": "k-2"})
    assert bad.status_code == 422
    assert _post(cloud, [clip(3)], "edge-1", **{"Idempotency-Key": "k-2"}).status_code == 200


@pytest.mark.parametrize("path", ["runs/a\x00b", "~no_such_user_tinyact/model"])
def test_admin_model_paths_that_cannot_exist_are_4xx(make_cloud, path):
    cloud = make_cloud()
    response = cloud.client.post("/v1/admin/model", json={"path": path}, headers=cloud.admin)
    assert 400 <= response.status_code < 500, response.text
    assert ErrorOut.model_validate(response.json()).error == "bad_model"


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_export_times_out_of_range_are_422(make_cloud, value):
    cloud = make_cloud()
    assert _post(cloud, [clip(0)], "edge-1").status_code == 200
    response = cloud.client.get("/v1/export", params={"from": value, "format": "jsonl"}, headers=cloud.admin)
    assert response.status_code == 422 and "out of range" in response.json()["detail"], response.text
    response = cloud.client.get("/v1/export", params={"from": "2000-01-01T00:00:00Z", "format": "jsonl"}, headers=cloud.admin)
    assert response.status_code == 200 and len(response.text.splitlines()) == 1


# ---- 6. a failed serve leaves the shared database alone ---------------------------------------------------
def test_serve_on_a_busy_port_does_not_change_the_active_model(tmp_path, models):
    from tinyact.cloud.server import ServiceStartError, run_server

    db = f"sqlite:///{tmp_path / 'c.db'}"
    engine = make_engine(db)
    upgrade_database(engine)
    cfg = CloudConfig(db=db, model=models["logreg"], port=0)
    app = create_app(cfg)  # the running service: logreg is the active model
    with TestClient(app):
        before = active_model_row(engine)
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            second = CloudConfig(db=db, model=models["dt"], port=port)
            started = time.monotonic()
            with pytest.raises((ServiceStartError, SystemExit)):
                run_server(second)
            assert time.monotonic() - started < 30
        assert active_model_row(engine) == before
    engine.dispose()


# ---- 5. set-up script -------------------------------------------------------------------------------------
@pytest.mark.parametrize("local_wheel", [True, False], ids=["local_wheel", "ordinary_machine"])
def test_setup_script_installs_the_cpu_build_of_torch(tmp_path, local_wheel):
    """scripts/setup.sh with a stand-in for .venv/bin/python that logs each pip call: the local wheel when
    pip's config has one, else PyTorch's CPU index (never a plain PyPI torch, the CUDA build)."""
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "scripts").mkdir()
    shutil.copy(root / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    log = tmp_path / "pip.log"
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fail_no_index = "" if local_wheel else 'case " $* " in *" --no-index "*) exit 1;; esac\n'
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n{fail_no_index}exit 0\n')
    fake.chmod(0o755)
    result = subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = [line for line in log.read_text().splitlines() if "torch==2.13.0" in line]
    assert "--no-index" in calls[0]  # the local wheel first, no download
    if local_wheel:
        assert all("download.pytorch.org" not in c for c in calls)
    else:
        assert any("--index-url https://download.pytorch.org/whl/cpu" in c for c in calls)
        assert all("--no-index" in c or "download.pytorch.org/whl/cpu" in c for c in calls)  # never plain PyPI


def test_mqtt_clips_from_unknown_devices_log_once_a_minute(make_cloud, caplog):
    """A flood from unregistered devices made one warning per message (20k lines); now one a minute per name,
    with the count of what was dropped in between, while the metric counts every message."""
    import asyncio
    import logging

    cloud = make_cloud()
    service = cloud.client.app.state.service
    payload = json.dumps(clip(0)).encode()

    async def flood() -> None:
        for _ in range(50):
            assert await service.ingest_mqtt("nobody", "cam-1", payload) is None

    with caplog.at_level(logging.WARNING, logger="tinyact.cloud.service"):
        asyncio.run(flood())
    warnings = [r for r in caplog.records if "unknown or revoked device" in r.getMessage()]
    assert len(warnings) == 1 and "'nobody'" in warnings[0].getMessage()
