"""The same service on PostgreSQL (127.0.0.1:5432, database ``test``), each run in its own schema; and the
Alembic migrations on both backends. Skipped with the reason when PostgreSQL does not answer."""

from __future__ import annotations

import io
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select

from benchmarks.cloud_fixtures import (
    clip_message,
    fit_toy_classifier,
    postgres_base_url,
    postgres_schema,
    toy_latents,
)
from tinyact.cloud import analytics
from tinyact.cloud.app import create_app
from tinyact.cloud.config import CloudConfig
from tinyact.cloud.db.engine import current_revision, head_revision, make_engine, upgrade_database
from tinyact.cloud.db.schema import Base, predictions
from tinyact.cloud.devices import add_device
from tinyact.cloud.export import export_to_file

DIM = 32
LABELS = ("walking", "running", "waving", "jumping")


@pytest.fixture(scope="module")
def pg_base():
    url, why = postgres_base_url()
    if url is None:
        pytest.skip(f"PostgreSQL tests skipped: {why}")
    return url


@pytest.fixture
def pg_url(pg_base):
    with postgres_schema(pg_base) as url:
        yield url


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return fit_toy_classifier(tmp_path_factory.mktemp("m") / "logreg", labels=LABELS, latent_dim=DIM, per_class=15).path


def _migrated_matches_models(url: str) -> list:
    engine = make_engine(url)
    upgrade_database(engine)
    upgrade_database(engine)  # a second run is a no-op
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert {"devices", "cameras", "predictions", "model_versions", "idempotency_keys"} <= tables
    return diff


def test_migrations_build_exactly_the_model_schema_on_sqlite(tmp_path):
    assert _migrated_matches_models(f"sqlite:///{tmp_path / 'c.db'}") == []


def test_migrations_build_exactly_the_model_schema_on_postgres(pg_url):
    assert _migrated_matches_models(pg_url) == []


def test_service_on_postgres(pg_url, model, tmp_path):
    engine = make_engine(pg_url)
    upgrade_database(engine)
    keys = {name: add_device(engine, name).key for name in ("edge-1", "edge-2")}
    app = create_app(CloudConfig(db=pg_url, model=model), admin_token="adm", viewer_token="view")
    admin = {"Authorization": "Bearer adm"}
    with TestClient(app) as client:
        def post(clips, device="edge-1", **headers):
            return client.post("/v1/clips", json={"clips": clips}, headers={"Authorization": f"Bearer {keys[device]}", **headers})

        base = datetime.now(UTC) - timedelta(minutes=30)
        x = toy_latents([0, 1, 2, 3] * 3, DIM, len(LABELS), noise=0.3)
        clips = [clip_message(v, camera_id=f"cam-{i % 2}", captured_at=base + timedelta(minutes=i)) for i, v in enumerate(x)]
        first = post(clips)
        assert first.status_code == 200, first.text
        assert [r["label"] for r in first.json()["results"]] == list(LABELS) * 3
        # Idempotent repeat, racing repeats, and an Idempotency-Key replay.
        assert post(clips[:2]).json()["results"] == first.json()["results"][:2]
        extra = clip_message(x[0], camera_id="cam-0")
        with ThreadPoolExecutor(8) as pool:
            racers = list(pool.map(lambda _: post([extra]).json()["results"][0], range(16)))
        assert all(r == racers[0] for r in racers)
        keyed = post([clip_message(x[1])], **{"Idempotency-Key": "k1"})
        assert post([clip_message(x[1])], **{"Idempotency-Key": "k1"}).status_code == 422  # other body, same key
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(predictions)).scalar_one() == 14
        assert keyed.status_code == 200
        # Bad input stores nothing.
        bad = post([clip_message(x[0]), {**clip_message(x[0]), "latent": [0.0] * 5}])
        assert bad.status_code == 422
        # Results feed, own only.
        page = client.get("/v1/results?since=0&limit=100", headers={"Authorization": f"Bearer {keys['edge-1']}"}).json()
        assert len(page["results"]) == 14 and page["next_cursor"] == page["results"][-1]["cursor"]
        assert client.get("/v1/results?device=edge-1", headers={"Authorization": f"Bearer {keys['edge-2']}"}).status_code == 403
        # Dashboard queries use PostgreSQL's own SQL for time buckets.
        line = client.get("/v1/dashboard/timeline?hours=1", headers=admin).json()
        assert sum(sum(v) for v in line["series"].values()) == 14
        summary = client.get("/v1/dashboard/summary", headers={"Authorization": "Bearer view"}).json()
        assert {c["camera"]: c["count"] for c in summary["cameras"]} == {"cam-0": 7, "cam-1": 7}
        latest = client.get("/v1/dashboard/latest?limit=5", headers=admin).json()
        assert len(latest["rows"]) == 5 and latest["cursor"] == page["next_cursor"]
        # Streamed export over HTTP and offline.
        exported = client.get("/v1/export?format=jsonl&camera=cam-1", headers=admin)
        rows = [json.loads(line) for line in exported.text.splitlines()]
        assert len(rows) == 7 and {r["camera"] for r in rows} == {"cam-1"}
    out = tmp_path / "all.parquet"
    assert export_to_file(engine, out, row_filter=analytics.RowFilter(label="walking"), chunk=2) == 4
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(out.read_bytes()))
    assert table.num_rows == 4 and set(table.column("label").to_pylist()) == {"walking"}
    assert pq.ParquetFile(out).num_row_groups == 2  # streamed in chunks of 2 rows
    assert all(uuid.UUID(c) for c in table.column("clip_id").to_pylist())
    engine.dispose()


