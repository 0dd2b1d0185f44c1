"""The edge device's local database (SQLite through SQLAlchemy Core): captures, results, and the outbox.

Tables::

    captures  one row per clip captured: clip_id, camera_id, captured_at, encode_ms, state, and the cloud's
              result once it is back (label, score, top5, model_version, result_at)
              state: pending (in the outbox) -> delivered (the cloud acknowledged it) | dropped (outbox full)
              | rejected (the cloud refused the clip itself, e.g. a malformed latent) | discarded (held clips
              the operator dropped: ``tinyact edge outbox drop``)
    outbox    the clips not yet acknowledged: the exact JSON message to send (a tinyact.wire.ClipIn), the hash of
              the encoder that made it, attempts, the time of the next attempt, the last error, and ``held``: a
              reason (``encoder_mismatch``) while the cloud's classifier expects another encoder's latents; a held
              clip is not sent until it is released (a matching classifier is active) or discarded
    counters  named counters that survive restarts (dropped_outbox, send_failures, …)
    meta      key/value: the results feed cursor (GET /v1/results?since=…)

Delivery guarantee: a clip goes into ``captures`` and ``outbox`` in one transaction *before* any send, and
leaves the outbox only when the cloud answered for it (:meth:`EdgeStore.mark_delivered`, or a result that
names it). A crash between send and acknowledgement sends the clip again; the cloud is idempotent by
``clip_id``, so that is never a duplicate row. The only way a clip is lost is the outbox bound
(``max_pending``), and that path counts it (``dropped``), marks its capture row ``dropped`` and logs it.

One :class:`EdgeStore` is shared by the agent's threads and the local web page; a second process (``tinyact
edge status``) may read the same file (WAL mode lets readers run beside the writer).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tinyact.wire import ClipResult

logger = logging.getLogger(__name__)

metadata = MetaData()

captures = Table(
    "captures",
    metadata,
    Column("clip_id", String(36), primary_key=True),
    Column("camera_id", String(64), nullable=False, index=True),
    Column("captured_at", Float, nullable=False, index=True),  # UTC epoch seconds (sortable)
    Column("encode_ms", Float),
    Column("state", String(16), nullable=False, default="pending"),  # pending | delivered | dropped
    Column("delivered_at", Float),
    Column("label", String(200)),
    Column("score", Float),
    Column("top5", Text),  # JSON [{"label", "score"}]
    Column("model_version", String(200)),
    Column("result_at", Float),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # arrival order: oldest dropped first
    Column("clip_id", String(36), nullable=False, unique=True),
    Column("camera_id", String(64), nullable=False),
    Column("message", Text, nullable=False),  # the ClipIn JSON sent as is (latent already encoded)
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False, default=0.0),  # epoch seconds
    Column("last_error", Text),
    Column("encoder_hash", String(200)),  # the encoder that made the latent (also in the message)
    Column("held", String(32)),  # why the clip is held back (encoder_mismatch), NULL: sendable
)

counters = Table(
    "counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False, default=0),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text),
)


@dataclass(frozen=True)
class OutboxItem:
    """One clip waiting in the outbox."""

    clip_id: str
    camera_id: str
    message: str  # ClipIn JSON
    attempts: int


def _epoch(value: datetime | float) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    return float(value)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def backoff_delay(attempts: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "full jitter": uniform in ``[d/2, d]`` where ``d = min(max_s, base_s·2^(n-1))``.

    The jitter spreads the retries of many devices after a cloud outage, so they do not all come back in the
    same second."""
    delay = min(max_s, base_s * (2 ** max(0, attempts - 1)))
    return (rng or random).uniform(delay / 2, delay)


