"""delivery_list_indexes: the deliveries listing (issue 20) reads a campaign's deliveries of
a status, an error code or a reason in id order

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 02:30:00.000000

`(campaign_id, status)` becomes `(campaign_id, status, id)`: a page of one status is then
read in id order from the index, where before PostgreSQL walked the primary key and
filtered (583 ms for the pending rows at the end of a 1,000,000-delivery campaign; 1 ms
after; docs/performance.md, P11). Same entries, so no more index work for the snapshot or
the worker. The error code and the reason get partial indexes: only rows that have one are
in them (a snapshot writes NULL for everybody it can send to), so a rare code (1 in 10,000:
506 ms by a sequential scan) is read directly.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_PARTIAL = {
    "ix_deliveries_campaign_id_error_code": "error_code",
    "ix_deliveries_campaign_id_reason": "reason",
}


def upgrade() -> None:
    op.drop_index("ix_deliveries_campaign_id_status", table_name="deliveries")
    op.create_index(
        "ix_deliveries_campaign_id_status_id", "deliveries", ["campaign_id", "status", "id"]
    )
    for name, column in _PARTIAL.items():
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            name,
            "deliveries",
            ["campaign_id", column, "id"],
            sqlite_where=where,
            postgresql_where=where,
        )


def downgrade() -> None:
    for name in _PARTIAL:
        op.drop_index(name, table_name="deliveries")
    op.drop_index("ix_deliveries_campaign_id_status_id", table_name="deliveries")
    op.create_index("ix_deliveries_campaign_id_status", "deliveries", ["campaign_id", "status"])
