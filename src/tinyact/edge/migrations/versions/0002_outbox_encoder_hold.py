"""Outbox clips name their encoder (``encoder_hash``) and can be held back (``held``: encoder_mismatch).

Both columns are NULL for the clips already queued, which are then sent as before. A column an older agent
already added (it altered the table on start) is left as it is.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = {"encoder_hash": sa.String(length=200), "held": sa.String(length=32)}


def upgrade() -> None:
    have = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("outbox")}
    for name, type_ in COLUMNS.items():
        if name not in have:
            op.add_column("outbox", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
