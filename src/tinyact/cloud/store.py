"""Writing predictions and reading them back for one device (the hot path of ``POST /v1/clips``).

Idempotency rests on the database, not on a read-then-write check: new rows are inserted with
``INSERT … ON CONFLICT (device_id, clip_id) DO NOTHING RETURNING id``; the clips that came back without an
id were stored before (by this request's earlier try, or by another replica a moment ago) and their stored
rows are read in the same transaction. Two concurrent requests with the same clip therefore store one row
and answer with the same result.

Writes are grouped (:class:`GroupWriter`): the rows of all requests that arrive while a transaction is
being written go into the next one.

Results-feed ordering: ``predictions.id`` is the cursor of ``GET /v1/results?since=``. On PostgreSQL, ids
are handed out at insert time but become visible at commit, so a reader could see id 11 before id 10
commits and skip 10 for good. Inserts of one device therefore take a transaction-scoped advisory lock on that
device, which makes one device's ids commit in order (SQLite's single writer gives the same for free).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, select, text
from sqlalchemy.dialects import postgresql, sqlite

from tinyact.cloud.db.engine import insert_for, write_tx
from tinyact.cloud.db.schema import cameras, devices, predictions
from tinyact.wire import StoredPrediction

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


_INSERTS: dict[str, postgresql.Insert | sqlite.Insert] = {}


def _insert_predictions(dialect_name: str) -> postgresql.Insert | sqlite.Insert:
    """``INSERT INTO predictions … ON CONFLICT (device_id, clip_id) DO NOTHING RETURNING id, device_id,
    clip_id``."""
    if dialect_name not in _INSERTS:
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        _INSERTS[dialect_name] = (
            dialect.insert(predictions)
            .on_conflict_do_nothing(index_elements=["device_id", "clip_id"])
            .returning(predictions.c.id, predictions.c.device_id, predictions.c.clip_id)
        )
    return _INSERTS[dialect_name]


class CameraLimitError(Exception):
    """A device would have more cameras than ``max_per_device``."""

    def __init__(self, device_id: int, limit: int, new: list[str]) -> None:
        super().__init__(f"device {device_id} is at its limit of {limit} cameras; new camera(s) {new[:3]} refused")
        self.device_id = device_id
        self.limit = limit
        self.new = new


class CameraIds:
    """``(device id, camera name) -> cameras.id``, created on first sight, at most ``max_per_device`` cameras per
    device. Rows never change once written, so each process caches them (safe with any number of replicas);
    ids are cached only once the transaction that created them has committed (:meth:`remember`)."""

    def __init__(self, max_per_device: int = 256) -> None:
        self.max_per_device = max_per_device
        self._ids: dict[tuple[int, str], int] = {}

    def known(self, device_id: int, names: set[str]) -> bool:
        """Whether every camera in ``names`` is cached (no database work needed to resolve them)."""
        return all((device_id, name) in self._ids for name in names)

    def check_room(self, connection: Connection, device_id: int, names: set[str]) -> None:
        """Raise :class:`CameraLimitError` if adding ``names`` would take the device over its camera limit
        (caches the device's existing cameras on the way)."""
        if self.known(device_id, names):
            return
        rows = connection.execute(select(cameras.c.name, cameras.c.id).where(cameras.c.device_id == device_id)).all()
        for name, camera_id in rows:
            self._ids[(device_id, name)] = camera_id
        existing = {name for name, _ in rows}
        new = sorted(names - existing)
        if new and len(existing) + len(new) > self.max_per_device:
            raise CameraLimitError(device_id, self.max_per_device, new)

    def resolve(self, connection: Connection, device_id: int, names: set[str],
                created: dict[tuple[int, str], int] | None = None) -> dict[str, int]:
        """Ids of ``names`` (created if missing; refused beyond the limit). Ids of cameras first seen here go
        into ``created``, to be :meth:`remember`-ed after commit."""
        found = {name: self._ids[(device_id, name)] for name in names if (device_id, name) in self._ids}
        missing = sorted(names - found.keys())
        if missing:
            self.check_room(connection, device_id, set(missing))
            found.update({name: self._ids[(device_id, name)] for name in missing if (device_id, name) in self._ids})
            missing = sorted(names - found.keys())
        if missing:
            now = datetime.now(UTC)
            connection.execute(
                insert_for(connection, cameras)
                .values([{"device_id": device_id, "name": name, "first_seen_at": now} for name in missing])
                .on_conflict_do_nothing(index_elements=["device_id", "name"])
            )
            rows = connection.execute(
                select(cameras.c.name, cameras.c.id).where(cameras.c.device_id == device_id, cameras.c.name.in_(missing))
            ).all()
            for name, camera_id in rows:
                if created is not None:
                    created[(device_id, name)] = camera_id
                else:
                    self._ids[(device_id, name)] = camera_id
                found[name] = camera_id
        return found

    def remember(self, created: dict[tuple[int, str], int]) -> None:
        self._ids.update(created)


_STORED_COLUMNS = (  # labelled as the fields of StoredPrediction
    predictions.c.id,
    devices.c.name.label("device"),
    cameras.c.name.label("camera"),
    predictions.c.clip_id,
    predictions.c.captured_at,
    predictions.c.received_at,
    predictions.c.label,
    predictions.c.score,
    predictions.c.top5,
    predictions.c.model_version,
)


def stored_select() -> Select[Any]:
    """``SELECT`` of stored predictions with their device and camera names; read rows with :func:`stored_row`."""
    return select(*_STORED_COLUMNS).select_from(
        predictions.join(cameras, predictions.c.camera_id == cameras.c.id).join(devices, predictions.c.device_id == devices.c.id)
    )


def stored_row(row: Row[Any]) -> StoredPrediction:
    """A row of :func:`stored_select` as a :class:`StoredPrediction`."""
    return StoredPrediction.model_validate(row._mapping)


@dataclass(frozen=True)
class WriteJob:
    """The rows of one request (clip ids unique within it) for one device."""

    device_id: int
    device_name: str
    rows: list[NewPrediction]


StoreResult = tuple[dict[uuid.UUID, StoredPrediction], set[uuid.UUID]]


def store_jobs(engine: Engine, jobs: list[WriteJob], camera_ids: CameraIds) -> list[StoreResult]:
    """Store the rows of many requests in one transaction; for each job ``({clip_id: stored}, ids stored now)``.

    Clips stored earlier, or earlier in this same call, come back as they were first stored.
    """
    received_at = datetime.now(UTC)
    results: list[StoreResult] = [({}, set()) for _ in jobs]
    created: dict[tuple[int, str], int] = {}  # camera ids cached only after commit
    with write_tx(engine) as connection:
        if connection.dialect.name == "postgresql":
            for device_id in sorted({job.device_id for job in jobs}):  # sorted: no lock-order deadlocks
                connection.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": _FEED_LOCK_NAMESPACE, "b": device_id})
        names: dict[int, set[str]] = {}
        for job in jobs:
            names.setdefault(job.device_id, set()).update(row.camera for row in job.rows)
        camera_pk = {device_id: camera_ids.resolve(connection, device_id, cams, created) for device_id, cams in names.items()}
        first: dict[tuple[int, uuid.UUID], int] = {}  # (device, clip) -> index of the job that inserts it
        values = []
        for index, job in enumerate(jobs):
            for row in job.rows:
                key = (job.device_id, row.clip_id)
                if key in first:
                    continue
                first[key] = index
                values.append(
                    {
                        "device_id": job.device_id,
                        "camera_id": camera_pk[job.device_id][row.camera],
                        "clip_id": row.clip_id,
                        "captured_at": row.captured_at,
                        "received_at": received_at,
                        "label": row.label,
                        "score": row.score,
                        "top5": row.top5,
                        "model_version": row.model_version,
                    }
                )
        # One cached statement run as executemany ("insertmanyvalues" sends it as multi-row INSERTs); a fresh
        # multi-row VALUES statement per call would be compiled again every time.
        inserted = connection.execute(_insert_predictions(connection.dialect.name), values).all()
        new = {(device_id, clip_id): row_id for row_id, device_id, clip_id in inserted}
        repeated: dict[int, set[uuid.UUID]] = {}
        for index, job in enumerate(jobs):
            out, new_ids = results[index]
            for row in job.rows:
                key = (job.device_id, row.clip_id)
                if key in new and first[key] == index:
                    out[row.clip_id] = StoredPrediction(
                        id=new[key], device=job.device_name, camera=row.camera, clip_id=row.clip_id,
                        captured_at=row.captured_at, received_at=received_at, label=row.label, score=row.score,
                        top5=row.top5, model_version=row.model_version,
                    )
                    new_ids.add(row.clip_id)
                else:
                    repeated.setdefault(job.device_id, set()).add(row.clip_id)
        stored: dict[tuple[int, uuid.UUID], StoredPrediction] = {}
        for device_id, clip_ids in repeated.items():
            for found in connection.execute(
                stored_select().where(predictions.c.device_id == device_id, predictions.c.clip_id.in_(sorted(clip_ids)))
            ).all():
                stored[(device_id, found.clip_id)] = stored_row(found)
        for index, job in enumerate(jobs):
            out = results[index][0]
            for row in job.rows:
                if row.clip_id not in out:
                    out[row.clip_id] = stored[(job.device_id, row.clip_id)]
    camera_ids.remember(created)
    return results


def store_predictions(
    engine: Engine, device_id: int, device_name: str, rows: list[NewPrediction], camera_ids: CameraIds
) -> StoreResult:
    """Store one request's ``rows`` now (see :func:`store_jobs`)."""
    return store_jobs(engine, [WriteJob(device_id, device_name, rows)], camera_ids)[0]


class GroupWriter:
    """Group commit: requests queue their rows; one writer thread stores everything queued meanwhile in one
    transaction. On SQLite this replaces many threads polling for the write lock (its busy handler sleeps
    between tries, which showed up as 100-500 ms stalls under load) by one short transaction per group; on
    PostgreSQL it saves a commit per request. A group that fails is written again one request per
    transaction, so one bad request never fails the others of its group. Use from one event loop: ``start()``, ``await store(...)``,
    ``await stop()``."""

    def __init__(self, engine: Engine, camera_ids: CameraIds, max_rows: int = 4096) -> None:
        self.engine = engine
        self.camera_ids = camera_ids
        self.max_rows = max_rows
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinyact-db-writer")
        self._queue: asyncio.Queue[tuple[WriteJob, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None
        self.groups = 0  # transactions written, for tests and metrics

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tinyact-db-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def store(self, device_id: int, device_name: str, rows: list[NewPrediction]) -> StoreResult:
        if self._queue is None:
            raise RuntimeError("GroupWriter.start() was not called")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((WriteJob(device_id, device_name, rows), future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._queue is not None
        while True:
            items = [await self._queue.get()]
            rows = len(items[0][0].rows)
            while rows < self.max_rows and not self._queue.empty():
                item = self._queue.get_nowait()
                items.append(item)
                rows += len(item[0].rows)
            try:
                results = await loop.run_in_executor(
                    self._executor, store_jobs, self.engine, [job for job, _ in items], self.camera_ids
                )
            except Exception as error:
                if len(items) == 1:
                    if not items[0][1].done():
                        items[0][1].set_exception(error)
                    continue
                # The group's transaction was rolled back: write each request in its own transaction, so a
                # request that cannot be stored fails alone and the others of the group are stored.
                for job, future in items:
                    try:
                        (result,) = await loop.run_in_executor(self._executor, store_jobs, self.engine, [job], self.camera_ids)
                    except Exception as single:
                        if not future.done():
                            future.set_exception(single)
                    else:
                        self.groups += 1
                        if not future.done():
                            future.set_result(result)
                continue
            self.groups += 1
            for (_, future), result in zip(items, results, strict=True):
                if not future.done():
                    future.set_result(result)


def results_since(engine: Engine, device_id: int, since: int, limit: int) -> list[StoredPrediction]:
    """A device's predictions with ``id > since``, oldest first, at most ``limit``."""
    with engine.connect() as connection:
        rows = connection.execute(
            stored_select()
            .where(predictions.c.device_id == device_id, predictions.c.id > since)
            .order_by(predictions.c.id)
            .limit(limit)
        ).all()
    return [stored_row(row) for row in rows]
