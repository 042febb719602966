"""segments: a contact filter of a Page saved under a name

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 06:00:00.000000

A campaign may target a segment; its filter is read when the campaign starts
(docs/architecture.md, "Issue 21: segments").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["page_id"],
            ["pages.id"],
            name=op.f("fk_segments_page_id_pages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("page_id", "name", name=op.f("uq_segments_page_id")),
    )
    op.create_index(op.f("ix_segments_page_id"), "segments", ["page_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_segments_page_id"), table_name="segments")
    op.drop_table("segments")
