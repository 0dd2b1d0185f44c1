"""The edge database's Alembic migrations: files written before migrations open, upgrade and keep every row."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tinyact.edge.schema import HEAD, metadata, open_engine
from tinyact.edge.store import EdgeStore

# The tables exactly as SQLAlchemy's create_all wrote them before the edge had migrations.
CAPTURES = """CREATE TABLE captures (clip_id VARCHAR(36) NOT NULL, camera_id VARCHAR(64) NOT NULL,
    captured_at FLOAT NOT NULL, encode_ms FLOAT, state VARCHAR(16) NOT NULL, delivered_at FLOAT,
    label VARCHAR(200), score FLOAT, top5 TEXT, model_version VARCHAR(200), result_at FLOAT, PRIMARY KEY (clip_id))"""
OUTBOX_COLUMNS = """seq INTEGER NOT NULL, clip_id VARCHAR(36) NOT NULL, camera_id VARCHAR(64) NOT NULL,
    message TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at FLOAT NOT NULL, last_error TEXT"""
OUTBOX_FIRST = f"CREATE TABLE outbox ({OUTBOX_COLUMNS}, PRIMARY KEY (seq), UNIQUE (clip_id))"
OUTBOX_ENCODER = (f"CREATE TABLE outbox ({OUTBOX_COLUMNS}, encoder_hash VARCHAR(200), held VARCHAR(32), "
                  "PRIMARY KEY (seq), UNIQUE (clip_id))")
REST = [
    "CREATE INDEX ix_captures_camera_id ON captures (camera_id)",
    "CREATE INDEX ix_captures_captured_at ON captures (captured_at)",
    "CREATE TABLE counters (name VARCHAR(64) NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (name))",
    'CREATE TABLE meta ("key" VARCHAR(64) NOT NULL, value TEXT, PRIMARY KEY ("key"))',
]


def _legacy_db(path: Path, outbox_ddl: str, with_encoder: bool) -> list[str]:
    """A database as an agent without migrations left it: 3 delivered captures with results, 4 in the outbox
    (one of them held when the schema has the column), counters and the results cursor. Returns the clip ids."""
    ids = [str(uuid.uuid4()) for _ in range(7)]
    db = sqlite3.connect(path)
    for ddl in (CAPTURES, outbox_ddl, *REST):
        db.execute(ddl)
    for i, clip_id in enumerate(ids):
        delivered = i < 3
        db.execute("INSERT INTO captures (clip_id, camera_id, captured_at, encode_ms, state, delivered_at, label, score,"
                   " top5, model_version, result_at) VALUES (?, 'cam-1', ?, 12.5, ?, ?, ?, ?, ?, ?, ?)",
                   (clip_id, 1_700_000_000.0 + i, "delivered" if delivered else "pending",
                    1_700_000_100.0 if delivered else None, "wave" if delivered else None, 0.9 if delivered else None,
                    '[{"label": "wave", "score": 0.9}]' if delivered else None, "v1" if delivered else None,
                    1_700_000_101.0 if delivered else None))
        if not delivered:
            message = f'{{"clip_id":"{clip_id}","camera_id":"cam-1"}}'
            if with_encoder:
                db.execute("INSERT INTO outbox (clip_id, camera_id, message, attempts, next_attempt_at, last_error,"
                           " encoder_hash, held) VALUES (?, 'cam-1', ?, 1, 0.0, 'refused', 'enc-a', ?)",
                           (clip_id, message, "encoder_mismatch" if i == 3 else None))
            else:
                db.execute("INSERT INTO outbox (clip_id, camera_id, message, attempts, next_attempt_at, last_error)"
                           " VALUES (?, 'cam-1', ?, 1, 0.0, 'timeout')", (clip_id, message))
    db.executemany("INSERT INTO counters (name, value) VALUES (?, ?)", [("dropped", 2), ("send_failures", 5)])
    db.execute("INSERT INTO meta (\"key\", value) VALUES ('results_cursor', '41')")
    db.commit()
    db.close()
    return ids


def _revision(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def test_a_database_written_before_migrations_opens_and_keeps_every_row(tmp_path):
    path = tmp_path / "edge.db"
    ids = _legacy_db(path, OUTBOX_ENCODER, with_encoder=True)
    store = EdgeStore(path)
    assert _revision(path) == HEAD
    counts = store.counts()
    assert counts["captured"] == 7 and counts["delivered"] == 3 and counts["pending"] == 4 and counts["held"] == 1
    assert counts["dropped"] == 2 and counts["send_failures"] == 5 and counts["results"] == 3
    assert store.pending_ids() == ids[3:] and [item.clip_id for item in store.due(10)] == ids[4:]
    assert store.held_summary()[0]["encoder_hash"] == "enc-a" and store.results_cursor == 41
    assert {row["clip_id"] for row in store.recent(10)} == set(ids)
    assert store.recent(10)[-1]["top5"] == [{"label": "wave", "score": 0.9}]
    store.close()
    EdgeStore(path).close()  # opening again at the head changes nothing
    assert _revision(path) == HEAD and EdgeStore(path).counts() == counts


def test_the_first_schema_gains_the_encoder_columns_and_its_clips_are_sent_as_before(tmp_path):
    path = tmp_path / "edge.db"
    ids = _legacy_db(path, OUTBOX_FIRST, with_encoder=False)
    store = EdgeStore(path)
    assert _revision(path) == HEAD
    assert [item.clip_id for item in store.due(10)] == ids[3:]  # NULL held: sendable
    assert store.outbox_encoders(ids[3:]) == {None} and store.counts()["captured"] == 7
    store.enqueue([(str(uuid.uuid4()), "cam-1", 1_700_000_010.0, 1.0, "{}")], encoder_hash="enc-b")
    assert store.counts()["pending"] == 5


def test_migrations_from_scratch_build_the_tables_the_code_declares(tmp_path):
    EdgeStore(tmp_path / "edge.db").close()
    engine = open_engine(tmp_path / "edge.db")
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    engine.dispose()
