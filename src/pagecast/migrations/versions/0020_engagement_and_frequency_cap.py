"""engagement_and_frequency_cap: indexes for recording clicks and replies on deliveries and
counting them per campaign, and the per-Page frequency cap

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 02:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# (name, columns, where): partial, so the NULLs every new delivery has are not indexed.
_INDEXES = (
    # A person's recent sends: the click / reply lookup and the frequency cap's count.
    ("ix_deliveries_contact_id_sent_at", ["contact_id", "sent_at"], "sent_at IS NOT NULL"),
    # A campaign's clicked and replied counts (services/engagement.counts).
    ("ix_deliveries_campaign_id_clicked", ["campaign_id"], "clicked_at IS NOT NULL"),
    ("ix_deliveries_campaign_id_replied", ["campaign_id"], "replied_at IS NOT NULL"),
)


def upgrade() -> None:
    op.add_column("pages", sa.Column("frequency_cap", sa.JSON(), nullable=True))
    for name, columns, where in _INDEXES:
        op.create_index(
            name,
            "deliveries",
            columns,
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    for name, _, _ in reversed(_INDEXES):
        op.drop_index(name, table_name="deliveries")
    # Plain DROP COLUMN, not a batch table copy: `pages` is referenced by other tables'
    # foreign keys (see 0010).
    op.drop_column("pages", "frequency_cap")
