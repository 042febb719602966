"""reconciliation of unknown deliveries: when they became unknown, the one resend, and how far
each Page's echo stream is known to be live

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unknown_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resent_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("echo_seen_at", sa.DateTime(timezone=True), nullable=True))
    # Deliveries already `unknown` became so at their last update at the latest.
    op.execute("UPDATE deliveries SET unknown_since = updated_at WHERE status = 'unknown'")


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): a batch copy of `pages` would have to
    # drop a table that other rows still reference.
    op.execute("ALTER TABLE pages DROP COLUMN echo_seen_at")
    op.execute("ALTER TABLE deliveries DROP COLUMN resent_at")
    op.execute("ALTER TABLE deliveries DROP COLUMN unknown_since")
