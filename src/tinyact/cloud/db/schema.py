"""The cloud database: devices, their cameras, model versions, predictions and idempotency keys.

::

    devices(id, name UNIQUE, key_hash UNIQUE, key_hint, created_at, revoked_at)
    cameras(id, device_id -> devices, name, first_seen_at)              UNIQUE(device_id, name)
    model_versions(id, version UNIQUE, kind, path, label_names, latent_dim, encoder_hash, metrics,
                   first_loaded_at, activated_at)                        the newest activated_at is active
    predictions(id, device_id, camera_id -> cameras, clip_id, captured_at, received_at, label, score, top5,
                model_version)                                          UNIQUE(device_id, clip_id)
    idempotency_keys(id, device_id, key, request_hash, response, created_at)   UNIQUE(device_id, key)

``predictions.id`` is the cursor of a device's results feed (``GET /v1/results?since=``). Every timestamp is
stored in UTC (SQLite has no time zones: values are written as naive UTC and read back as aware UTC).
The schema is created and upgraded only by the Alembic migrations in ``migrations/``; a test checks that
they produce exactly these tables.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (naive values are refused, not guessed)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: give a time zone (times are stored in UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Device(Base):
    """An edge device; it authenticates with a key of which only the SHA-256 is stored."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_hint: Mapped[str] = mapped_column(String(16), doc="first characters of the key, to tell keys apart")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Camera(Base):
    """A camera of one device (camera names are only unique per device)."""

    __tablename__ = "cameras"
    __table_args__ = (UniqueConstraint("device_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ModelVersion(Base):
    """A classifier the service has loaded; the row with the newest ``activated_at`` is the active model."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    label_names: Mapped[list[str]] = mapped_column(JSON)
    latent_dim: Mapped[int] = mapped_column(Integer)
    encoder_hash: Mapped[str] = mapped_column(String(80))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)


class Prediction(Base):
    """One classified clip. ``(device_id, clip_id)`` is unique: a repeated clip is never stored twice."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("device_id", "clip_id"),
        Index("ix_predictions_captured_at", "captured_at"),
        Index("ix_predictions_camera_id_captured_at", "camera_id", "captured_at"),
        Index("ix_predictions_label_captured_at", "label", "captured_at"),
        Index("ix_predictions_device_id_id", "device_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    clip_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    label: Mapped[str] = mapped_column(String(128))
    score: Mapped[float] = mapped_column(Float)
    top5: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(80))


class IdempotencyKey(Base):
    """The stored response to a request sent with an ``Idempotency-Key`` header."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("device_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# The tables for Core statements (typed as Table, which insert/update/delete take).
devices = Base.metadata.tables[Device.__tablename__]
cameras = Base.metadata.tables[Camera.__tablename__]
model_versions = Base.metadata.tables[ModelVersion.__tablename__]
predictions = Base.metadata.tables[Prediction.__tablename__]
idempotency_keys = Base.metadata.tables[IdempotencyKey.__tablename__]
