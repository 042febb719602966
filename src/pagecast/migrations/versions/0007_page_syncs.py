"""page_syncs: audience syncs from the Conversations API, their progress and heartbeat

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 02:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "page_syncs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("started_by", sa.String(length=254), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("threads_seen", sa.Integer(), nullable=False),
        sa.Column("contacts_created", sa.Integer(), nullable=False),
        sa.Column("contacts_updated", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["page_id"],
            ["pages.id"],
            name=op.f("fk_page_syncs_page_id_pages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_syncs")),
    )
    with op.batch_alter_table("page_syncs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_page_syncs_page_id"), ["page_id"], unique=False)
        batch_op.create_index(
            "ux_page_syncs_running_page_id",
            ["page_id"],
            unique=True,
            sqlite_where=sa.text("state = 'running'"),
            postgresql_where=sa.text("state = 'running'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("page_syncs", schema=None) as batch_op:
        batch_op.drop_index("ux_page_syncs_running_page_id")
        batch_op.drop_index(batch_op.f("ix_page_syncs_page_id"))
    op.drop_table("page_syncs")
