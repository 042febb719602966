"""campaign_archive: a finished campaign can be archived out of the default campaign list

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 05:45:00.000000

`archived_at` is NULL for a campaign in the list and the time it was archived otherwise
(issue 21). The list reads the newest campaigns not archived, by id: the index on
`(archived_at, id)` gives them in that order without reading the archived ones.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

NAME = "ix_campaigns_archived_at_id"


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(NAME, "campaigns", ["archived_at", "id"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="campaigns")
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_column("archived_at")
