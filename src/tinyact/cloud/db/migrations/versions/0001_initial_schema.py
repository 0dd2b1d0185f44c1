"""Initial schema: devices, cameras, model_versions, predictions, idempotency_keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Migrations spell out plain column types (not the application's TypeDecorators), so that they keep working
# when the application code changes later.
UTC_TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_hint", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("revoked_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_devices_key_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_devices_name")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("label_names", sa.JSON(), nullable=False),
        sa.Column("latent_dim", sa.Integer(), nullable=False),
        sa.Column("encoder_hash", sa.String(length=80), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("first_loaded_at", UTC_TIME, nullable=False),
        sa.Column("activated_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_model_versions_version")),
    )
    op.create_index(op.f("ix_model_versions_activated_at"), "model_versions", ["activated_at"])
    op.create_table(
        "cameras",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_cameras_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cameras")),
        sa.UniqueConstraint("device_id", "name", name=op.f("uq_cameras_device_id_name")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_idempotency_keys_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("device_id", "key", name=op.f("uq_idempotency_keys_device_id_key")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"])
    op.create_table(
        "predictions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Uuid(), nullable=False),
        sa.Column("captured_at", UTC_TIME, nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("top5", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name=op.f("fk_predictions_camera_id_cameras"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_predictions_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.UniqueConstraint("device_id", "clip_id", name=op.f("uq_predictions_device_id_clip_id")),
    )
    # The dashboard's queries: time ranges, per camera over time, per label over time; the results feed.
    op.create_index("ix_predictions_captured_at", "predictions", ["captured_at"])
    op.create_index("ix_predictions_camera_id_captured_at", "predictions", ["camera_id", "captured_at"])
    op.create_index("ix_predictions_label_captured_at", "predictions", ["label", "captured_at"])
    op.create_index("ix_predictions_device_id_id", "predictions", ["device_id", "id"])


def downgrade() -> None:
    op.drop_table("predictions")
    op.drop_table("idempotency_keys")
    op.drop_table("cameras")
    op.drop_table("model_versions")
    op.drop_table("devices")
