"""delivery_variant_and_timing: a delivery's variant (A/B tests), when it is due (each
person's local time, quiet hours, send windows) and when its person clicked or replied

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 02:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_COLUMNS = ("variant", "due_at", "clicked_at", "replied_at")


def upgrade() -> None:
    # Every column is NULL on the rows that exist: a campaign of one message, due at once,
    # with no engagement seen. ADD COLUMN only, so no table copy on SQLite.
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("variant", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in reversed(_COLUMNS):
        op.drop_column("deliveries", column)
