"""The edge device's local database (SQLite through SQLAlchemy Core): captures, the cloud's results, and the outbox.

:class:`EdgeStore` adds the results side to :class:`~tinyact.edge.outbox.OutboxStore` (the clips waiting for the
cloud and the counters): the verdicts that come back (POST response, results feed, MQTT), the results feed
cursor, and the queries behind the local page and ``tinyact edge status``. The tables are described in
:mod:`tinyact.edge.schema`.

One :class:`EdgeStore` is shared by the agent's threads and the local web page; a second process (``tinyact
edge status``) may read the same file (WAL mode lets readers run beside the writer).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, delete, func, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tinyact.edge.outbox import OutboxItem, OutboxStore
from tinyact.edge.schema import captures, chunks, counters, outbox, to_epoch, to_iso
from tinyact.wire import ClipResult


class EdgeStore(OutboxStore):
    """The edge's SQLite database (created or upgraded on first use). Thread-safe; see the module docstring."""

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
                    clip_id=str(r.clip_id), camera_id=r.camera_id, captured_at=to_epoch(r.captured_at),
                    state="delivered", delivered_at=now, result_at=now, **values,
                ).on_conflict_do_update(index_elements=[captures.c.clip_id],
                                        set_={**values, "result_at": func.coalesce(captures.c.result_at, now)}))
            removed = 0
            for chunk in chunks(ids):
                removed += db.execute(delete(outbox).where(outbox.c.clip_id.in_(chunk))).rowcount
                db.execute(update(captures).where(captures.c.clip_id.in_(chunk), captures.c.state != "delivered")
                           .values(state="delivered", delivered_at=now))
        return len(results)

    def capture_state(self, clip_id: str) -> str | None:
        """``pending``, ``delivered``, ``dropped``, ``rejected`` or ``discarded``; ``None`` for an unknown clip."""
        with self.engine.connect() as db:
            return db.execute(select(captures.c.state).where(captures.c.clip_id == str(clip_id))).scalar()

    def known_clip_ids(self, clip_ids: Sequence[str]) -> set[str]:
        """Which of ``clip_ids`` this store captured (the results feed is applied to those only)."""
        known: set[str] = set()
        with self.engine.connect() as db:
            for chunk in chunks(list(clip_ids)):
                known.update(db.execute(select(captures.c.clip_id).where(captures.c.clip_id.in_(chunk))).scalars())
        return known


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
            out.setdefault(camera, {"camera_id": camera, "label": None, "score": None})["last_capture_at"] = to_iso(t)
        return out

    def counts(self) -> dict[str, int]:
        """``captured`` (rows ever recorded, incl. pruned), ``delivered``, ``pending`` (in the outbox),
        ``held`` (of those, held back: the cloud expects another encoder), ``dropped`` (outbox bound),
        ``rejected`` (refused by the cloud), ``discarded`` (held clips the operator dropped), ``results``
        (captures with a result)."""
        with self.engine.connect() as db:
            states: dict[str, int] = dict(db.execute(select(captures.c.state, func.count()).group_by(captures.c.state)).all())
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
        cutoff = to_epoch(older_than)
        with self._write, self.engine.begin() as db:
            old = captures.c.captured_at < cutoff
            n = db.execute(delete(captures).where(old, captures.c.state == "delivered")).rowcount
            self._bump(db, "pruned", n)
            other = db.execute(delete(captures).where(old, captures.c.state.in_(("dropped", "rejected", "discarded")))).rowcount
            self._bump(db, "pruned_other", other)
        return n + other



def _row_dict(row: RowMapping) -> dict[str, Any]:
    return {
        "clip_id": row["clip_id"],
        "camera_id": row["camera_id"],
        "captured_at": to_iso(row["captured_at"]),
        "label": row["label"],
        "score": row["score"],
        "state": row["state"],
        "encode_ms": row["encode_ms"],
        "model_version": row["model_version"],
        "top5": json.loads(row["top5"]) if row["top5"] else None,
        "result_at": to_iso(row["result_at"]),
    }



__all__ = ["EdgeStore", "OutboxItem", "captures", "outbox"]
