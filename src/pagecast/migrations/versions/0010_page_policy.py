"""Page messaging policy enforcement (block, unblock, warning) and campaigns paused by it

Revision ID: 0010_page_policy
Revises: 0009
Create Date: 2026-11-24 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_page_policy"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy_block", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("policy_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("policy_warning", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("policy_warning_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("paused_by_page", sa.Boolean(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), not a batch table copy: `pages` and
    # `campaigns` are referenced by other tables' foreign keys, and SQLite refuses to drop a
    # referenced table that still has rows pointing at it.
    op.drop_column("campaigns", "paused_by_page")
    for column in ("policy_warning_at", "policy_warning", "policy_at", "policy_block"):
        op.drop_column("pages", column)
