"""Read-side queries: the dashboard's aggregates and the row stream behind exports.

All aggregation happens in the database (``GROUP BY`` over indexed columns); only the aggregated counts or
one page of rows reach Python. Exports walk the table with a server-side cursor (PostgreSQL) or SQLite's
lazy cursor, ``chunk`` rows at a time, so memory stays flat however many rows match.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, literal_column, select

from tinyact.cloud.db.schema import cameras, devices, predictions
from tinyact.cloud.store import stored_row, stored_select
from tinyact.wire import StoredPrediction


@dataclass(frozen=True)
class RowFilter:
    """Which predictions to export: captured in ``[start, end)``, of a camera (``cam`` or ``device/cam``), a
    label, a device. ``None`` = no restriction."""

    start: datetime | None = None
    end: datetime | None = None
    camera: str | None = None
    label: str | None = None
    device: str | None = None

    def apply(self, statement):
        if self.start is not None:
            statement = statement.where(predictions.c.captured_at >= self.start)
        if self.end is not None:
            statement = statement.where(predictions.c.captured_at < self.end)
        if self.label is not None:
            statement = statement.where(predictions.c.label == self.label)
        if self.device is not None:
            statement = statement.where(devices.c.name == self.device)
        if self.camera is not None:
            device, _, camera = self.camera.rpartition("/")
            statement = statement.where(cameras.c.name == camera)
            if device:
                statement = statement.where(devices.c.name == device)
        return statement


EARLIEST_QUERY_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_QUERY_TIME = datetime(9000, 1, 1, tzinfo=UTC)


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 filter time (UTC if it has no zone; ``None`` for none) between 1970 and 9000; raises
    ``ValueError`` with a sentence otherwise (times near year 1 or 9999 overflow when converted to UTC)."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 time (e.g. 2026-11-24T10:00:00Z)") from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        in_range = EARLIEST_QUERY_TIME <= parsed.astimezone(UTC) < LATEST_QUERY_TIME
    except OverflowError:
        in_range = False
    if not in_range:
        raise ValueError(f"{value!r} is out of range: give a time between 1970 and 9000")
    return parsed


def iter_predictions(engine: Engine, row_filter: RowFilter, chunk: int = 2000) -> Iterator[list[StoredPrediction]]:
    """Matching predictions in id order, ``chunk`` at a time, streamed from the database."""
    statement = row_filter.apply(stored_select()).order_by(predictions.c.id)
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=chunk).execute(statement)
        for part in result.partitions(chunk):
            yield [stored_row(row) for row in part]


def latest(engine: Engine, since_id: int = 0, limit: int = 50) -> tuple[list[StoredPrediction], int]:
    """``(rows, cursor)``: without ``since_id`` the ``limit`` most recently captured predictions (all devices),
    newest first; with it, those stored after that id, last stored first. ``cursor`` is the newest id."""
    with engine.connect() as connection:
        if since_id:
            statement = stored_select().where(predictions.c.id > since_id).order_by(predictions.c.id.desc())
        else:
            statement = stored_select().order_by(predictions.c.captured_at.desc(), predictions.c.id.desc())
        rows = [stored_row(row) for row in connection.execute(statement.limit(limit)).all()]
        newest = connection.execute(select(func.max(predictions.c.id))).scalar()
    return rows, max(since_id, int(newest or 0))


def camera_summary(engine: Engine, since: datetime) -> list[dict]:
    """Per camera: clips since ``since`` and its last prediction (of all time), in one query.

    Per camera row, a correlated count and a correlated "newest prediction id" each read a range of the
    ``(camera_id, captured_at)`` index (no table scan, no query per camera)::

        SELECT d.name, c.name, (SELECT count(*) … camera_id = c.id AND captured_at >= :since), p.label, …
        FROM cameras c JOIN devices d … LEFT JOIN predictions p ON p.id = (SELECT id … camera_id = c.id
                                                                      ORDER BY captured_at DESC LIMIT 1)
    """
    recent = (
        select(func.count())
        .where(predictions.c.camera_id == cameras.c.id, predictions.c.captured_at >= since)
        .correlate(cameras)
        .scalar_subquery()
    )
    newest = (
        select(predictions.c.id)
        .where(predictions.c.camera_id == cameras.c.id)
        .order_by(predictions.c.captured_at.desc(), predictions.c.id.desc())
        .limit(1)
        .correlate(cameras)
        .scalar_subquery()
    )
    last = predictions.alias("last")
    statement = (
        select(devices.c.name, cameras.c.name, recent, last.c.label, last.c.score, last.c.captured_at)
        .select_from(cameras.join(devices, cameras.c.device_id == devices.c.id).outerjoin(last, last.c.id == newest))
        .order_by(devices.c.name, cameras.c.name)
    )
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    return [
        {
            "device": device,
            "camera": camera,
            "count": int(count or 0),
            "last_label": label,
            "last_score": float(score) if score is not None else None,
            "last_at": at.isoformat() if at is not None else None,
        }
        for device, camera, count, label, score, at in rows
    ]


def _epoch_bucket(dialect: str, bucket_s: int):
    """SQL for ``floor(epoch seconds of captured_at / bucket_s)`` on SQLite and PostgreSQL."""
    bucket_s = int(bucket_s)
    if dialect == "sqlite":  # stored as naive UTC text; strftime('%s') reads it as UTC
        return literal_column(f"CAST(strftime('%s', predictions.captured_at) AS INTEGER) / {bucket_s}")
    return literal_column(f"CAST(FLOOR(EXTRACT(EPOCH FROM predictions.captured_at) / {bucket_s}) AS BIGINT)")


def nice_bucket(span_s: float, target_buckets: int = 60) -> int:
    """A round bucket width (1 s … 1 day) giving about ``target_buckets`` buckets over ``span_s``."""
    for width in (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if span_s / width <= target_buckets:
            return width
    return 86400 * math.ceil(span_s / 86400 / target_buckets)


def timeline(engine: Engine, start: datetime, end: datetime, bucket_s: int) -> dict:
    """Clips per label per time bucket: ``{"bucket_s", "t": [bucket start, epoch s], "series": {label: [n]}}``
    with every bucket of ``[start, end)`` present (zeros included), labels sorted by total, largest first."""
    with engine.connect() as connection:
        bucket = _epoch_bucket(connection.dialect.name, bucket_s)
        rows = connection.execute(
            select(bucket.label("b"), predictions.c.label, func.count())
            .where(predictions.c.captured_at >= start, predictions.c.captured_at < end)
            .group_by(literal_column("b"), predictions.c.label)
        ).all()
    first = int(start.timestamp()) // bucket_s
    last = max(first, (math.ceil(end.timestamp()) - 1) // bucket_s)
    times = [b * bucket_s for b in range(first, last + 1)]
    series: dict[str, list[int]] = {}
    for b, label, n in rows:
        index = int(b) - first
        if 0 <= index < len(times):
            series.setdefault(label, [0] * len(times))[index] += int(n)
    ordered = dict(sorted(series.items(), key=lambda item: (-sum(item[1]), item[0])))
    return {"bucket_s": bucket_s, "t": times, "series": ordered}


def _counts_by_camera_label(engine: Engine, start: datetime, end: datetime) -> dict[tuple[str, str], dict[str, int]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(devices.c.name, cameras.c.name, predictions.c.label, func.count())
            .select_from(
                predictions.join(cameras, predictions.c.camera_id == cameras.c.id).join(
                    devices, predictions.c.device_id == devices.c.id
                )
            )
            .where(predictions.c.captured_at >= start, predictions.c.captured_at < end)
            .group_by(devices.c.name, cameras.c.name, predictions.c.label)
        ).all()
    out: dict[tuple[str, str], dict[str, int]] = {}
    for device, camera, label, n in rows:
        out.setdefault((device, camera), {})[label] = int(n)
    return out


@dataclass(frozen=True)
class UnusualRules:
    """What counts as unusual for a camera, comparing the recent window with its own history.

    * rare: an action seen recently that made up less than ``rare_share`` of the camera's baseline
      (given at least ``min_baseline`` baseline clips, so a new camera is not all "rare");
    * spike: an action whose recent rate is at least ``spike_factor`` × its baseline rate, with at least
      ``min_spike`` recent clips.
    """

    recent: timedelta = timedelta(minutes=15)
    baseline: timedelta = timedelta(days=7)
    rare_share: float = 0.05
    min_baseline: int = 20
    spike_factor: float = 3.0
    min_spike: int = 5


def unusual(engine: Engine, now: datetime | None = None, rules: UnusualRules = UnusualRules()) -> list[dict]:
    """Rare actions and rate spikes per camera (see :class:`UnusualRules`), most striking first."""
    now = now or datetime.now(UTC)
    recent_start = now - rules.recent
    recent = _counts_by_camera_label(engine, recent_start, now + timedelta(seconds=1))
    if not recent:
        return []
    baseline = _counts_by_camera_label(engine, recent_start - rules.baseline, recent_start)
    recent_s = rules.recent.total_seconds()
    baseline_s = rules.baseline.total_seconds()
    items = []
    for (device, camera), labels in recent.items():
        history = baseline.get((device, camera), {})
        total = sum(history.values())
        for label, n in labels.items():
            seen = history.get(label, 0)
            share = seen / total if total else 0.0
            if total >= rules.min_baseline and share < rules.rare_share:
                items.append(
                    {
                        "device": device, "camera": camera, "label": label, "kind": "rare", "recent": n,
                        "baseline": seen, "score": (rules.rare_share - share) / rules.rare_share + n / 100,
                        "message": f"{label} is rare on {device}/{camera}: {n} in the last {_span(rules.recent)}, "
                        f"{share:.1%} of its {total} clips before",
                    }
                )
                continue
            # Poisson-smoothed baseline rate: one pseudo-count, so an action never seen before needs
            # min_spike clips before it counts as a spike.
            baseline_rate = (seen + 1) / baseline_s
            ratio = (n / recent_s) / baseline_rate
            if n >= rules.min_spike and total and ratio >= rules.spike_factor:
                items.append(
                    {
                        "device": device, "camera": camera, "label": label, "kind": "spike", "recent": n,
                        "baseline": seen, "score": ratio,
                        "message": f"{label} on {device}/{camera}: {n} in the last {_span(rules.recent)}, "
                        f"{ratio:.1f}× its usual rate",
                    }
                )
    return sorted(items, key=lambda item: (item["kind"] != "rare", -item["score"]))


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
