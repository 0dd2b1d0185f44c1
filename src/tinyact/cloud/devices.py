"""Device registry: add a device (a new key is returned once; only its SHA-256 is stored), list, rotate a key,
revoke.

Usable from Python without a running service (tests, the demo, the edge helper)::

    from tinyact.cloud.devices import add_device
    key = add_device("sqlite:///cloud.db", "edge-1").key      # Authorization: Bearer <key>

Keys are 256-bit random tokens, so a plain SHA-256 (no salt, no slow hash) is enough to make a leaked
database useless for posting, and it lets the service find a device by the hash of the key it was sent.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from tinyact.cloud.db.engine import make_engine, upgrade_database, write_tx
from tinyact.cloud.db.schema import devices
from tinyact.errors import TinyActError
from tinyact.wire import DEVICE_ID_PATTERN

KEY_PREFIX = "tak_"


class DeviceError(TinyActError):
    """A device name is invalid, taken or unknown."""


@dataclass(frozen=True)
class DeviceInfo:
    """A registered device (never its key)."""

    id: int
    name: str
    key_hint: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class NewDevice:
    """A freshly added device and its key: show the key to the operator once, it is not stored."""

    name: str
    key: str


def new_key() -> str:
    """A new device key: ``tak_`` + 43 URL-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a key: what the database stores and looks keys up by."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _engine(db: str | Engine) -> tuple[Engine, bool]:
    """Accept an engine or a URL (for a URL: a new engine, schema upgraded, disposed by the caller)."""
    if isinstance(db, Engine):
        return db, False
    from tinyact.cloud.config import resolve_db_url

    engine = make_engine(resolve_db_url(db), pool_size=1)
    upgrade_database(engine)
    return engine, True


def add_device(db: str | Engine, name: str) -> NewDevice:
    """Register ``name`` and return its key (shown once). Raises :class:`DeviceError` if the name is invalid
    or taken."""
    if not re.fullmatch(DEVICE_ID_PATTERN, name):
        raise DeviceError(f"invalid device name {name!r}: use 1-64 letters, digits, _ . : - (starting with a letter or digit)")
    engine, owned = _engine(db)
    key = new_key()
    try:
        with write_tx(engine) as connection:
            connection.execute(
                devices.insert().values(
                    name=name, key_hash=hash_key(key), key_hint=key[: len(KEY_PREFIX) + 4], created_at=datetime.now(UTC)
                )
            )
    except IntegrityError:
        raise DeviceError(f"device {name!r} already exists (revoke it, or pick another name)") from None
    finally:
        if owned:
            engine.dispose()
    return NewDevice(name, key)


def list_devices(db: str | Engine) -> list[DeviceInfo]:
    """All devices, oldest first, revoked ones included."""
    engine, owned = _engine(db)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(devices.c.id, devices.c.name, devices.c.key_hint, devices.c.created_at, devices.c.revoked_at)
                .order_by(devices.c.id)
            ).all()
    finally:
        if owned:
            engine.dispose()
    return [DeviceInfo(*row) for row in rows]


def revoke_device(db: str | Engine, name: str) -> DeviceInfo:
    """Revoke ``name``'s key: it gets 401 from then on (at once; within ``auth_cache_s`` if that is set). Its
    stored predictions stay."""
    engine, owned = _engine(db)
    try:
        with write_tx(engine) as connection:
            connection.execute(
                update(devices).where(devices.c.name == name, devices.c.revoked_at.is_(None)).values(revoked_at=datetime.now(UTC))
            )
            row = connection.execute(
                select(devices.c.id, devices.c.name, devices.c.key_hint, devices.c.created_at, devices.c.revoked_at).where(
                    devices.c.name == name
                )
            ).first()
    finally:
        if owned:
            engine.dispose()
    if row is None:
        raise DeviceError(f"no device named {name!r} (see `tinyact cloud device list`)")
    return DeviceInfo(*row)


def rotate_device(db: str | Engine, name: str) -> NewDevice:
    """Give ``name`` a new key (returned once) and make its old key invalid at once: services check keys in
    the database on every request (``auth_cache_s`` 0, the default). Raises :class:`DeviceError` for an
    unknown or revoked device."""
    engine, owned = _engine(db)
    key = new_key()
    try:
        with write_tx(engine) as connection:
            row = connection.execute(select(devices.c.revoked_at).where(devices.c.name == name)).first()
            if row is None:
                raise DeviceError(f"no device named {name!r} (see `tinyact cloud device list`)")
            if row[0] is not None:
                raise DeviceError(f"device {name!r} is revoked: add a new device instead of rotating its key")
            connection.execute(
                update(devices).where(devices.c.name == name)
                .values(key_hash=hash_key(key), key_hint=key[: len(KEY_PREFIX) + 4])
            )
    finally:
        if owned:
            engine.dispose()
    return NewDevice(name, key)


def find_device_by_key(engine: Engine, key: str) -> DeviceInfo | None:
    """The device holding ``key`` (revoked or not), or ``None``."""
    with engine.connect() as connection:
        row = connection.execute(
            select(devices.c.id, devices.c.name, devices.c.key_hint, devices.c.created_at, devices.c.revoked_at).where(
                devices.c.key_hash == hash_key(key)
            )
        ).first()
    return DeviceInfo(*row) if row else None


def find_device_by_name(engine: Engine, name: str) -> DeviceInfo | None:
    with engine.connect() as connection:
        row = connection.execute(
            select(devices.c.id, devices.c.name, devices.c.key_hint, devices.c.created_at, devices.c.revoked_at).where(
                devices.c.name == name
            )
        ).first()
    return DeviceInfo(*row) if row else None
