"""deliveries: no foreign key to campaigns (a faster audience snapshot beside sending)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 18:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_CAMPAIGN_FK = "fk_deliveries_campaign_id_campaigns"
# SQLite's batch mode copies the table and rebuilds its indexes from reflection, which loses
# a partial index's WHERE: these two go first and come back after the batch (as in 0008).
_PARTIAL = {
    "ix_deliveries_campaign_id_sent_at": (["campaign_id", "sent_at"], "sent_at IS NOT NULL"),
    "ix_deliveries_message_id": (["message_id"], "message_id IS NOT NULL"),
}


def _drop_partial() -> None:
    for name in _PARTIAL:
        op.drop_index(name, table_name="deliveries")


def _create_partial() -> None:
    for name, (columns, where) in _PARTIAL.items():
        op.create_index(
            name,
            "deliveries",
            columns,
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def upgrade() -> None:
    _drop_partial()
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(_CAMPAIGN_FK, type_="foreignkey")
    _create_partial()


def downgrade() -> None:
    # The key cannot come back over deliveries whose campaign is gone: delete them, as the
    # old cascade would have.
    op.execute(
        "DELETE FROM deliveries WHERE NOT EXISTS "
        "(SELECT 1 FROM campaigns WHERE campaigns.id = deliveries.campaign_id)"
    )
    _drop_partial()
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_foreign_key(
            _CAMPAIGN_FK, "campaigns", ["campaign_id"], ["id"], ondelete="CASCADE"
        )
    _create_partial()
