"""The edge web page: token protection (header, query, cookie), status/history API over the local database,
snapshots and MJPEG, and the page itself in a real headless Chromium (Debian ``chromium`` + Playwright).

``TINYACT_EDGE_SCREENSHOT=docs/img/edge.png`` also saves the screenshot there.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.browser import browser_page, expect, needs_browser
from tinyact.data.synth.generator import SynthConfig, plan_dataset, render_clip
from tinyact.edge.store import EdgeStore
from tinyact.edge.web import create_edge_app, serve_edge_app
from tinyact.wire import ClipResult, LabelScore

TOKEN = "edge-local-token"
CAMERAS = ["door", "hall", "lobby", "yard", "gate"]


def capture(store: EdgeStore, clip_id: uuid.UUID, camera: str, at: datetime, encode_ms: float) -> None:
    """A clip as the agent records it: capture row + outbox message, before any send."""
    store.enqueue([(str(clip_id), camera, at, encode_ms, json.dumps({"clip_id": str(clip_id)}))])


def write_snapshots(folder: Path, cameras: list[str], size: int = 96) -> None:
    """One JPEG per camera: a frame of a generated action clip (what the agent writes from its captures)."""
    cfg = SynthConfig(out=folder, classes=len(cameras), clips_per_class=3, size=size, min_seconds=0.5, max_seconds=0.6)
    plans = [p for p in plan_dataset(cfg) if p.split == "train"]
    folder.mkdir(parents=True, exist_ok=True)
    for camera, plan in zip(cameras, plans, strict=False):
        frames, _, _ = render_clip(cfg, plan)
        Image.fromarray(frames[len(frames) // 2]).save(folder / f"{camera}.jpg", quality=85)


def result(clip_id, camera, at, label, score=0.9) -> ClipResult:
    return ClipResult(clip_id=clip_id, camera_id=camera, captured_at=at, label=label, score=score,
                      top5=[LabelScore(label=label, score=score)], model_version="svm-test")


@pytest.fixture
def edge(tmp_path):
    store = EdgeStore(tmp_path / "edge.db")
    snapshots = tmp_path / "snapshots"
    write_snapshots(snapshots, CAMERAS)
    now = datetime.now(UTC)
    labels = ["walking left", "waving", "jumping", "running", "sitting down"]
    for k in range(12):
        camera = CAMERAS[k % len(CAMERAS)]
        clip_id = uuid.uuid4()
        at = now - timedelta(seconds=10 * (12 - k))
        capture(store, clip_id, camera, at, 40.0 + k)
        if k < 10:  # the newest two are still in the outbox
            store.mark_delivered([clip_id])
            store.record_results([result(clip_id, camera, at, labels[k % len(labels)])])
    status = {
        "device_id": "edge-demo",
        "transport": "http",
        "encode": {"backend": "torch", "mean_batch_ms": 123.4},
        "counts": {"captured": -1},  # the page takes the counters from the database, not from here
        "cameras": {c: {"up": c != "gate", "last_error": "connection refused (retry in 8 s)" if c == "gate" else None}
                    for c in CAMERAS},
    }
    app = create_edge_app(lambda: status, store, snapshots, TOKEN)
    return app, store, snapshots, status


def test_token_required_everywhere(edge):
    app, *_ = edge
    client = TestClient(app)
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200  # the page itself; its data needs the token
    for path in ("/api/status", "/api/history", "/snapshots/door.jpg", "/stream/door.mjpg"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"] == "unauthorized"
        assert client.get(path, headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/api/status", headers={"X-TinyAct-Token": TOKEN}).status_code == 200
    assert client.get(f"/api/status?token={TOKEN}").status_code == 401  # never a token in an API URL
    assert client.post("/api/login", json={"token": "nope"}).status_code == 401
    # A link with ?token= signs the browser in (cookie) and redirects to a clean address. (A fresh client:
    # this one has just sent five wrong tokens and is throttled.)
    client = TestClient(app, client=("10.0.0.2", 50000))
    response = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert client.get("/api/status").status_code == 200
    client.post("/api/logout")
    assert client.get("/api/status").status_code == 401


def test_login_cookie_is_a_signed_session_not_the_token(edge):
    from tinyact.edge.web import COOKIE, SessionSigner

    app, *_ = edge
    client = TestClient(app)
    response = client.post("/api/login", json={"token": TOKEN})
    assert response.status_code == 200
    cookie = client.cookies.get(COOKIE)
    assert cookie and TOKEN not in cookie and cookie.startswith("v1.")
    assert client.get("/api/status").status_code == 200
    # A forged or tampered cookie, the raw token as cookie, or a session of another token: all refused.
    for value in (TOKEN, cookie[:-2] + ("00" if cookie[-2:] != "00" else "11"), SessionSigner("another-token").issue(),
                  "v1.0.x.y"):
        other = TestClient(app)
        other.cookies.set(COOKIE, value)
        assert other.get("/api/status").status_code == 401, value
    expired = SessionSigner(TOKEN).issue(now=time.time() - 31 * 86400)
    other = TestClient(app)
    other.cookies.set(COOKIE, expired)
    assert other.get("/api/status").status_code == 401


def test_wrong_logins_are_throttled_per_client(edge):
    from tinyact.edge.web import LOGIN_FAILURES

    app, *_ = edge
    client = TestClient(app)
    for _ in range(LOGIN_FAILURES):
        assert client.post("/api/login", json={"token": "guess"}).status_code == 401
    refused = client.post("/api/login", json={"token": TOKEN})  # even the right one, until the minute is over
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert refused.json()["error"] == "too_many_attempts"
    assert client.get("/api/status", headers={"Authorization": "Bearer guess-again"}).status_code == 429
    other = TestClient(app, client=("10.0.0.9", 50000))  # another address is not affected
    assert other.post("/api/login", json={"token": TOKEN}).status_code == 200


def test_status_history_and_snapshots(edge):
    app, store, snapshots, _ = edge
    client = TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})
    body = client.get("/api/status").json()
    cams = {c["camera_id"]: c for c in body["cameras"]}
    assert sorted(cams) == sorted(CAMERAS)
    assert cams["gate"]["up"] is False and "refused" in cams["gate"]["error"]
    assert cams["door"]["up"] is True and cams["door"]["snapshot_at"] > 0
    assert body["counts"]["captured"] == 12 and body["counts"]["pending"] == 2
    assert body["agent"]["device_id"] == "edge-demo" and body["agent"]["encode.mean_batch_ms"] == 123.4
    assert cams["lobby"]["label"] == "jumping"  # the latest result of that camera
    history = client.get("/api/history?limit=5").json()["items"]
    assert len(history) == 5
    assert history[0]["captured_at"] >= history[-1]["captured_at"]
    only = client.get("/api/history?camera=hall").json()["items"]
    assert only and {r["camera_id"] for r in only} == {"hall"}
    image = client.get("/snapshots/door.jpg")
    assert image.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).size == (128, 96)
    assert client.get("/snapshots/nowhere.jpg").status_code == 404
    assert client.get("/snapshots/..%2Fedge.db.jpg").status_code == 404  # cannot leave the snapshot folder


def test_mjpeg_stream(edge):
    app, *_ = edge
    url, stop = serve_edge_app(app)
    try:
        with httpx.stream("GET", f"{url}/stream/door.mjpg", headers={"X-TinyAct-Token": TOKEN}, timeout=10) as response:
            assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if data.count(b"\xff\xd9") >= 1 and b"--frame" in data:
                    break
        start = data.index(b"\xff\xd8")
        Image.open(io.BytesIO(data[start:data.index(b"\xff\xd9") + 2])).verify()
    finally:
        stop()


@needs_browser
def test_edge_page_in_chromium(edge, tmp_path):
    app, store, snapshots, status = edge
    url, stop = serve_edge_app(app)
    requests: list[str] = []
    errors: list[str] = []
    try:
        with browser_page(requests, errors) as page:
            page.goto(url + "/")
            expect(page.locator("#login-view")).to_be_visible()
            page.fill("#token", "nope")
            page.click("#login button[type=submit]")
            expect(page.locator("#login-error")).to_contain_text("not accepted")
            errors.clear()  # the browser logs the refused requests (401) as errors
            page.fill("#token", TOKEN)
            page.click("#login button[type=submit]")

            expect(page.locator("#cameras .cam")).to_have_count(5)
            expect(page.locator('.cam[data-camera="gate"]')).to_have_class("cam down")
            expect(page.locator('.cam[data-camera="gate"] .err')).to_contain_text("refused")
            expect(page.locator('.cam[data-camera="lobby"] .action')).to_contain_text("jumping")
            for camera in CAMERAS:  # every live view shows its decoded snapshot
                img = page.locator(f'.cam[data-camera="{camera}"] img')
                expect(img).to_be_visible()
                page.wait_for_function("(el) => el.complete && el.naturalWidth === 128", arg=img.element_handle())
            expect(page.locator("#history tbody tr")).to_have_count(12)
            expect(page.locator('#counters tr[data-key="pending"]')).to_contain_text("2")
            expect(page.locator("#outbox")).to_contain_text("2 pending")
            expect(page.locator("#cameras-count")).to_contain_text("4 of 5 up")
            # Screenshot with one camera down (as in the docs).
            shot = tmp_path / "edge.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            target = os.environ.get("TINYACT_EDGE_SCREENSHOT")
            if target:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=target, full_page=True)

            # A new capture and its result show up without a reload; the camera comes back up.
            clip_id = uuid.uuid4()
            at = datetime.now(UTC)
            capture(store, clip_id, "gate", at, 50.0)
            store.mark_delivered([clip_id])
            store.record_results([result(clip_id, "gate", at, "clapping", 0.77)])
            status["cameras"]["gate"] = {"up": True, "last_error": "connection refused (an old error)"}
            row = page.locator(f'#history tbody tr[data-id="{clip_id}"]')
            expect(row).to_contain_text("clapping", timeout=15_000)
            expect(page.locator('.cam[data-camera="gate"] .action')).to_contain_text("clapping")
            expect(page.locator("#cameras-count")).to_contain_text("5 of 5 up")
            expect(page.locator('.cam[data-camera="gate"] .err')).to_be_hidden()  # healed: no stale error
            # A new snapshot replaces the view (the page re-fetches it when its time changes).
            old = page.locator('.cam[data-camera="door"] img').get_attribute("src")
            shutil.copy(snapshots / "yard.jpg", snapshots / "door.jpg")
            os.utime(snapshots / "door.jpg", (at.timestamp() + 5, at.timestamp() + 5))
            expect(page.locator('.cam[data-camera="door"] img')).not_to_have_attribute("src", old)

            page.click("#logout")
            expect(page.locator("#login-view")).to_be_visible()
    finally:
        stop()
    assert errors == []
    outside = [u for u in requests if not u.startswith(url)]
    assert outside == [], f"the page fetched from outside the agent: {outside}"
