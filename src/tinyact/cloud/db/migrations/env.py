"""Alembic environment of the cloud database. Run through :func:`tinyact.cloud.db.engine.upgrade_database`
(or ``tinyact cloud db upgrade``), which passes an open connection in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context

from tinyact.cloud.db.engine import make_engine
from tinyact.cloud.db.schema import Base


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite can't ALTER most things: copy-and-move
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise SystemExit("no database URL: run `tinyact cloud db upgrade --db URL`")
    engine = make_engine(url)
    with engine.begin() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `tinyact cloud db upgrade --db URL`")
run_migrations_online()
