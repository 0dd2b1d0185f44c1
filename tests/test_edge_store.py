"""EdgeStore (the edge's SQLite database) and EdgeConfig validation."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tinyact.edge.config import EXAMPLE_CONFIG, EdgeConfig
from tinyact.edge.store import EdgeStore
from tinyact.errors import ConfigError
from tinyact.retry import backoff_delay
from tinyact.wire import ClipResult, LabelScore


def _base(**extra):
    data = {"device_id": "edge-1", "encoder": {"checkpoint": "m.pt"}, "cameras": [{"id": "cam-1", "source": "a.mp4"}]}
    data.update(extra)
    return data


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError) as error:
        EdgeConfig.from_dict(_base(schedule={"intervall_s": 5}))
    assert "schedule.intervall_s: unknown key" in str(error.value)
    with pytest.raises(ConfigError) as error:
        EdgeConfig.from_dict(_base(cameras=[{"id": "cam 1", "source": "a.mp4"}]))
    assert "cameras.0.id" in str(error.value)
    with pytest.raises(ConfigError) as error:
        EdgeConfig.from_dict(_base(cameras=[{"id": "c", "source": "a"}, {"id": "c", "source": "b"}]))
    assert "used twice" in str(error.value)
    with pytest.raises(ConfigError) as error:
        EdgeConfig.from_dict(_base(device_key="tak_secret"))
    assert "must not be in the config file" in str(error.value) and "TINYACT_DEVICE_KEY" in str(error.value)
    with pytest.raises(ConfigError) as error:
        EdgeConfig.from_dict(_base(transport={"kind": "mqtt"}))
    assert "mqtt_url" in str(error.value)
    with pytest.raises(ConfigError) as error:
        EdgeConfig.from_dict(_base(web={"address": "localhost"}))
    assert "web.address" in str(error.value)
    (tmp_path / "bad.yaml").write_text("device_id: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        EdgeConfig.from_yaml(tmp_path / "bad.yaml")


def test_example_config_loads_and_secrets_come_from_env(tmp_path, monkeypatch):
    path = tmp_path / "edge.yaml"
    path.write_text(EXAMPLE_CONFIG)
    cfg = EdgeConfig.from_yaml(path)
    assert cfg.schedule.interval_s == 10 and cfg.schedule.frames_per_clip is None
    assert cfg.cameras[0].kind == "file" and cfg.transport.wire_dtype == "float16"
    assert EdgeConfig.from_dict(_base(cameras=[{"id": "c", "source": "rtsp://h/s"}, {"id": "d", "source": "/dev/video0"}])).cameras[1].kind == "v4l2"
    monkeypatch.delenv("TINYACT_DEVICE_KEY", raising=False)
    with pytest.raises(ConfigError, match="TINYACT_DEVICE_KEY is not set"):
        cfg.device_key()
    monkeypatch.setenv("TINYACT_DEVICE_KEY", "tak_abc")
    assert cfg.device_key() == "tak_abc"
    monkeypatch.delenv("TINYACT_DEVICE_KEY")
    (tmp_path / "key").write_text("tak_file\n")
    assert EdgeConfig.from_dict(_base(device_key_file=str(tmp_path / "key"))).device_key() == "tak_file"


def _result(clip_id, label="walking", camera="cam-1", at=None):
    return ClipResult(clip_id=clip_id, camera_id=camera, captured_at=at or datetime.now(UTC), label=label, score=0.8,
                      top5=[LabelScore(label=label, score=0.8)], model_version="m-1", cursor=1)


def test_outbox_survives_reopen_and_delivery_removes(tmp_path):
    store = EdgeStore(tmp_path / "edge.db")
    now = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    store.enqueue([(c, "cam-1" if i % 2 else "cam-2", now + timedelta(seconds=i), 12.5, f'{{"clip_id":"{c}"}}')
                   for i, c in enumerate(ids)])
    store.close()
    store = EdgeStore(tmp_path / "edge.db")  # a restart
    assert [item.clip_id for item in store.due(10)] == ids
    assert store.counts() == {"captured": 5, "delivered": 0, "pending": 5, "held": 0, "dropped": 0, "rejected": 0,
                              "discarded": 0, "results": 0, "send_failures": 0}
    assert store.mark_delivered(ids[:2]) == 2
    assert store.mark_delivered(ids[:2]) == 0  # a repeated ack changes nothing
    store.record_results([_result(uuid.UUID(ids[2]), "running", "cam-2", now + timedelta(seconds=2))])
    counts = store.counts()
    assert (counts["delivered"], counts["pending"], counts["results"]) == (3, 2, 1)
    first = store.recent(10)[2]["result_at"]
    time.sleep(0.01)
    store.record_results([_result(uuid.UUID(ids[2]), "running", "cam-2", now + timedelta(seconds=2))])  # a repeat
    assert store.recent(10)[2]["result_at"] == first and store.counts()["results"] == 1
    latest = store.latest_per_camera()
    assert latest["cam-2"]["label"] == "running" and latest["cam-1"]["label"] is None
    recent = store.recent(3)
    assert [r["clip_id"] for r in recent] == ids[::-1][:3] and recent[2]["label"] == "running"
    assert recent[0]["state"] == "pending" and recent[0]["captured_at"].endswith("Z")


def test_backoff_and_bound(tmp_path):
    store = EdgeStore(tmp_path / "edge.db")
    ids = [str(uuid.uuid4()) for _ in range(6)]
    now = datetime.now(UTC)
    dropped = store.enqueue([(c, "cam-1", now, None, "{}") for c in ids[:4]], max_pending=4)
    dropped += store.enqueue([(c, "cam-1", now, None, "{}") for c in ids[4:]], max_pending=4)
    assert dropped == 2
    assert store.pending_ids() == ids[2:]  # the oldest went first
    counts = store.counts()
    assert counts["dropped"] == 2 and counts["captured"] == 6 and counts["pending"] == 4
    assert {r["state"] for r in store.recent(10) if r["clip_id"] in ids[:2]} == {"dropped"}
    delay = store.mark_failed(ids[2:], "connection refused", base_s=1.0, max_s=8.0)
    assert 0.5 <= delay <= 1.0 and store.due(10) == []
    assert 0 < store.next_attempt_in() <= 1.0
    assert all(1 <= backoff_delay(2, 1, 8) <= 2 for _ in range(20))
    assert all(4 <= backoff_delay(10, 1, 8) <= 8 for _ in range(20))
    assert store.defer(ids[2:4], 5.0, max_s=40.0) == 10.0  # second attempt of these: 5 s doubled
    assert store.defer(ids[2:4], 5.0, max_s=40.0) == 20.0
    store.results_cursor = 42
    assert EdgeStore(tmp_path / "edge.db").results_cursor == 42


def test_prune_removes_old_dropped_and_rejected_rows_too(tmp_path):
    store = EdgeStore(tmp_path / "edge.db")
    old = datetime.now(UTC) - timedelta(days=10)
    ids = [str(uuid.uuid4()) for _ in range(6)]
    store.enqueue([(c, "cam-1", old + timedelta(seconds=i), 1.0, f'{{"clip_id":"{c}"}}') for i, c in enumerate(ids)],
                  max_pending=4)  # the two oldest are dropped
    store.mark_delivered(ids[2:3])
    store.reject({ids[3]: "wrong_latent_size"})
    fresh = str(uuid.uuid4())
    store.enqueue([(fresh, "cam-1", datetime.now(UTC), 1.0, f'{{"clip_id":"{fresh}"}}')])
    before = store.counts()
    assert store.prune(datetime.now(UTC) - timedelta(days=1)) == 4  # delivered, 2 dropped, rejected
    assert {r["clip_id"] for r in store.recent(10)} == {ids[4], ids[5], fresh}  # pending rows stay
    assert store.counts() == before  # pruned rows still counted (captured, delivered, dropped, rejected)
