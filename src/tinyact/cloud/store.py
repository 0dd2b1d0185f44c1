"""Writing predictions and reading them back for one device (the hot path of ``POST /v1/clips``).

Idempotency rests on the database, not on a read-then-write check: new rows are inserted with
``INSERT … ON CONFLICT (device_id, clip_id) DO NOTHING RETURNING id``; the clips that came back without an
id were stored before (by this request's earlier try, or by another replica a moment ago) and their stored
rows are read in the same transaction. Two concurrent requests with the same clip therefore store one row
and answer with the same result.

Results-feed ordering: ``predictions.id`` is the cursor of ``GET /v1/results?since=``. On PostgreSQL, ids
are handed out at insert time but become visible at commit, so a reader could see id 11 before id 10
commits and skip 10 for good. Inserts of one device therefore take a transaction-scoped advisory lock on that
device, which makes one device's ids commit in order (SQLite's single writer gives the same for free).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite

from tinyact.cloud.db.engine import write_tx
from tinyact.cloud.db.schema import cameras, devices, idempotency_keys, predictions

_FEED_LOCK_NAMESPACE = 0x7A1A  # first key of the per-device advisory lock (the second is the device id)


@dataclass(frozen=True)
class NewPrediction:
    """A classified clip about to be stored."""

    clip_id: uuid.UUID
    camera: str
    captured_at: datetime
    label: str
    score: float
    top5: list[dict[str, Any]]
    model_version: str


@dataclass(frozen=True)
class StoredPrediction:
    """A prediction as stored (``id`` is its results-feed cursor)."""

    id: int
    device: str
    camera: str
    clip_id: uuid.UUID
    captured_at: datetime
    received_at: datetime
    label: str
    score: float
    top5: list[dict[str, Any]]
    model_version: str


def _insert(connection: Connection, table):
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


class CameraIds:
    """``(device id, camera name) -> cameras.id``, created on first sight. Rows never change once written,
    so each process caches them (safe with any number of replicas)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[int, str], int] = {}

    def resolve(self, connection: Connection, device_id: int, names: set[str]) -> dict[str, int]:
        found = {name: self._ids[(device_id, name)] for name in names if (device_id, name) in self._ids}
        missing = sorted(names - found.keys())
        if missing:
            now = datetime.now(UTC)
            connection.execute(
                _insert(connection, cameras)
                .values([{"device_id": device_id, "name": name, "first_seen_at": now} for name in missing])
                .on_conflict_do_nothing(index_elements=["device_id", "name"])
            )
            rows = connection.execute(
                select(cameras.c.name, cameras.c.id).where(cameras.c.device_id == device_id, cameras.c.name.in_(missing))
            ).all()
            for name, camera_id in rows:
                self._ids[(device_id, name)] = camera_id
                found[name] = camera_id
        return found


_STORED_COLUMNS = (
    predictions.c.id,
    devices.c.name,
    cameras.c.name,
    predictions.c.clip_id,
    predictions.c.captured_at,
    predictions.c.received_at,
    predictions.c.label,
    predictions.c.score,
    predictions.c.top5,
    predictions.c.model_version,
)


def _stored_select():
    return select(*_STORED_COLUMNS).select_from(
        predictions.join(cameras, predictions.c.camera_id == cameras.c.id).join(devices, predictions.c.device_id == devices.c.id)
    )


def store_predictions(
    engine: Engine, device_id: int, device_name: str, rows: list[NewPrediction], camera_ids: CameraIds
) -> tuple[dict[uuid.UUID, StoredPrediction], set[uuid.UUID]]:
    """Store ``rows`` (clip ids unique within the list) and return ``({clip_id: stored}, ids stored now)``;
    clips stored earlier come back as they were stored then."""
    received_at = datetime.now(UTC)
    out: dict[uuid.UUID, StoredPrediction] = {}
    with write_tx(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": _FEED_LOCK_NAMESPACE, "b": device_id})
        camera_pk = camera_ids.resolve(connection, device_id, {row.camera for row in rows})
        values = [
            {
                "device_id": device_id,
                "camera_id": camera_pk[row.camera],
                "clip_id": row.clip_id,
                "captured_at": row.captured_at,
                "received_at": received_at,
                "label": row.label,
                "score": row.score,
                "top5": row.top5,
                "model_version": row.model_version,
            }
            for row in rows
        ]
        inserted = connection.execute(
            _insert(connection, predictions)
            .values(values)
            .on_conflict_do_nothing(index_elements=["device_id", "clip_id"])
            .returning(predictions.c.id, predictions.c.clip_id)
        ).all()
        new_ids = {clip_id: row_id for row_id, clip_id in inserted}
        for row in rows:
            if row.clip_id in new_ids:
                out[row.clip_id] = StoredPrediction(
                    new_ids[row.clip_id], device_name, row.camera, row.clip_id, row.captured_at, received_at,
                    row.label, row.score, row.top5, row.model_version,
                )
        repeated = [row.clip_id for row in rows if row.clip_id not in new_ids]
        if repeated:
            for stored in connection.execute(
                _stored_select().where(predictions.c.device_id == device_id, predictions.c.clip_id.in_(repeated))
            ).all():
                out[stored[3]] = StoredPrediction(*stored)
    return out, set(new_ids)


def results_since(engine: Engine, device_id: int, since: int, limit: int) -> list[StoredPrediction]:
    """A device's predictions with ``id > since``, oldest first, at most ``limit``."""
    with engine.connect() as connection:
        rows = connection.execute(
            _stored_select()
            .where(predictions.c.device_id == device_id, predictions.c.id > since)
            .order_by(predictions.c.id)
            .limit(limit)
        ).all()
    return [StoredPrediction(*row) for row in rows]


def find_idempotent_response(engine: Engine, device_id: int, key: str) -> tuple[str, dict] | None:
    """``(request hash, stored response)`` for an ``Idempotency-Key`` already answered, or ``None``."""
    with engine.connect() as connection:
        row = connection.execute(
            select(idempotency_keys.c.request_hash, idempotency_keys.c.response).where(
                idempotency_keys.c.device_id == device_id, idempotency_keys.c.key == key
            )
        ).first()
    return (row[0], row[1]) if row else None


def save_idempotent_response(engine: Engine, device_id: int, key: str, request_hash: str, response: dict) -> tuple[str, dict]:
    """Store the response to ``key`` unless a concurrent request stored one first; returns the stored one."""
    with write_tx(engine) as connection:
        connection.execute(
            _insert(connection, idempotency_keys)
            .values(device_id=device_id, key=key, request_hash=request_hash, response=response, created_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=["device_id", "key"])
        )
        row = connection.execute(
            select(idempotency_keys.c.request_hash, idempotency_keys.c.response).where(
                idempotency_keys.c.device_id == device_id, idempotency_keys.c.key == key
            )
        ).one()
    return row[0], row[1]


def purge_idempotency_keys(engine: Engine, older_than: timedelta) -> int:
    """Forget idempotency keys older than ``older_than`` (clip ids stay idempotent for ever)."""
    with write_tx(engine) as connection:
        result = connection.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < datetime.now(UTC) - older_than))
    return result.rowcount or 0
