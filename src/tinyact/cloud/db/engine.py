"""Database engines (SQLite in WAL mode, or PostgreSQL through psycopg 3) and Alembic upgrades.

SQLite notes: every connection turns on WAL (readers never block the writer), ``synchronous=NORMAL`` (no
fsync per commit; a power cut can lose the last commits, never corrupt the file) and foreign keys. pysqlite's
own transaction handling is switched off so that write transactions start with ``BEGIN IMMEDIATE``: a
deferred transaction that reads and then writes can fail at once with "database is locked" when another
process committed in between, while an immediate one waits for the lock (``busy_timeout``). Open a write
transaction with :func:`write_tx`, a read with ``engine.connect()``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from tinyact.errors import TinyActError

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
_WRITE = "tinyact_write"
# Any fixed number works: PostgreSQL advisory locks are per database, and only our migrations take this one.
_MIGRATION_LOCK = 0x7A1AC7


class DatabaseError(TinyActError):
    """The database cannot be reached or used; the message names the URL and what to check."""


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``url`` (``sqlite:///FILE`` or ``postgresql+psycopg://…``) with the settings above."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=2 * pool_size,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # no implicit BEGIN/COMMIT from pysqlite: we emit our own
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Connection) -> None:
            immediate = connection.get_execution_options().get(_WRITE, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_size=pool_size, max_overflow=2 * pool_size, pool_pre_ping=True)
    raise DatabaseError(f"unsupported database {parsed.get_backend_name()!r}: use SQLite or PostgreSQL")


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success, rolled back on error."""
    with engine.connect().execution_options(**{_WRITE: True}) as connection, connection.begin():
        yield connection


def insert_for(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` in the connection's dialect (PostgreSQL or SQLite), which has ``ON CONFLICT DO NOTHING``."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def check_connection(engine: Engine) -> None:
    """Raise :class:`DatabaseError` with a hint if the database does not answer."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        raise DatabaseError(
            f"cannot reach the database {engine.url.render_as_string(hide_password=True)}: "
            f"{str(error.orig).strip().splitlines()[0]} (is the server running and the URL right?)"
        ) from None


def alembic_config():
    """An Alembic config pointing at the migrations shipped inside the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision`` with Alembic. Safe to call from many replicas at once:
    PostgreSQL serialises them with an advisory lock, SQLite with its write lock."""
    from alembic import command

    check_connection(engine)
    config = alembic_config()
    with write_tx(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The schema's Alembic revision (``None`` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest Alembic revision this version of TinyAct ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise DatabaseError(f"no migrations found in {MIGRATIONS}: the installation is incomplete; reinstall tinyact")
    return head
