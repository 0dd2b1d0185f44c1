"""``Idempotency-Key``: a request repeated with the same key and body gets the first answer back.

The key is claimed in the database before the request is classified (:func:`reserve_idempotency_key`), so two
concurrent requests with the same key can never both store clips: the second gets the first one's answer,
409 while the first still runs, or 422 if its body differs. Clip ids are idempotent on their own (see
:mod:`tinyact.cloud.store`); the key makes a whole request's answer repeatable. Keys are forgotten after a day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select, update

from tinyact.cloud.db.engine import insert_for, write_tx
from tinyact.cloud.db.schema import idempotency_keys

IDEMPOTENCY_TTL = timedelta(hours=24)
"""Keys older than this are purged (clip ids stay idempotent for ever)."""

IDEMPOTENCY_PENDING: dict[str, Any] = {"pending": True}
"""The stored response of an ``Idempotency-Key`` whose first request is still being processed."""
IDEMPOTENCY_STALE = timedelta(minutes=5)
"""A pending key older than this belongs to a request that died (process crash); a new request may take it."""


def reserve_idempotency_key(engine: Engine, device_id: int, key: str, request_hash: str) -> tuple[str, dict[str, Any]] | None:
    """Claim ``key`` for a request with body hash ``request_hash`` before anything is classified or stored.

    ``None``: claimed, process the request, then :func:`finish_idempotency_key` (or
    :func:`release_idempotency_key` if it fails). Otherwise ``(request hash, response)`` of the request that
    holds the key: its answer, or :data:`IDEMPOTENCY_PENDING` while it is still running. Two requests with
    the same key can therefore never both store clips.
    """
    now = datetime.now(UTC)
    where = (idempotency_keys.c.device_id == device_id, idempotency_keys.c.key == key)
    with write_tx(engine) as connection:
        claimed = connection.execute(
            insert_for(connection, idempotency_keys)
            .values(device_id=device_id, key=key, request_hash=request_hash, response=IDEMPOTENCY_PENDING, created_at=now)
            .on_conflict_do_nothing(index_elements=["device_id", "key"])
            .returning(idempotency_keys.c.id)
        ).first()
        if claimed is not None:
            return None
        row = connection.execute(
            select(idempotency_keys.c.request_hash, idempotency_keys.c.response, idempotency_keys.c.created_at).where(*where)
        ).one()
        created_at = row[2] if row[2].tzinfo else row[2].replace(tzinfo=UTC)
        if row[1] == IDEMPOTENCY_PENDING and created_at < now - IDEMPOTENCY_STALE:
            connection.execute(update(idempotency_keys).where(*where).values(request_hash=request_hash, created_at=now))
            return None
    return row[0], row[1]


def finish_idempotency_key(engine: Engine, device_id: int, key: str, response: dict[str, Any]) -> None:
    """Store the answer to a key claimed by :func:`reserve_idempotency_key`."""
    with write_tx(engine) as connection:
        connection.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.device_id == device_id, idempotency_keys.c.key == key)
            .values(response=response)
        )


def release_idempotency_key(engine: Engine, device_id: int, key: str, request_hash: str) -> None:
    """Give up a claim whose request failed (nothing was stored): the key may be used again."""
    with write_tx(engine) as connection:
        connection.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.device_id == device_id, idempotency_keys.c.key == key,
                idempotency_keys.c.request_hash == request_hash,
            )
        )


def purge_idempotency_keys(engine: Engine, older_than: timedelta) -> int:
    """Forget idempotency keys older than ``older_than`` (clip ids stay idempotent for ever)."""
    with write_tx(engine) as connection:
        result = connection.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < datetime.now(UTC) - older_than))
    return result.rowcount or 0
