"""The edge database's tables, its SQLite engine, and the Alembic upgrade run each time it is opened.

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
    counters  named counters that survive restarts (dropped, send_failures, …)
    meta      key/value: the results feed cursor (GET /v1/results?since=…)

Migrations live in ``migrations/versions`` (like the cloud database's). A file written before the edge had
migrations has no ``alembic_version`` table: it is stamped with the revision its columns match, then upgraded,
so no row is lost.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest revision in ``migrations/versions``; a database already there is opened without loading Alembic.
HEAD = "0002"

metadata = MetaData()

captures = Table(
    "captures",
    metadata,
    Column("clip_id", String(36), primary_key=True),
    Column("camera_id", String(64), nullable=False, index=True),
    Column("captured_at", Float, nullable=False, index=True),  # UTC epoch seconds (sortable)
    Column("encode_ms", Float),
    Column("state", String(16), nullable=False, default="pending"),
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


def open_engine(path: Path) -> Engine:
    """An engine on the SQLite file ``path`` (WAL: the page and ``tinyact edge status`` read beside the writer).

    Args:
        path: The database file; its folder must exist.

    Returns:
        The engine; connections may be used from any thread.
    """
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (web page, `edge status`) beside the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def upgrade_schema(engine: Engine) -> None:
    """Create the tables of a new database, or bring an older one up to :data:`HEAD` with Alembic.

    Args:
        engine: From :func:`open_engine`.
    """
    with engine.begin() as connection:
        current = _current_revision(connection)
        if current == HEAD:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        if current is None and (legacy := _legacy_revision(connection)) is not None:
            command.stamp(config, legacy)
        command.upgrade(config, "head")


def _current_revision(connection: Connection) -> str | None:
    """The ``alembic_version`` of the database (``None``: no such table yet), read without Alembic."""
    if not _columns(connection, "alembic_version"):
        return None
    return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def _legacy_revision(connection: Connection) -> str | None:
    """The revision a database written before migrations matches (``None``: an empty file).

    Such files have every table of revision 0001; those written since the encoder hash travels with each clip
    also have ``outbox.encoder_hash`` and ``outbox.held`` (added together, in one transaction).
    """
    columns = _columns(connection, "outbox")
    if not columns:
        return None
    return "0002" if {"encoder_hash", "held"} <= columns else "0001"


def _columns(connection: Connection, table: str) -> set[str]:
    return {row[1] for row in connection.exec_driver_sql(f"PRAGMA table_info({table})")}


def to_epoch(value: datetime | float) -> float:
    """A time as stored in the database: UTC epoch seconds (a naive ``datetime`` is taken as UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    return float(value)


def to_iso(epoch: float | None) -> str | None:
    """A stored time as ISO 8601 UTC (``…Z``), or ``None``."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    """``items`` in slices of at most ``size`` (SQLite limits the parameters of one statement)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
