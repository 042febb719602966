"""series: recurring campaigns (issue 20); each run is a campaign with series_id and run_at

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 02:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("campaign", sa.JSON(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["page_id"], ["pages.id"], name="fk_series_page_id_pages", ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name="fk_series_created_by_id_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_series"),
    )
    op.create_index("ix_series_page_id", "series", ["page_id"])
    op.create_index("ix_series_status", "series", ["status"])
    op.create_index("ix_series_next_run_at", "series", ["next_run_at"])
    # A run is a campaign: NULL for every campaign that exists (none is a run).
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("series_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("run_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            "fk_campaigns_series_id_series", "series", ["series_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index("ix_campaigns_series_id", ["series_id"])
        # Exactly one campaign per run, whichever worker creates it first.
        batch_op.create_unique_constraint("uq_campaigns_series_id", ["series_id", "run_at"])


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_constraint("uq_campaigns_series_id", type_="unique")
        batch_op.drop_index("ix_campaigns_series_id")
        batch_op.drop_constraint("fk_campaigns_series_id_series", type_="foreignkey")
        batch_op.drop_column("run_at")
        batch_op.drop_column("series_id")
    op.drop_index("ix_series_next_run_at", table_name="series")
    op.drop_index("ix_series_status", table_name="series")
    op.drop_index("ix_series_page_id", table_name="series")
    op.drop_table("series")
