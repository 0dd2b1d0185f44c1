"""The service under a real uvicorn (thread and process), concurrency: racing duplicates, micro-batching,
hot swap under load; the dashboard queries (timeline buckets, unusual activity)."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from benchmarks.cloud_fixtures import clip_message, fit_toy_classifier, toy_latents
from tinyact.cloud import analytics
from tinyact.cloud.batcher import MicroBatcher
from tinyact.cloud.db.engine import make_engine, upgrade_database
from tinyact.cloud.db.schema import predictions
from tinyact.cloud.devices import add_device
from tinyact.cloud.registry import ModelRegistry
from tinyact.cloud.server import serve_in_background
from tinyact.cloud.store import CameraIds, NewPrediction, store_predictions

DIM = 32
LABELS = ("walking", "running", "waving", "jumping")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        kind: fit_toy_classifier(root / kind, kind=kind, labels=LABELS, latent_dim=DIM, per_class=15).path
        for kind in ("logreg", "dt")
    }


def latent(label: int) -> np.ndarray:
    return toy_latents([label], DIM, len(LABELS), noise=0.3, rng=np.random.default_rng())[0]


def count_rows(db_url: str) -> int:
    engine = make_engine(db_url)
    with engine.connect() as connection:
        n = connection.execute(select(func.count()).select_from(predictions)).scalar_one()
    engine.dispose()
    return n


def test_racing_duplicates_store_one_row(tmp_path, models):
    with serve_in_background(models["logreg"], tmp_path / "c.db", admin_token="adm") as cloud:
        key = cloud.add_device("edge-1")
        message = clip_message(latent(1))
        headers = {"Authorization": f"Bearer {key}"}

        def post(_):
            with httpx.Client(timeout=30) as client:
                return client.post(f"{cloud.url}/v1/clips", json={"clips": [message]}, headers=headers)

        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(post, range(24)))
        assert {r.status_code for r in responses} == {200}
        results = [r.json()["results"][0] for r in responses]
        assert all(r == results[0] for r in results)  # every racer got the one stored row
        assert results[0]["label"] == "running"
        assert count_rows(cloud.db_url) == 1


def test_hot_swap_under_load_fails_no_request(tmp_path, models):
    with serve_in_background(models["logreg"], tmp_path / "c.db", admin_token="adm", batch_window_ms=1) as cloud:
        key = cloud.add_device("edge-1")
        stop = False
        seen: list[tuple[int, str]] = []

        def load() -> None:
            with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
                while not stop:
                    r = client.post(f"{cloud.url}/v1/clips", json={"clips": [clip_message(latent(2)) for _ in range(4)]})
                    seen.append((r.status_code, r.json()["results"][0]["model_version"] if r.status_code == 200 else r.text))

        with ThreadPoolExecutor(3) as pool:
            workers = [pool.submit(load) for _ in range(3)]
            with httpx.Client(timeout=60, headers=cloud.admin_headers()) as admin:
                for kind in ("dt", "logreg", "dt"):
                    while len(seen) < 5:
                        time.sleep(0.01)
                    before = len(seen)
                    assert admin.post(f"{cloud.url}/v1/admin/model", json={"path": str(models[kind])}).status_code == 200
                    while len(seen) < before + 5:
                        time.sleep(0.01)
            stop = True
            for worker in workers:
                worker.result()
        statuses = {status for status, _ in seen}
        versions = [v for _, v in seen]
        assert statuses == {200}, [s for s in seen if s[0] != 200][:3]
        assert {v.split("-")[0] for v in versions} == {"logreg", "dt"}
        assert versions[-1].startswith("dt-")


def test_micro_batcher_groups_concurrent_requests_and_splits_results(models):
    registry = ModelRegistry()
    model = registry.load(models["logreg"])
    batches: list[tuple[int, int]] = []
    batcher = MicroBatcher(registry, window_s=0.05, max_rows=1000, on_batch=lambda r, c, s: batches.append((r, c)))
    parts = [toy_latents([i % 4] * (i + 1), DIM, len(LABELS), noise=0.3) for i in range(10)]  # 1..10 clips each

    async def run():
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.classify(x) for x in parts))
        finally:
            await batcher.stop()

    outputs = asyncio.run(run())
    assert sum(r for r, _ in batches) == 10 and sum(c for _, c in batches) == 55
    assert len(batches) < 10  # requests were classified together
    for x, (probabilities, used) in zip(parts, outputs, strict=True):
        assert used is model
        # float32 latents: a stacked batch may sum in another order than one request alone (BLAS blocking).
        np.testing.assert_allclose(probabilities, model.predict_proba(x), rtol=1e-5)
    # Off: one call per request.
    batches.clear()
    unbatched = MicroBatcher(registry, window_s=0, on_batch=lambda r, c, s: batches.append((r, c)))

    async def run_off():
        out = await asyncio.gather(*(unbatched.classify(x) for x in parts))
        await unbatched.stop()
        return out

    asyncio.run(run_off())
    assert len(batches) == 10


@pytest.mark.slow
def test_serve_in_a_separate_process_with_two_workers(tmp_path, models):
    with serve_in_background(models["logreg"], tmp_path / "c.db", admin_token="adm", mode="process", workers=2) as cloud:
        assert cloud.process is not None and cloud.process.poll() is None
        key = cloud.add_device("edge-1")
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
            for _ in range(6):
                r = client.post(f"{cloud.url}/v1/clips", json={"clips": [clip_message(latent(3))]})
                assert r.status_code == 200 and r.json()["results"][0]["label"] == "jumping"
            metrics = client.get(f"{cloud.url}/metrics").text
        # Multiprocess metrics: whichever worker answers /metrics reports all six clips.
        total = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                    if line.startswith("tinyact_clips_classified_total{"))
        assert total == 6
    assert cloud.process.poll() is not None  # stopped on exit


# ---- dashboard queries ------------------------------------------------------------------------------------
def _store(engine, device_id: int, camera: str, label: str, at: datetime, ids: CameraIds) -> None:
    row = NewPrediction(uuid.uuid4(), camera, at, label, 0.9, [{"label": label, "score": 0.9}], "m-1")
    store_predictions(engine, device_id, "edge-1", [row], ids)


def seed_history(engine, now: datetime) -> None:
    """cam-a: a week of mostly walking with some running; in the last 15 min a fall and a burst of running."""
    add_device(engine, "edge-1")
    ids = CameraIds()
    for hour in range(1, 24 * 7, 2):
        _store(engine, 1, "cam-a", "walking", now - timedelta(hours=hour), ids)
        if hour % 10 == 1:
            _store(engine, 1, "cam-a", "running", now - timedelta(hours=hour, minutes=30), ids)
    _store(engine, 1, "cam-a", "falling", now - timedelta(minutes=3), ids)
    for minute in range(8):
        _store(engine, 1, "cam-a", "running", now - timedelta(minutes=minute + 1), ids)
    _store(engine, 1, "cam-b", "walking", now - timedelta(minutes=5), ids)  # a new camera: nothing is unusual yet


def test_unusual_activity_finds_rare_actions_and_spikes(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade_database(engine)
    now = datetime.now(UTC)
    seed_history(engine, now)
    items = analytics.unusual(engine, now)
    found = {(i["camera"], i["label"], i["kind"]) for i in items}
    assert found == {("cam-a", "falling", "rare"), ("cam-a", "running", "spike")}
    assert items[0]["label"] == "falling" and "rare" in items[0]["message"]
    engine.dispose()


def test_timeline_buckets_and_camera_summary(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade_database(engine)
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    add_device(engine, "edge-1")
    ids = CameraIds()
    for minute, label in [(1, "walking"), (2, "walking"), (7, "running"), (12, "walking"), (61, "waving")]:
        _store(engine, 1, "cam-a" if minute < 60 else "cam-b", label, now - timedelta(minutes=minute), ids)
    line = analytics.timeline(engine, now - timedelta(minutes=30), now, 300)
    assert line["bucket_s"] == 300 and len(line["t"]) == 6
    assert list(line["series"]) == ["walking", "running"]  # largest total first; "waving" is outside the range
    assert line["series"]["walking"] == [0, 0, 0, 1, 0, 2]
    assert line["series"]["running"] == [0, 0, 0, 0, 1, 0]
    assert sum(line["series"]["walking"]) + sum(line["series"]["running"]) == 4
    cams = analytics.camera_summary(engine, now - timedelta(minutes=30))
    assert [(c["camera"], c["count"], c["last_label"]) for c in cams] == [("cam-a", 4, "walking"), ("cam-b", 0, "waving")]
    assert analytics.nice_bucket(3600, 60) == 60 and analytics.nice_bucket(7 * 86400, 60) == 10800
    engine.dispose()


def test_group_writer_commits_concurrent_requests_together(tmp_path):
    from tinyact.cloud.store import GroupWriter

    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade_database(engine)
    add_device(engine, "edge-1")
    add_device(engine, "edge-2")
    writer = GroupWriter(engine, CameraIds())
    now = datetime.now(UTC)

    def row(clip_id, label="walking"):
        return NewPrediction(clip_id, "cam-1", now, label, 0.9, [{"label": label, "score": 0.9}], "m-1")

    shared = uuid.uuid4()
    jobs = [(1, "edge-1", [row(uuid.uuid4()) for _ in range(3)]) for _ in range(20)]
    jobs += [(1, "edge-1", [row(shared, "running")]), (1, "edge-1", [row(shared, "waving")]),  # same clip twice
             (2, "edge-2", [row(shared, "jumping")])]  # the same id from another device is another clip

    async def run():
        writer.start()
        try:
            return await asyncio.gather(*(writer.store(*job) for job in jobs))
        finally:
            await writer.stop()

    results = asyncio.run(run())
    assert writer.groups < len(jobs)  # grouped into fewer transactions
    assert count_rows(f"sqlite:///{tmp_path / 'c.db'}") == 62
    first, second, other = (r[0][shared] for r in results[-3:])
    assert first == second and first.label == "running"  # the repeat gets the stored row, not its own label
    assert results[-3][1] == {shared} and results[-2][1] == set()
    assert other.label == "jumping" and other.id != first.id
    ids = [s.id for r in results[:20] for s in r[0].values()]
    assert len(set(ids)) == 60
    engine.dispose()