class EdgeStore:
    """The edge's SQLite database (created on first use). Thread-safe; see the module docstring."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(
            f"sqlite:///{self.path}",
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        event.listen(self.engine, "connect", _sqlite_pragmas)
        # One writer at a time inside this process (SQLite allows one anyway); readers do not take it.
        self._write = threading.Lock()
        metadata.create_all(self.engine)
        self._add_missing_columns()

    def close(self) -> None:
        self.engine.dispose()

    def _add_missing_columns(self) -> None:
        """Bring a database written by an older agent up to date (columns added since: outbox.encoder_hash,
        outbox.held; both NULL for the clips already there, which are then sent as before)."""
        with self._write, self.engine.begin() as db:
            have = {row[1] for row in db.exec_driver_sql("PRAGMA table_info(outbox)")}
            for column in ("encoder_hash", "held"):
                if column not in have:
                    db.exec_driver_sql(f"ALTER TABLE outbox ADD COLUMN {column} TEXT")

    # ---- captures ------------------------------------------------------------------------------------------
    def record_capture(self, clip_id: str, camera_id: str, captured_at: datetime | float, encode_ms: float | None) -> None:
        """A clip captured and encoded, without an outbox message (state ``pending`` until delivered)."""
        with self._write, self.engine.begin() as db:
            db.execute(sqlite_insert(captures).values(
                clip_id=str(clip_id), camera_id=camera_id, captured_at=_epoch(captured_at), encode_ms=encode_ms,
                state="pending",
            ).on_conflict_do_nothing())

    def enqueue(self, items: Sequence[tuple[str, str, datetime | float, float | None, str]], max_pending: int | None = None,
                *, encoder_hash: str | None = None, held: str | None = None) -> int:
        """Record captures and put their messages in the outbox, in one transaction, before any send.

        ``items``: ``(clip_id, camera_id, captured_at, encode_ms, message_json)``; ``encoder_hash``: the encoder
        that made them (one per round); ``held``: put them in the outbox held back (the cloud is known to expect
        another encoder). When the outbox would hold more than ``max_pending`` clips, the oldest are dropped
        (held ones included): counted (``dropped``), their capture rows marked ``dropped``, and a warning logged.
        Returns how many were dropped."""
        if not items:
            return 0
        with self._write, self.engine.begin() as db:
            for clip_id, camera_id, captured_at, encode_ms, _ in items:
                db.execute(sqlite_insert(captures).values(
                    clip_id=str(clip_id), camera_id=camera_id, captured_at=_epoch(captured_at), encode_ms=encode_ms,
                    state="pending",
                ).on_conflict_do_nothing())
            db.execute(sqlite_insert(outbox).values([
                {"clip_id": str(c), "camera_id": cam, "message": msg, "attempts": 0, "next_attempt_at": 0.0,
                 "encoder_hash": encoder_hash or None, "held": held}
                for c, cam, _, _, msg in items
            ]).on_conflict_do_nothing())
            dropped: list[str] = []
            if max_pending is not None:
                pending = db.execute(select(func.count()).select_from(outbox)).scalar_one()
                excess = pending - max_pending
                if excess > 0:
                    dropped = list(db.execute(select(outbox.c.clip_id).order_by(outbox.c.seq).limit(excess)).scalars())
                    db.execute(delete(outbox).where(outbox.c.clip_id.in_(dropped)))
                    db.execute(update(captures).where(captures.c.clip_id.in_(dropped)).values(state="dropped"))
                    self._bump(db, "dropped", len(dropped))
        if dropped:
            logger.warning("outbox full (%d clips): dropped the %d oldest undelivered clip(s), first %s",
                           max_pending, len(dropped), dropped[0])
        return len(dropped)

    def mark_delivered(self, clip_ids: Iterable[str]) -> int:
        """The cloud acknowledged these clips: out of the outbox, capture state ``delivered``. Returns how many
        were still pending (a repeated acknowledgement counts 0)."""
        ids = [str(c) for c in clip_ids]
        if not ids:
            return 0
        now = time.time()
        with self._write, self.engine.begin() as db:
            removed = 0
            for chunk in _chunks(ids, 500):
                removed += db.execute(delete(outbox).where(outbox.c.clip_id.in_(chunk))).rowcount
                db.execute(update(captures).where(captures.c.clip_id.in_(chunk), captures.c.state != "delivered")
                           .values(state="delivered", delivered_at=now))
        return removed

    def record_results(self, results: Sequence[ClipResult]) -> int:
        """Store the cloud's verdicts (from the POST response, the results feed or MQTT). A result proves the
        cloud has the clip, so it is also marked delivered. Results for clips this store never captured (e.g.
        after the database was reset) are added as delivered captures. Returns the number of results."""
        if not results:
            return 0
        now = time.time()
        ids = [str(r.clip_id) for r in results]
        with self._write, self.engine.begin() as db:
            for r in results:
                values = {
                    "label": r.label, "score": float(r.score), "model_version": r.model_version,
                    "top5": json.dumps([{"label": t.label, "score": float(t.score)} for t in r.top5]),
                }
                # result_at keeps the time the result FIRST arrived (a repeat from the results feed or a
                # retained MQTT message must not make the latency look longer).
                db.execute(sqlite_insert(captures).values(
                    clip_id=str(r.clip_id), camera_id=r.camera_id, captured_at=_epoch(r.captured_at),
                    state="delivered", delivered_at=now, result_at=now, **values,
                ).on_conflict_do_update(index_elements=[captures.c.clip_id],
                                        set_={**values, "result_at": func.coalesce(captures.c.result_at, now)}))
            removed = 0
            for chunk in _chunks(ids, 500):
                removed += db.execute(delete(outbox).where(outbox.c.clip_id.in_(chunk))).rowcount
                db.execute(update(captures).where(captures.c.clip_id.in_(chunk), captures.c.state != "delivered")
                           .values(state="delivered", delivered_at=now))
        return len(results)

    def reject(self, reasons: dict[str, str]) -> int:
        """The cloud refused these clips for good (a 422 about the clip itself): out of the outbox, capture
        state ``rejected``, counted and logged (never silently)."""
        if not reasons:
            return 0
        ids = list(reasons)
        with self._write, self.engine.begin() as db:
            n = 0
            for chunk in _chunks(ids, 500):
                n += db.execute(delete(outbox).where(outbox.c.clip_id.in_(chunk))).rowcount
                db.execute(update(captures).where(captures.c.clip_id.in_(chunk)).values(state="rejected"))
            self._bump(db, "rejected", n)
        first = ids[0]
        logger.error("the cloud rejected %d clip(s); they will not be retried (first %s: %s)", n, first, reasons[first])
        return n

    # ---- held clips (the cloud expects another encoder) -------------------------------------------------------
    def hold(self, reasons: dict[str, str], why: str = "encoder_mismatch") -> int:
        """The cloud refused these clips because of their encoder (not their content): keep them in the outbox,
        held back, with the reason as their last error; every other outbox clip of the same encoder is held too,
        so none of them is sent until :meth:`release`. Returns how many clips are held now."""
        if not reasons:
            return self.held_count()
        ids = [str(c) for c in reasons]
        with self._write, self.engine.begin() as db:
            hashes = set()
            for chunk in _chunks(ids, 500):
                hashes.update(db.execute(select(outbox.c.encoder_hash).where(outbox.c.clip_id.in_(chunk))).scalars())
                for clip_id in chunk:
                    db.execute(update(outbox).where(outbox.c.clip_id == clip_id)
                               .values(held=why, last_error=reasons[clip_id][:500]))
            named = [h for h in hashes if h]
            if named:
                db.execute(update(outbox).where(outbox.c.encoder_hash.in_(named), outbox.c.held.is_(None))
                           .values(held=why))
            return int(db.execute(select(func.count()).select_from(outbox).where(outbox.c.held.is_not(None))).scalar_one())

    def release(self, encoder_hash: str | None = None, *, limit: int | None = None) -> int:
        """Make held clips sendable again (due now): those of ``encoder_hash`` (``None``: of any encoder), the
        oldest ``limit`` only if given (a probe). Returns how many were released."""
        query = select(outbox.c.clip_id).where(outbox.c.held.is_not(None)).order_by(outbox.c.seq)
        if encoder_hash is not None:
            query = query.where(outbox.c.encoder_hash == encoder_hash)
        if limit is not None:
            query = query.limit(limit)
        with self._write, self.engine.begin() as db:
            ids = list(db.execute(query).scalars())
            for chunk in _chunks(ids, 500):
                db.execute(update(outbox).where(outbox.c.clip_id.in_(chunk)).values(held=None, next_attempt_at=0.0))
        return len(ids)

    def release_oldest(self, encoder_hash: str | None) -> tuple[str, str | None] | None:
        """Release the oldest held clip (of ``encoder_hash``; ``None``: of any encoder) as a probe; returns
        ``(clip_id, its encoder hash)``, or ``None`` when there is none."""
        query = select(outbox.c.clip_id, outbox.c.encoder_hash).where(outbox.c.held.is_not(None))
        if encoder_hash is not None:
            query = query.where(outbox.c.encoder_hash == encoder_hash)
        with self._write, self.engine.begin() as db:
            row = db.execute(query.order_by(outbox.c.seq).limit(1)).first()
            if row is None:
                return None
            db.execute(update(outbox).where(outbox.c.clip_id == row[0]).values(held=None, next_attempt_at=0.0))
        return row[0], row[1]

    def outbox_encoders(self, clip_ids: Sequence[str]) -> set[str | None]:
        """The encoder hashes of these outbox clips (``None`` for clips queued without one)."""
        out: set[str | None] = set()
        with self.engine.connect() as db:
            for chunk in _chunks([str(c) for c in clip_ids], 500):
                out.update(db.execute(select(outbox.c.encoder_hash).where(outbox.c.clip_id.in_(chunk))).scalars())
        return out

    def capture_state(self, clip_id: str) -> str | None:
        """``pending``, ``delivered``, ``dropped``, ``rejected`` or ``discarded``; ``None`` for an unknown clip."""
        with self.engine.connect() as db:
            return db.execute(select(captures.c.state).where(captures.c.clip_id == str(clip_id))).scalar()

    def held_count(self) -> int:
        with self.engine.connect() as db:
            return int(db.execute(select(func.count()).select_from(outbox).where(outbox.c.held.is_not(None))).scalar_one())

    def held_summary(self) -> list[dict[str, Any]]:
        """Held clips per reason and encoder: ``[{"reason", "encoder_hash", "clips", "oldest", "last_error"}]``."""
        with self.engine.connect() as db:
            rows = db.execute(
                select(outbox.c.held, outbox.c.encoder_hash, func.count(), func.min(outbox.c.seq))
                .where(outbox.c.held.is_not(None)).group_by(outbox.c.held, outbox.c.encoder_hash)
            ).all()
            out = []
            for reason, encoder_hash, n, first_seq in rows:
                first = db.execute(select(outbox.c.clip_id, outbox.c.last_error).where(outbox.c.seq == first_seq)).first()
                captured = db.execute(select(captures.c.captured_at).where(captures.c.clip_id == first[0])).scalar()
                out.append({"reason": reason, "encoder_hash": encoder_hash, "clips": int(n),
                            "oldest": _iso(captured), "last_error": first[1]})
        return out

    def discard_held(self, reason: str, encoder_hash: str | None = None) -> int:
        """The operator gives up on held clips (``tinyact edge outbox drop --reason …``): out of the outbox,
        capture state ``discarded``, counted (``discarded``) and logged. Returns how many."""
        query = select(outbox.c.clip_id).where(outbox.c.held == reason)
        if encoder_hash is not None:
            query = query.where(outbox.c.encoder_hash == encoder_hash)
        with self._write, self.engine.begin() as db:
            ids = list(db.execute(query).scalars())
            for chunk in _chunks(ids, 500):
                db.execute(delete(outbox).where(outbox.c.clip_id.in_(chunk)))
                db.execute(update(captures).where(captures.c.clip_id.in_(chunk)).values(state="discarded"))
            self._bump(db, "discarded", len(ids))
        if ids:
            logger.warning("discarded %d held clip(s) (%s) from the outbox at the operator's request", len(ids), reason)
        return len(ids)

    # ---- outbox --------------------------------------------------------------------------------------------
    def due(self, limit: int = 64, now: float | None = None) -> list[OutboxItem]:
        """Oldest outbox clips whose next attempt time has come (held clips are not due)."""
        now = time.time() if now is None else now
        with self.engine.connect() as db:
            rows = db.execute(
                select(outbox.c.clip_id, outbox.c.camera_id, outbox.c.message, outbox.c.attempts)
                .where(outbox.c.next_attempt_at <= now, outbox.c.held.is_(None)).order_by(outbox.c.seq).limit(limit)
            ).all()
        return [OutboxItem(*row) for row in rows]

    def mark_failed(self, clip_ids: Sequence[str], error: str, base_s: float = 1.0, max_s: float = 60.0,
                    retry_after_s: float | None = None) -> float:
        """A send failed: schedule the clips' next attempt with exponential backoff + jitter (at least
        ``retry_after_s`` when the cloud said so). Returns the delay chosen."""
        if not clip_ids:
            return 0.0
        ids = [str(c) for c in clip_ids]
        with self._write, self.engine.begin() as db:
            attempts = db.execute(select(func.max(outbox.c.attempts)).where(outbox.c.clip_id.in_(ids))).scalar() or 0
            delay = backoff_delay(attempts + 1, base_s, max_s)
            if retry_after_s:
                delay = max(delay, retry_after_s)
            for chunk in _chunks(ids, 500):
                db.execute(update(outbox).where(outbox.c.clip_id.in_(chunk)).values(
                    attempts=outbox.c.attempts + 1, next_attempt_at=time.time() + delay, last_error=error[:500]))
            self._bump(db, "send_failures", 1)
        return delay

    def defer(self, clip_ids: Sequence[str], seconds: float, max_s: float | None = None) -> float:
        """Push the next attempt of these clips ahead without counting a failure (MQTT: published, waiting for
        the cloud's result): ``seconds`` the first time, doubling with each republish up to ``max_s``.
        Returns the delay chosen."""
        ids = [str(c) for c in clip_ids]
        if not ids:
            return 0.0
        with self._write, self.engine.begin() as db:
            attempts = db.execute(select(func.max(outbox.c.attempts)).where(outbox.c.clip_id.in_(ids))).scalar() or 0
            delay = min(max(seconds, max_s or seconds), seconds * 2 ** attempts)
            for chunk in _chunks(ids, 500):
                db.execute(update(outbox).where(outbox.c.clip_id.in_(chunk)).values(
                    attempts=outbox.c.attempts + 1, next_attempt_at=time.time() + delay))
        return delay

    def make_due(self) -> None:
        """Make every outbox clip due now (an explicit flush); held clips stay held."""
        with self._write, self.engine.begin() as db:
            db.execute(update(outbox).values(next_attempt_at=0.0))

    def next_attempt_in(self, now: float | None = None) -> float | None:
        """Seconds until the earliest outbox clip is due (0 if one is due now); ``None`` if no clip is waiting
        (the outbox is empty, or holds only held clips)."""
        now = time.time() if now is None else now
        with self.engine.connect() as db:
            earliest = db.execute(select(func.min(outbox.c.next_attempt_at)).where(outbox.c.held.is_(None))).scalar()
        return None if earliest is None else max(0.0, earliest - now)

    def known_clip_ids(self, clip_ids: Sequence[str]) -> set[str]:
        """Which of ``clip_ids`` this store captured (the results feed is applied to those only)."""
        known: set[str] = set()
        with self.engine.connect() as db:
            for chunk in _chunks(list(clip_ids), 500):
                known.update(db.execute(select(captures.c.clip_id).where(captures.c.clip_id.in_(chunk))).scalars())
        return known

    def pending_ids(self) -> list[str]:
        with self.engine.connect() as db:
            return list(db.execute(select(outbox.c.clip_id).order_by(outbox.c.seq)).scalars())

    # ---- counters and meta ----------------------------------------------------------------------------------
    def _bump(self, db, name: str, n: int) -> None:
        if n:
            db.execute(sqlite_insert(counters).values(name=name, value=n).on_conflict_do_update(
                index_elements=[counters.c.name], set_={"value": counters.c.value + n}))

    def increment(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a persistent counter."""
        with self._write, self.engine.begin() as db:
            self._bump(db, name, n)

    def counter(self, name: str) -> int:
        with self.engine.connect() as db:
            return int(db.execute(select(counters.c.value).where(counters.c.name == name)).scalar() or 0)

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.engine.connect() as db:
            value = db.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        return default if value is None else value

    def set_meta(self, key: str, value: str) -> None:
        with self._write, self.engine.begin() as db:
            db.execute(sqlite_insert(meta).values(key=key, value=value).on_conflict_do_update(
                index_elements=[meta.c.key], set_={"value": value}))

    @property
    def results_cursor(self) -> int:
        """Where the results feed (``GET /v1/results?since=``) was read up to."""
        return int(self.get_meta("results_cursor", "0") or 0)

    @results_cursor.setter
    def results_cursor(self, value: int) -> None:
        self.set_meta("results_cursor", str(int(value)))

    # ---- queries for the page and `tinyact edge status` -----------------------------------------------------
    def recent(self, limit: int = 50, camera_id: str | None = None) -> list[dict[str, Any]]:
        """Newest captures first: ``clip_id, camera_id, captured_at`` (ISO 8601 UTC), ``label, score, top5``
        (None until the result is back), ``state``, ``encode_ms``, ``model_version``, ``result_at`` (when the
        result first arrived)."""
        query = select(captures).order_by(captures.c.captured_at.desc()).limit(limit)
        if camera_id is not None:
            query = query.where(captures.c.camera_id == camera_id)
        with self.engine.connect() as db:
            return [_row_dict(row) for row in db.execute(query).mappings()]

    def latest_per_camera(self) -> dict[str, dict[str, Any]]:
        """Per camera, its newest capture that has a result (same fields as :meth:`recent`), plus
        ``last_capture_at`` (its newest capture, result or not)."""
        with self.engine.connect() as db:
            newest = dict(db.execute(select(captures.c.camera_id, func.max(captures.c.captured_at))
                                     .group_by(captures.c.camera_id)).all())
            with_result = (select(captures.c.camera_id, func.max(captures.c.captured_at).label("t"))
                           .where(captures.c.label.is_not(None)).group_by(captures.c.camera_id).subquery())
            rows = db.execute(select(captures).join(with_result, (captures.c.camera_id == with_result.c.camera_id)
                                                    & (captures.c.captured_at == with_result.c.t))).mappings().all()
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            out[row["camera_id"]] = _row_dict(row)
        for camera, t in newest.items():
            out.setdefault(camera, {"camera_id": camera, "label": None, "score": None})["last_capture_at"] = _iso(t)
        return out

    def counts(self) -> dict[str, int]:
        """``captured`` (rows ever recorded, incl. pruned), ``delivered``, ``pending`` (in the outbox),
        ``held`` (of those, held back: the cloud expects another encoder), ``dropped`` (outbox bound),
        ``rejected`` (refused by the cloud), ``discarded`` (held clips the operator dropped), ``results``
        (captures with a result)."""
        with self.engine.connect() as db:
            states = dict(db.execute(select(captures.c.state, func.count()).group_by(captures.c.state)).all())
            results = db.execute(select(func.count()).select_from(captures).where(captures.c.label.is_not(None))).scalar_one()
            pending = db.execute(select(func.count()).select_from(outbox)).scalar_one()
            held = db.execute(select(func.count()).select_from(outbox).where(outbox.c.held.is_not(None))).scalar_one()
            named = dict(db.execute(select(counters.c.name, counters.c.value)).all())
        pruned = int(named.get("pruned", 0))  # delivered rows deleted by prune
        pruned_other = int(named.get("pruned_other", 0))  # dropped/rejected/discarded rows deleted (counted by their counters)
        return {
            "captured": int(sum(states.values())) + pruned + pruned_other,
            "delivered": int(states.get("delivered", 0)) + pruned,
            "pending": int(pending),
            "held": int(held),
            "dropped": int(named.get("dropped", 0)),
            "rejected": int(named.get("rejected", 0)),
            "discarded": int(named.get("discarded", 0)),
            "results": int(results),
            "send_failures": int(named.get("send_failures", 0)),
        }

    def prune(self, older_than: datetime | float) -> int:
        """Delete delivered, dropped, rejected and discarded capture rows captured before ``older_than`` (retention);
        pending clips stay. Pruned rows are still counted by :meth:`counts` (as captured, and as delivered,
        dropped, rejected or discarded, which have their own counters)."""
        cutoff = _epoch(older_than)
        with self._write, self.engine.begin() as db:
            old = captures.c.captured_at < cutoff
            n = db.execute(delete(captures).where(old, captures.c.state == "delivered")).rowcount
            self._bump(db, "pruned", n)
            other = db.execute(delete(captures).where(old, captures.c.state.in_(("dropped", "rejected", "discarded")))).rowcount
            self._bump(db, "pruned_other", other)
        return n + other


def _row_dict(row) -> dict[str, Any]:
    return {
        "clip_id": row["clip_id"],
        "camera_id": row["camera_id"],
        "captured_at": _iso(row["captured_at"]),
        "label": row["label"],
        "score": row["score"],
        "state": row["state"],
        "encode_ms": row["encode_ms"],
        "model_version": row["model_version"],
        "top5": json.loads(row["top5"]) if row["top5"] else None,
        "result_at": _iso(row["result_at"]),
    }


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (web page, `edge status`) beside the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


__all__ = ["EdgeStore", "OutboxItem", "backoff_delay", "captures", "outbox"]
