"""due_pending_index: a campaign's pending deliveries that do not wait for an experiment's
winner, in id order

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 03:20:00.000000

The rest of an A/B experiment waits as pending deliveries with variant '*' (up to 90 % of a
campaign). Every sweep's stall check (`deliveries.has_due_pending`) and every plan pass
(`deliveries.pending_ranges`) look for pending deliveries that do not wait; through
`(campaign_id, status, id)` they read every waiting row and its heap tuple to drop it,
1,000,000 of them for a large test. This partial index holds only the others, so both read
what they return (docs/architecture.md, "Issue 20: variants").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

NAME = "ix_deliveries_campaign_id_due_pending"
WHERE = "status = 'pending' AND (variant IS NULL OR variant <> '*')"


def upgrade() -> None:
    where = sa.text(WHERE)
    op.create_index(
        NAME, "deliveries", ["campaign_id", "id"], sqlite_where=where, postgresql_where=where
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="deliveries")
