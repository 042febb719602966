"""webhook receipt watermarks on contacts; index on unprocessed webhook events

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 00:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("delivered_watermark_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("read_watermark_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_events_processed_at", ["processed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_events_processed_at")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("read_watermark_at")
        batch_op.drop_column("delivered_watermark_at")
