"""Alembic environment of the edge database. Run through :func:`tinyact.edge.schema.upgrade_schema` (every
time an :class:`~tinyact.edge.store.EdgeStore` opens its file), which passes an open connection in
``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context

from tinyact.edge.schema import metadata

if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: the edge upgrades its database when it opens it")

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    render_as_batch=True,  # SQLite can't ALTER most things: copy-and-move
)
with context.begin_transaction():
    context.run_migrations()