def test_hardening_on_postgresql(pg_url, model):
    """Camera limit, one-query dashboard summary, idempotency-key reservation and key rotation on PostgreSQL."""
    from tinyact.cloud.devices import rotate_device

    engine = make_engine(pg_url)
    upgrade_database(engine)
    key = add_device(engine, "edge-1").key
    with TestClient(create_app(CloudConfig(db=pg_url, model=model, max_cameras_per_device=2), viewer_token="viewer-x")) as c:
        auth = {"Authorization": f"Bearer {key}"}

        def clip(camera: str, **kw) -> dict:
            return clip_message(toy_latents([0], DIM, len(LABELS), noise=0.3)[0], camera_id=camera, **kw)

        assert c.post("/v1/clips", json={"clips": [clip("a"), clip("b")]}, headers=auth).status_code == 200
        refused = c.post("/v1/clips", json={"clips": [clip("c")]}, headers=auth)
        assert refused.status_code == 422 and refused.json()["error"] == "too_many_cameras"
        summary = c.get("/v1/dashboard/summary", headers={"Authorization": "Bearer viewer-x"}).json()
        assert [(s["camera"], s["count"]) for s in summary["cameras"]] == [("a", 1), ("b", 1)]
        assert all(s["last_label"] == "walking" for s in summary["cameras"])
        body = {"clips": [clip("a")]}
        first = c.post("/v1/clips", json=body, headers={**auth, "Idempotency-Key": "k"})
        again = c.post("/v1/clips", json=body, headers={**auth, "Idempotency-Key": "k"})
        assert first.status_code == again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
        other = c.post("/v1/clips", json={"clips": [clip("b")]}, headers={**auth, "Idempotency-Key": "k"})
        assert other.status_code == 422
        new_key = rotate_device(pg_url, "edge-1").key
        assert c.post("/v1/clips", json={"clips": [clip("a")]}, headers=auth).status_code == 401
        assert c.post("/v1/clips", json={"clips": [clip("a")]}, headers={"Authorization": f"Bearer {new_key}"}).status_code == 200
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(predictions)).scalar_one() == 4
    engine.dispose()
