"""time_zones: each user's and each Page's IANA time zone, UTC until chosen

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A server default fills the rows that exist: every user and Page starts in UTC, which is
    # how the dashboard showed times before.
    for table in ("users", "pages"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False)
            )


def downgrade() -> None:
    # Plain DROP COLUMN, not a batch table copy: both tables are referenced by other tables'
    # foreign keys (see 0010).
    op.drop_column("pages", "timezone")
    op.drop_column("users", "timezone")
