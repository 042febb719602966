"""local_time_sending: each person's time zone, a Page's quiet hours, a campaign's local send
time and send window (issue 20)

contacts.timezone was the profile's offset in hours (a float); it becomes the person's IANA
zone name, and the profile's offset moves to contacts.utc_offset_minutes.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 02:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_PENDING_DUE = "status = 'pending' AND due_at IS NOT NULL"


def upgrade() -> None:
    # Plain ADD and DROP COLUMN, no batch table copy: contacts is referenced by contact_tags.
    op.add_column("contacts", sa.Column("utc_offset_minutes", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE contacts SET utc_offset_minutes = CAST(ROUND(timezone * 60) AS INTEGER) "
        "WHERE timezone IS NOT NULL"
    )
    op.drop_column("contacts", "timezone")
    op.add_column("contacts", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.add_column("pages", sa.Column("quiet_hours", sa.JSON(), nullable=True))
    op.add_column("campaigns", sa.Column("local_send_at", sa.DateTime(), nullable=True))
    op.add_column("campaigns", sa.Column("send_window", sa.JSON(), nullable=True))
    op.add_column("campaigns", sa.Column("last_due_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_deliveries_campaign_id_due_at",
        "deliveries",
        ["campaign_id", "due_at"],
        sqlite_where=sa.text(_PENDING_DUE),
        postgresql_where=sa.text(_PENDING_DUE),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_campaign_id_due_at", table_name="deliveries")
    op.drop_column("campaigns", "last_due_at")
    op.drop_column("campaigns", "send_window")
    op.drop_column("campaigns", "local_send_at")
    op.drop_column("pages", "quiet_hours")
    op.drop_column("contacts", "timezone")
    op.add_column("contacts", sa.Column("timezone", sa.Float(), nullable=True))
    op.execute(
        "UPDATE contacts SET timezone = utc_offset_minutes / 60.0 "
        "WHERE utc_offset_minutes IS NOT NULL"
    )
    op.drop_column("contacts", "utc_offset_minutes")
