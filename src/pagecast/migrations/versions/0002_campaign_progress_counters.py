"""campaign progress counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 23:51:06.858804
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("missed", sa.Boolean(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("bad_streak", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("n_total", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("n_pending", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("n_sending", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("n_sent", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("n_delivered", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("n_read", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("n_failed", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("n_skipped", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("n_unknown", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("n_cancelled", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("n_expired", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("n_expired")
        batch_op.drop_column("n_cancelled")
        batch_op.drop_column("n_unknown")
        batch_op.drop_column("n_skipped")
        batch_op.drop_column("n_failed")
        batch_op.drop_column("n_read")
        batch_op.drop_column("n_delivered")
        batch_op.drop_column("n_sent")
        batch_op.drop_column("n_sending")
        batch_op.drop_column("n_pending")
        batch_op.drop_column("n_total")
        batch_op.drop_column("bad_streak")
        batch_op.drop_column("missed")
