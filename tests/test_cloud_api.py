"""Cloud API through FastAPI's TestClient on a fresh, migrated SQLite file per test: ingest, validation
(every bad input is a 4xx and stores nothing), auth matrix, idempotency, hot swap, results feed, export,
health and metrics, rate limit, OpenAPI, and a property-based junk-body test."""

from __future__ import annotations

import base64
import io
import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from benchmarks.cloud_fixtures import clip_message, fit_toy_classifier, toy_latents
from tinyact.cloud.app import create_app
from tinyact.cloud.config import CloudConfig
from tinyact.cloud.db.engine import make_engine, upgrade_database
from tinyact.cloud.db.schema import idempotency_keys, predictions
from tinyact.cloud.devices import add_device, revoke_device
from tinyact.wire import ClipsOut, ErrorOut, ResultsPage, encode_latent

DIM = 32
LABELS = ("walking", "running", "waving", "jumping")
ADMIN = "admin-secret"
VIEWER = "viewer-secret"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Classifiers on generated 32-d latents: two of the same encoder, one of another, one of another size."""
    root = tmp_path_factory.mktemp("models")
    return {
        "logreg": fit_toy_classifier(root / "logreg", kind="logreg", labels=LABELS, latent_dim=DIM, per_class=15).path,
        "dt": fit_toy_classifier(root / "dt", kind="dt", labels=LABELS, latent_dim=DIM, per_class=15).path,
        "other_encoder": fit_toy_classifier(root / "other", labels=LABELS, latent_dim=DIM, per_class=15, encoder_hash="enc-2").path,
        "other_dim": fit_toy_classifier(root / "dim16", labels=LABELS, latent_dim=16, per_class=15).path,
    }


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    """A migrated SQLite file, copied for each test (migrating from scratch every time is slower)."""
    path = tmp_path_factory.mktemp("template") / "cloud.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    engine.dispose()
    return path


class Cloud:
    """A running app (TestClient) with two devices."""

    def __init__(self, client: TestClient, db_url: str, keys: dict[str, str]) -> None:
        self.client = client
        self.db_url = db_url
        self.keys = keys
        self.engine = make_engine(db_url)

    def auth(self, device: str = "edge-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[device]}"}

    admin = {"Authorization": f"Bearer {ADMIN}"}
    viewer = {"Authorization": f"Bearer {VIEWER}"}

    def post(self, clips: list[dict], device: str = "edge-1"):
        # json.dumps, not httpx's json=: it must be able to send NaN, as a careless client would.
        body = json.dumps({"clips": clips})
        return self.client.post("/v1/clips", content=body, headers={**self.auth(device), "Content-Type": "application/json"})

    def count(self, table=predictions) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.fixture
def make_cloud(tmp_path, template_db, models):
    made = []

    def _make(model: str | None = "logreg", **settings) -> Cloud:
        db = tmp_path / f"cloud{len(made)}.db"
        shutil.copy(template_db, db)
        url = f"sqlite:///{db}"
        engine = make_engine(url)
        keys = {name: add_device(engine, name).key for name in ("edge-1", "edge-2")}
        engine.dispose()
        config = CloudConfig(db=url, model=models[model] if model else None, **settings)
        client = TestClient(create_app(config, admin_token=ADMIN, viewer_token=VIEWER))
        client.__enter__()
        cloud = Cloud(client, url, keys)
        made.append(cloud)
        return cloud

    yield _make
    for cloud in made:
        cloud.client.__exit__(None, None, None)
        cloud.engine.dispose()


@pytest.fixture
def cloud(make_cloud) -> Cloud:
    return make_cloud()


def latents(labels: list[int]) -> np.ndarray:
    return toy_latents(labels, DIM, len(LABELS), noise=0.3)


def clip(label: int = 0, **kwargs) -> dict:
    return clip_message(latents([label])[0], **kwargs)


# ---- ingest -----------------------------------------------------------------------------------------------
def test_clips_are_classified_stored_and_returned_in_order(cloud):
    x = latents([2, 0, 3, 1])
    clips = [
        clip_message(x[0], dtype="float16", camera_id="cam-1"),
        clip_message(x[1], dtype="float32", camera_id="cam-2"),
        clip_message(x[2], dtype="int8", camera_id="door.north:1"),
        clip_message(x[3], dtype=None, camera_id="cam_4"),  # plain JSON numbers (the paper's format)
    ]
    response = cloud.post(clips)
    assert response.status_code == 200, response.text
    out = ClipsOut.model_validate(response.json())
    assert [r.label for r in out.results] == ["waving", "walking", "jumping", "running"]
    assert [str(r.clip_id) for r in out.results] == [c["clip_id"] for c in clips]
    assert all(r.device_id == "edge-1" and r.model_version.startswith("logreg-") for r in out.results)
    assert all(len(r.top5) == 4 and r.top5[0].label == r.label and r.top5[0].score == r.score for r in out.results)
    assert all(r.top5[0].score >= r.top5[1].score >= r.top5[2].score for r in out.results)
    assert cloud.count() == 4
    with cloud.engine.connect() as connection:
        row = connection.execute(select(predictions).where(predictions.c.clip_id == uuid.UUID(clips[0]["clip_id"]))).mappings().one()
    assert row["label"] == "waving" and row["model_version"] == out.results[0].model_version
    assert row["captured_at"] == datetime.fromisoformat(clips[0]["captured_at"].replace("Z", "+00:00"))
    assert row["received_at"] >= row["captured_at"]


def _valid() -> dict:
    return clip(0)


def _latent_bytes(values, dtype="<f2") -> str:
    return base64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode()


BAD_CLIPS = {
    "wrong_latent_length": (lambda c: {**c, "latent": [0.1] * (DIM + 1)}, 422, "wrong_latent_size", "expects 32"),
    "nan_in_json_list": (lambda c: {**c, "latent": [float("nan")] * DIM}, 422, "bad_latent", "NaN"),
    "inf_in_float16": (lambda c: {**c, "latent": {"dtype": "float16", "data": _latent_bytes([np.inf] * DIM)}}, 422, "bad_latent", "NaN or Inf"),
    "bad_base64": (lambda c: {**c, "latent": {"dtype": "float16", "data": "!!!not base64"}}, 422, "bad_latent", "base64"),
    "partial_element": (lambda c: {**c, "latent": {"dtype": "float32", "data": base64.b64encode(b"abcde").decode()}}, 422, "bad_latent", "whole number"),
    "unknown_dtype": (lambda c: {**c, "latent": {"dtype": "float64", "data": _latent_bytes([0.0] * DIM, "<f8")}}, 422, "invalid_request", "latent"),
    "int8_without_scale": (lambda c: {**c, "latent": {"dtype": "int8", "data": _latent_bytes([1] * DIM, "i1")}}, 422, "bad_latent", "scale"),
    "int8_zero_scale": (lambda c: {**c, "latent": {"dtype": "int8", "data": _latent_bytes([1] * DIM, "i1"), "scale": 0}}, 422, "invalid_request", "scale"),
    "missing_clip_id": (lambda c: {k: v for k, v in c.items() if k != "clip_id"}, 422, "invalid_request", "clip_id"),
    "missing_camera_id": (lambda c: {k: v for k, v in c.items() if k != "camera_id"}, 422, "invalid_request", "camera_id"),
    "missing_captured_at": (lambda c: {k: v for k, v in c.items() if k != "captured_at"}, 422, "invalid_request", "captured_at"),
    "missing_latent": (lambda c: {k: v for k, v in c.items() if k != "latent"}, 422, "invalid_request", "latent"),
    "clip_id_not_uuid": (lambda c: {**c, "clip_id": "clip-7"}, 422, "invalid_request", "clip_id"),
    "camera_path": (lambda c: {**c, "camera_id": "../etc/passwd"}, 422, "invalid_request", "camera_id must be"),
    "camera_space": (lambda c: {**c, "camera_id": "cam 1"}, 422, "invalid_request", "camera_id must be"),
    "camera_empty": (lambda c: {**c, "camera_id": ""}, 422, "invalid_request", "camera_id"),
    "camera_too_long": (lambda c: {**c, "camera_id": "c" * 65}, 422, "invalid_request", "camera_id"),
    "camera_number": (lambda c: {**c, "camera_id": 7}, 422, "invalid_request", "camera_id"),
    "future_timestamp": (lambda c: {**c, "captured_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat()}, 422, "future_timestamp", "clock"),
    "naive_timestamp": (lambda c: {**c, "captured_at": "2026-01-01T10:00:00"}, 422, "naive_timestamp", "time zone"),
    "bad_timestamp": (lambda c: {**c, "captured_at": "yesterday"}, 422, "invalid_request", "captured_at"),
    "unknown_field": (lambda c: {**c, "frames": "raw video"}, 422, "invalid_request", "frames"),
    "latent_strings": (lambda c: {**c, "latent": ["a"] * DIM}, 422, "invalid_request", "latent"),
    "latent_empty": (lambda c: {**c, "latent": []}, 422, "bad_latent", "non-empty"),
    "latent_overflow": (lambda c: {**c, "latent": [1e39] * DIM}, 422, "bad_latent", "NaN or Inf"),
}


@pytest.mark.parametrize("case", sorted(BAD_CLIPS))
def test_each_bad_clip_gets_its_4xx_and_nothing_is_stored(cloud, case):
    mutate, status, code, words = BAD_CLIPS[case]
    good = _valid()
    response = cloud.post([good, mutate(_valid())])  # a good clip first: the request is all or nothing
    assert response.status_code == status, response.text
    body = ErrorOut.model_validate(response.json())
    assert body.error == code
    assert words in body.detail
    assert "clips[1]" in body.detail or "clips.1" in body.detail
    assert cloud.count() == 0


@pytest.mark.parametrize(
    ("raw", "headers", "status", "code"),
    [
        (b"{not json", {}, 422, "invalid_request"),
        (b"", {}, 422, "invalid_request"),
        (b"[]", {}, 422, "invalid_request"),
        (b'{"clips": []}', {}, 422, "invalid_request"),
        (b'{"clips": "x"}', {}, 422, "invalid_request"),
        (b'{"clips": [{}]}', {}, 422, "invalid_request"),
        (b"\xff\xfe\x00", {}, 422, "invalid_request"),
        (b"clips=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ],
)
def test_malformed_bodies_are_4xx(cloud, raw, headers, status, code):
    response = cloud.client.post("/v1/clips", content=raw, headers={**cloud.auth(), **headers})
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert cloud.count() == 0


def test_body_over_the_limit_is_413_and_too_many_clips_422(make_cloud):
    cloud = make_cloud(max_body_bytes=20_000, max_clips_per_request=3)
    big = [clip(0, dtype=None) for _ in range(30)]  # ~30 × 32 JSON floats ≈ 25 kB
    response = cloud.post(big)
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"
    # A chunked body without Content-Length is cut off while streaming, too.
    payload = json.dumps({"clips": big}).encode()

    def chunks():
        for i in range(0, len(payload), 4096):
            yield payload[i : i + 4096]

    response = cloud.client.post("/v1/clips", content=chunks(), headers=cloud.auth())
    assert response.status_code == 413
    response = cloud.post([clip(i % 4) for i in range(4)])
    assert response.status_code == 422 and response.json()["error"] == "too_many_clips" and "limit is 3" in response.json()["detail"]
    assert cloud.count() == 0
    assert cloud.post([clip(0)]).status_code == 200


def test_repeated_clip_is_answered_from_the_database_and_stored_once(cloud):
    first = clip(1)
    a = cloud.post([first]).json()["results"][0]
    b = cloud.post([first, clip(2)]).json()["results"]
    assert b[0] == a  # same stored result, same cursor
    assert cloud.count() == 2
    # The same id twice in one request is a client bug: 422, nothing stored.
    twice = cloud.post([clip(3), first, first])
    assert twice.status_code == 422 and twice.json()["error"] == "duplicate_clip_id"
    assert "clips[2]" in twice.json()["detail"]
    assert cloud.count() == 2
    # The same clip id from another device is another clip (ids are unique per device).
    other = cloud.post([first], device="edge-2").json()["results"][0]
    assert other["cursor"] != a["cursor"] and other["device_id"] == "edge-2"
    assert cloud.count() == 3


def test_idempotency_key_replays_the_first_answer(cloud):
    body = {"clips": [clip(0), clip(3)]}
    headers = {**cloud.auth(), "Idempotency-Key": "batch-0001"}
    first = cloud.client.post("/v1/clips", json=body, headers=headers)
    again = cloud.client.post("/v1/clips", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers.get("Idempotent-Replayed") == "true"
    assert cloud.count() == 2 and cloud.count(idempotency_keys) == 1
    reused = cloud.client.post("/v1/clips", json={"clips": [clip(1)]}, headers=headers)
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    # Keys are per device: edge-2 may use the same key for its own request.
    mine = cloud.client.post("/v1/clips", json={"clips": [clip(1)]}, headers={**cloud.auth("edge-2"), "Idempotency-Key": "batch-0001"})
    assert mine.status_code == 200 and mine.json()["results"][0]["device_id"] == "edge-2"
    assert cloud.count() == 3


# ---- auth -------------------------------------------------------------------------------------------------
def test_auth_matrix(cloud):
    c = cloud.client
    body = {"clips": [clip(0)]}
    assert c.post("/v1/clips", json=body).status_code == 401
    assert c.post("/v1/clips", json=body).headers["WWW-Authenticate"] == "Bearer"
    assert c.post("/v1/clips", json=body, headers={"Authorization": "Bearer tak_wrong"}).status_code == 401
    assert c.post("/v1/clips", json=body, headers={"Authorization": "Basic abc"}).status_code == 401
    # A missing key is refused before the body is even looked at.
    assert c.post("/v1/clips", content=b"junk").status_code == 401
    assert c.post("/v1/clips", json=body, headers=cloud.admin).status_code == 403
    assert c.post("/v1/clips", json=body, headers=cloud.viewer).status_code == 403
    # Results: own only.
    assert c.post("/v1/clips", json=body, headers=cloud.auth("edge-2")).status_code == 200
    assert c.get("/v1/results", headers=cloud.auth("edge-1")).json()["results"] == []
    assert c.get("/v1/results?device=edge-2", headers=cloud.auth("edge-1")).status_code == 403
    assert len(c.get("/v1/results?device=edge-2", headers=cloud.admin).json()["results"]) == 1
    # Admin endpoints need the admin token; the dashboard the admin or viewer token.
    for method, path in [("get", "/v1/admin/devices"), ("get", "/v1/export"), ("get", "/v1/admin/models"),
                         ("post", "/v1/admin/model")]:
        assert getattr(c, method)(path, headers=cloud.auth()).status_code == 403, path
        assert getattr(c, method)(path, headers=cloud.viewer).status_code == 403, path
        assert getattr(c, method)(path).status_code == 401, path
    assert c.get("/v1/dashboard/summary", headers=cloud.auth()).status_code == 403
    assert c.get("/v1/dashboard/summary", headers=cloud.viewer).status_code == 200
    assert c.get("/v1/dashboard/summary").status_code == 401
    # Revoked key: 401 at once on this replica.
    assert c.delete("/v1/admin/devices/edge-1", headers=cloud.admin).json()["active"] is False
    response = c.post("/v1/clips", json={"clips": [clip(0)]}, headers=cloud.auth("edge-1"))
    assert response.status_code == 401 and response.json()["error"] == "revoked"
    assert cloud.count() == 1


def test_revocation_outside_the_api_is_seen_after_the_key_cache_expires(make_cloud):
    cloud = make_cloud(auth_cache_s=0)
    assert cloud.post([clip(0)]).status_code == 200
    revoke_device(cloud.db_url, "edge-1")  # e.g. `tinyact cloud device revoke` on another machine
    assert cloud.post([clip(1)]).status_code == 401


def test_admin_api_is_off_without_a_token(tmp_path, template_db, models):
    db = tmp_path / "c.db"
    shutil.copy(template_db, db)
    app = create_app(CloudConfig(db=f"sqlite:///{db}", model=models["logreg"]), admin_token=None, viewer_token=None)
    app.state.service.admin_token = None  # even if the test environment sets TINYACT_ADMIN_TOKEN
    with TestClient(app) as client:
        response = client.get("/v1/admin/devices", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 401 and response.json()["error"] == "admin_disabled"


def test_device_admin_api(cloud):
    c = cloud.client
    added = c.post("/v1/admin/devices", json={"name": "edge-3"}, headers=cloud.admin)
    assert added.status_code == 201
    key = added.json()["key"]
    assert c.post("/v1/clips", json={"clips": [clip(0)]}, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert c.post("/v1/admin/devices", json={"name": "edge-3"}, headers=cloud.admin).status_code == 409
    assert c.post("/v1/admin/devices", json={"name": "bad name"}, headers=cloud.admin).status_code == 422
    names = [d["name"] for d in c.get("/v1/admin/devices", headers=cloud.admin).json()]
    assert names == ["edge-1", "edge-2", "edge-3"]
    assert all("key" not in d for d in c.get("/v1/admin/devices", headers=cloud.admin).json())
    assert c.delete("/v1/admin/devices/nobody", headers=cloud.admin).status_code == 404


def test_rate_limit_per_device(make_cloud):
    cloud = make_cloud(rate_limit_per_s=0.01, rate_limit_burst=2)
    assert cloud.post([clip(0)]).status_code == 200
    assert cloud.post([clip(0)]).status_code == 200
    limited = cloud.post([clip(0)])
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert cloud.post([clip(0)], device="edge-2").status_code == 200  # buckets are per device
    assert cloud.count() == 3


# ---- results feed -----------------------------------------------------------------------------------------
def test_results_feed_pages_with_a_cursor(cloud):
    for i in range(5):
        cloud.post([clip(i % 4), clip((i + 1) % 4)])
    cloud.post([clip(0)], device="edge-2")
    seen, cursor = [], 0
    while True:
        page = ResultsPage.model_validate(cloud.client.get(f"/v1/results?since={cursor}&limit=3", headers=cloud.auth()).json())
        if not page.results:
            assert page.next_cursor == cursor
            break
        seen += page.results
        cursor = page.next_cursor
    assert len(seen) == 10 and all(r.device_id == "edge-1" for r in seen)
    assert [r.cursor for r in seen] == sorted(r.cursor for r in seen)
    assert cloud.client.get("/v1/results?since=-1", headers=cloud.auth()).status_code == 422


# ---- model registry ---------------------------------------------------------------------------------------
def test_hot_swap_changes_the_model_version_of_new_predictions(cloud, models):
    c = cloud.client
    before = cloud.post([clip(2)]).json()["results"][0]
    swapped = c.post("/v1/admin/model", json={"path": str(models["dt"])}, headers=cloud.admin)
    assert swapped.status_code == 200, swapped.text
    assert swapped.json()["kind"] == "dt"
    after = cloud.post([clip(2)]).json()["results"][0]
    assert before["model_version"].startswith("logreg-") and after["model_version"].startswith("dt-")
    assert after["label"] == "waving"
    assert c.get("/v1/model", headers=cloud.auth()).json()["version"] == after["model_version"]
    history = c.get("/v1/admin/models", headers=cloud.admin).json()
    assert [m["kind"] for m in history] == ["logreg", "dt"] and history[1]["active_here"]


def test_swap_refuses_another_encoder_or_size_unless_allowed(cloud, models, tmp_path):
    c = cloud.client
    for name in ("other_encoder", "other_dim"):
        response = c.post("/v1/admin/model", json={"path": str(models[name])}, headers=cloud.admin)
        assert response.status_code == 409 and response.json()["error"] == "model_mismatch"
    assert c.post("/v1/admin/model", json={"path": str(tmp_path)}, headers=cloud.admin).status_code == 422
    assert cloud.post([clip(0)]).json()["results"][0]["model_version"].startswith("logreg-")
    allowed = c.post("/v1/admin/model", json={"path": str(models["other_dim"]), "allow_encoder_change": True}, headers=cloud.admin)
    assert allowed.status_code == 200 and allowed.json()["latent_dim"] == 16
    response = cloud.post([clip(0)])  # 32-d latents no longer fit
    assert response.status_code == 422 and "expects 16" in response.json()["detail"]


def test_without_a_model_clips_get_503_and_readyz_says_so(make_cloud, models):
    cloud = make_cloud(model=None)
    assert cloud.client.get("/healthz").status_code == 200
    ready = cloud.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["model"] is None and ready.json()["database"] == "ok"
    assert cloud.post([clip(0)]).status_code == 503
    assert cloud.client.post("/v1/admin/model", json={"path": str(models["logreg"])}, headers=cloud.admin).status_code == 200
    assert cloud.client.get("/readyz").status_code == 200
    assert cloud.post([clip(0)]).status_code == 200


def test_a_new_replica_takes_the_active_model_from_the_database(make_cloud, models):
    first = make_cloud()
    first.client.post("/v1/admin/model", json={"path": str(models["dt"])}, headers=first.admin)
    # Another replica on the same database, started without --model.
    app = create_app(CloudConfig(db=first.db_url), admin_token=ADMIN)
    with TestClient(app) as replica:
        assert replica.get("/v1/model", headers=first.admin).json()["kind"] == "dt"
    # A running replica follows a swap made elsewhere when it polls.
    second = create_app(CloudConfig(db=first.db_url), admin_token=ADMIN)
    with TestClient(second) as replica:
        first.client.post("/v1/admin/model", json={"path": str(models["logreg"])}, headers=first.admin)
        second.state.service._follow_active_model()
        assert replica.get("/v1/model", headers=first.admin).json()["kind"] == "logreg"


# ---- export -----------------------------------------------------------------------------------------------
def _seed(cloud: Cloud) -> list[dict]:
    out = []
    base = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    for i in range(12):
        message = clip(i % 4, camera_id=f"cam-{i % 2}", captured_at=base + timedelta(minutes=i))
        out += cloud.post([message], device="edge-1" if i < 9 else "edge-2").json()["results"]
    return out


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_round_trip(cloud, fmt):
    results = _seed(cloud)
    response = cloud.client.get(f"/v1/export?format={fmt}", headers=cloud.admin)
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    rows = _read_export(response.content, fmt)
    assert len(rows) == 12
    by_id = {r["clip_id"]: r for r in rows}
    for result in results:
        row = by_id[result["clip_id"]]
        assert row["label"] == result["label"] and row["camera"] == result["camera_id"]
        assert row["device"] == result["device_id"] and row["model_version"] == result["model_version"]
        assert abs(float(row["score"]) - result["score"]) < 1e-9
        assert row["top5"] == result["top5"]
        assert _time(row["captured_at"]) == _time(result["captured_at"])


def _time(value) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def _read_export(data: bytes, fmt: str) -> list[dict]:
    if fmt == "csv":
        import csv

        rows = list(csv.DictReader(io.StringIO(data.decode())))
        for row in rows:
            row["top5"] = json.loads(row["top5"])
        return rows
    if fmt == "jsonl":
        return [json.loads(line) for line in data.decode().splitlines()]
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data)).to_pylist()


def test_export_filters(cloud):
    _seed(cloud)
    get = lambda query: _read_export(cloud.client.get(f"/v1/export?format=jsonl&{query}", headers=cloud.admin).content, "jsonl")  # noqa: E731
    assert len(get("camera=cam-0")) == 6
    assert len(get("camera=edge-2/cam-1")) == 2
    assert {r["label"] for r in get("label=running")} == {"running"}
    assert len(get("device=edge-2")) == 3
    window = get("from=2026-11-24T10:03:00Z&to=2026-11-24T10:06:00Z")
    assert len(window) == 3 and all("10:03" <= r["captured_at"][11:16] < "10:06" for r in window)
    bad = cloud.client.get("/v1/export?from=soon", headers=cloud.admin)
    assert bad.status_code == 422 and "ISO 8601" in bad.json()["detail"]
    assert cloud.client.get("/v1/export?format=xlsx", headers=cloud.admin).status_code == 422


# ---- health, metrics, docs --------------------------------------------------------------------------------
def test_metrics_count_requests_clips_and_rejects(cloud):
    cloud.post([clip(0), clip(1)])
    cloud.post([{**clip(0), "latent": [0.0] * 3}])
    cloud.client.post("/v1/clips", json={"clips": [clip(0)]})
    text = cloud.client.get("/metrics").text
    assert 'tinyact_clips_classified_total{model_version="logreg-' in text
    assert 'tinyact_rejects_total{reason="wrong_latent_size"} 1.0' in text
    assert 'tinyact_rejects_total{reason="unauthorized"} 1.0' in text
    assert 'tinyact_http_requests_total{method="POST",route="/v1/clips",status="200"} 1.0' in text
    assert 'tinyact_http_request_duration_seconds_bucket{le="0.015",route="/v1/clips"}' in text
    assert "tinyact_batch_clips_count" in text and 'tinyact_model_info{kind="logreg"' in text


def test_openapi_documents_the_clip_schema(cloud):
    schema = cloud.client.get("/openapi.json").json()
    post = schema["paths"]["/v1/clips"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ClipsIn"
    components = schema["components"]["schemas"]
    assert {"ClipsIn", "ClipIn", "EncodedLatent", "ClipResult", "ErrorOut"} <= set(components)
    assert set(components["EncodedLatent"]["properties"]["dtype"]["enum"]) == {"float32", "float16", "int8"}
    assert "Idempotency-Key" in [p["name"] for p in post["parameters"]]
    assert {"401", "413", "422", "429"} <= set(post["responses"])
    assert cloud.client.get("/docs").status_code == 200


def test_unknown_routes_and_methods_get_json_errors(cloud):
    assert cloud.client.get("/v1/nothing").json()["error"] == "not_found"
    assert cloud.client.get("/v1/clips", headers=cloud.auth()).status_code == 405


# ---- property-based: junk never makes the service fail ----------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
clip_like = st.fixed_dictionaries(
    {},
    optional={
        "clip_id": st.uuids().map(str) | st.text(max_size=40),
        "camera_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,10}", fullmatch=True) | st.text(max_size=70),
        "captured_at": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()) | st.text(max_size=30) | st.integers(),
        "latent": st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=40)
        | st.fixed_dictionaries({"dtype": st.sampled_from(["float16", "float32", "int8", "x"]),
                                 "data": st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=20)},
                                optional={"scale": st.floats(), "zero_point": st.integers()})
        | json_values,
        "extra": json_values,
    },
)
bodies = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.lists(clip_like, max_size=4).map(lambda clips: json.dumps({"clips": clips}).encode())
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies)
def test_junk_bodies_never_get_a_5xx(cloud, body):
    response = cloud.client.post("/v1/clips", content=body, headers={**cloud.auth(), "Content-Type": "application/json"})
    assert response.status_code < 500, (body, response.text)
    if response.status_code != 200:
        assert response.json()["error"] and response.json()["detail"]


def test_encode_decode_contract_is_what_the_api_accepts(cloud):
    """The edge's encoder (tinyact.wire.encode_latent) and the cloud agree on every dtype."""
    x = latents([3])[0]
    for dtype in ("float32", "float16", "int8"):
        message = clip(3)
        message["latent"] = encode_latent(x, dtype).model_dump(exclude_none=True)
        assert cloud.post([message]).json()["results"][0]["label"] == "jumping"
