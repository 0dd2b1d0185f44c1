"""The edge's outbox: clips not yet acknowledged by the cloud, kept in SQLite until the cloud answers for them.

Delivery guarantee: a clip goes into ``captures`` and ``outbox`` in one transaction *before* any send, and
leaves the outbox only when the cloud answered for it (:meth:`OutboxStore.mark_delivered`, or a result that
names it). A crash between send and acknowledgement sends the clip again; the cloud is idempotent by
``clip_id``, so that is never a duplicate row. The only way a clip is lost is the outbox bound
(``max_pending``), and that path counts it (``dropped``), marks its capture row ``dropped`` and logs it.

Held clips: while the cloud's classifier expects another encoder's latents, clips stay in the outbox with
``held`` set and are not due until :meth:`OutboxStore.release` (or dropped by the operator:
:meth:`OutboxStore.discard_held`). The tables are described in :mod:`tinyact.edge.schema`; the results side of
the database is :class:`tinyact.edge.store.EdgeStore`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tinyact.edge.schema import (
    captures,
    chunks,
    counters,
    meta,
    open_engine,
    outbox,
    to_epoch,
    to_iso,
    upgrade_schema,
)
from tinyact.retry import backoff_delay

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class OutboxItem:
    """One clip waiting in the outbox."""

    clip_id: str
    camera_id: str
    message: str  # ClipIn JSON
    attempts: int


class OutboxStore:
    """The outbox and the counters of the edge database (created or upgraded on open). Thread-safe: one writer
    at a time inside this process; a second process (``tinyact edge status``) may read the same file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = open_engine(self.path)
        # One writer at a time inside this process (SQLite allows one anyway); readers do not take it.
        self._write = threading.Lock()
        upgrade_schema(self.engine)

    def close(self) -> None:
        """Close the database connections (the store can be opened again)."""
        self.engine.dispose()

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
                    clip_id=str(clip_id), camera_id=camera_id, captured_at=to_epoch(captured_at), encode_ms=encode_ms,
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
            for chunk in chunks(ids):
                removed += db.execute(delete(outbox).where(outbox.c.clip_id.in_(chunk))).rowcount
                db.execute(update(captures).where(captures.c.clip_id.in_(chunk), captures.c.state != "delivered")
                           .values(state="delivered", delivered_at=now))
        return removed

    def reject(self, reasons: dict[str, str]) -> int:
        """The cloud refused these clips for good (a 422 about the clip itself): out of the outbox, capture
        state ``rejected``, counted and logged (never silently)."""
        if not reasons:
            return 0
        ids = list(reasons)
        with self._write, self.engine.begin() as db:
            n = 0
            for chunk in chunks(ids):
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
            hashes: set[str | None] = set()
            for chunk in chunks(ids):
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
            for chunk in chunks(ids):
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
            for chunk in chunks([str(c) for c in clip_ids]):
                out.update(db.execute(select(outbox.c.encoder_hash).where(outbox.c.clip_id.in_(chunk))).scalars())
        return out

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
                first = db.execute(select(outbox.c.clip_id, outbox.c.last_error).where(outbox.c.seq == first_seq)).one()
                captured = db.execute(select(captures.c.captured_at).where(captures.c.clip_id == first[0])).scalar()
                out.append({"reason": reason, "encoder_hash": encoder_hash, "clips": int(n),
                            "oldest": to_iso(captured), "last_error": first[1]})
        return out

    def discard_held(self, reason: str, encoder_hash: str | None = None) -> int:
        """The operator gives up on held clips (``tinyact edge outbox drop --reason …``): out of the outbox,
        capture state ``discarded``, counted (``discarded``) and logged. Returns how many."""
        query = select(outbox.c.clip_id).where(outbox.c.held == reason)
        if encoder_hash is not None:
            query = query.where(outbox.c.encoder_hash == encoder_hash)
        with self._write, self.engine.begin() as db:
            ids = list(db.execute(query).scalars())
            for chunk in chunks(ids):
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
            for chunk in chunks(ids):
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
            for chunk in chunks(ids):
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

    def pending_ids(self) -> list[str]:
        with self.engine.connect() as db:
            return list(db.execute(select(outbox.c.clip_id).order_by(outbox.c.seq)).scalars())

    # ---- counters and meta ----------------------------------------------------------------------------------
    def _bump(self, db: Connection, name: str, n: int) -> None:
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
